"""Per-pixel reciprocal-space coordinates for transmission and grazing incidence.

Conventions (the same as pyFAI's ``FiberIntegrator``, so both agree to rounding):

* Lab frame: see :mod:`nxgid.geometry.detector` (x horizontal, y up, z along the beam).
* Sample orientation 1–8 (EXIF-like, pyFAI's meaning) first remaps the detector (x, y)
  axes, e.g. 2 mirrors x, 3 turns by 180°.
* The scattering vector in the lab frame is q = k·(x/r, y/r, z/r − 1) with k = 2π/λ,
  r = |(x, y, z)|; for grazing incidence it is rotated into the sample frame by the
  incidence angle α_i (about the horizontal axis) and the tilt angle (about the beam).
* ``q_z`` is the component along the sample normal, positive above the sample horizon;
  ``q_xy`` is the in-plane magnitude √(q_beam² + q_horizontal²) carrying the sign of
  the horizontal component (pyFAI's ``qip``): +q_xy on the +x side of the detector.
* ``chi_gid`` = atan2(q_z, q_xy): 0° along +q_xy, 90° along +q_z, 180° along −q_xy.
* Exit angle α_f and in-plane angle φ_f are the elevation above the sample plane and the
  azimuth in it (from the sample's beam axis) of the scattered ray, taken in the same
  sample frame as q, so that q_z = k·(sin α_f + sin α_i) exactly, the direct beam leaves
  at α_f = −α_i and the specular ray at α_f = +α_i. (pyFAI 2026.9's ``exit_angle_vert``
  rotates the sample the other way and puts the direct beam at +α_i; nxgid does not
  follow it there.)
* Transmission: ``q_x`` = k·x/r, ``q_y`` = k·y/r (perpendicular to the beam), and
  ``chi`` = atan2(y, x), pyFAI's χ.

q is in Å⁻¹ and angles in radians here; :mod:`nxgid.conversion` applies output units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from nxgid.errors import NxgidError
from nxgid.units import wavevector_A

#: pyFAI's sample orientations: how (x, y) are remapped before the GI rotations.
_ORIENTATION = {
    1: (("x", 1), ("y", 1)), 2: (("x", -1), ("y", 1)), 3: (("x", -1), ("y", -1)),
    4: (("x", 1), ("y", -1)), 5: (("y", -1), ("x", -1)), 6: (("y", -1), ("x", 1)),
    7: (("y", 1), ("x", 1)), 8: (("y", 1), ("x", -1)),
}


@dataclass(frozen=True)
class SampleGeometry:
    """How the sample meets the beam.

    ``mode`` is ``"gid"`` (grazing incidence) or ``"transmission"``. For grazing
    incidence, ``incidence_deg`` is α_i, ``tilt_deg`` the rotation about the beam, and
    ``orientation`` pyFAI's sample orientation (1–8).
    """

    mode: str = "gid"
    incidence_deg: float = 0.0
    tilt_deg: float = 0.0
    orientation: int = 1

    def __post_init__(self) -> None:
        if self.mode not in ("gid", "transmission"):
            raise NxgidError(f"sample mode {self.mode!r}: expected 'gid' or 'transmission'")
        if self.orientation not in _ORIENTATION:
            raise NxgidError(f"sample orientation {self.orientation}: expected 1 to 8")
        if not -90 < self.incidence_deg < 90:
            raise NxgidError(f"incidence angle {self.incidence_deg}°: expected -90° to 90°")

    @classmethod
    def transmission(cls) -> SampleGeometry:
        return cls(mode="transmission")

    @classmethod
    def grazing(cls, incidence_deg: float, tilt_deg: float = 0.0,
                orientation: int = 1) -> SampleGeometry:
        return cls("gid", float(incidence_deg), float(tilt_deg), int(orientation))


def _rotation(seq: str, angles: list[float]) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler(seq, angles, degrees=False).as_matrix()


class PixelCoordinates:
    """Coordinates of a set of detector points (pixel centres or corners), computed lazily.

    Arrays have the shape of the positions given; q in Å⁻¹, angles in radians.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, wavelength_A: float,
                 sample: SampleGeometry) -> None:
        self.sample = sample
        self.wavelength_A = wavelength_A
        self.k = wavevector_A(wavelength_A)
        self._x, self._y, self._z = x, y, z

    # --- common ---------------------------------------------------------------------

    @cached_property
    def _r(self) -> np.ndarray:
        return np.sqrt(self._x * self._x + self._y * self._y + self._z * self._z)

    @cached_property
    def tth(self) -> np.ndarray:
        """Scattering angle 2θ (as pyFAI: atan2(√(x²+y²), z))."""
        return np.arctan2(np.sqrt(self._x * self._x + self._y * self._y), self._z)

    @cached_property
    def q(self) -> np.ndarray:
        """|q| = 4π sin θ / λ."""
        return (2.0 * self.k) * np.sin(self.tth / 2.0)

    @cached_property
    def chi(self) -> np.ndarray:
        """Transmission azimuth χ = atan2(y, x) (pyFAI's chi)."""
        return np.arctan2(self._y, self._x)

    @cached_property
    def q_x(self) -> np.ndarray:
        return self.k * self._x / self._r

    @cached_property
    def q_y(self) -> np.ndarray:
        return self.k * self._y / self._r

    # --- grazing incidence ----------------------------------------------------------

    @cached_property
    def _oriented(self) -> tuple[np.ndarray, np.ndarray]:
        (xn, xs), (yn, ys) = _ORIENTATION[self.sample.orientation]
        source = {"x": self._x, "y": self._y}
        x = source[xn] if xs > 0 else -source[xn]
        y = source[yn] if ys > 0 else -source[yn]
        return x, y

    @cached_property
    def _sample_matrix(self) -> np.ndarray:
        """Lab → sample frame for (beam, horizontal, vertical) components (pyFAI's)."""
        alpha = math.radians(self.sample.incidence_deg)
        tilt = math.radians(self.sample.tilt_deg)
        return _rotation("yx", [alpha, -tilt])

    @cached_property
    def _q_sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(q_beam, q_horizontal, q_vertical) in the sample frame."""
        x, y = self._oriented
        inv_r = self.k / self._r
        q_lab = (self._z * inv_r - self.k, x * inv_r, y * inv_r)
        m = self._sample_matrix
        return tuple(m[i, 0] * q_lab[0] + m[i, 1] * q_lab[1] + m[i, 2] * q_lab[2]
                     for i in range(3))  # type: ignore[return-value]

    @property
    def q_horizontal(self) -> np.ndarray:
        """The horizontal in-plane component of q (its sign is that of q_xy): where it
        changes sign between a pixel's corners, the pixel straddles the GI missing wedge
        (q_xy jumps from −|q_beam| to +|q_beam| there)."""
        return self._q_sample[1]

    @cached_property
    def q_xy(self) -> np.ndarray:
        q_beam, q_horizontal, _ = self._q_sample
        return np.copysign(np.sqrt(q_beam * q_beam + q_horizontal * q_horizontal), q_horizontal)

    @cached_property
    def q_z(self) -> np.ndarray:
        return self._q_sample[2]

    @cached_property
    def chi_gid(self) -> np.ndarray:
        """atan2(q_z, q_xy): 0 along +q_xy, π/2 along +q_z."""
        return np.arctan2(self.q_z, self.q_xy)

    @property
    def sin_incidence(self) -> float:
        """sin α_i of the beam on the sample plane (tilt included)."""
        return float(-self._sample_matrix[2, 0])

    @cached_property
    def _exit_ray(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit scattered ray in the sample frame: q/k + (incident direction)."""
        m = self._sample_matrix
        q_beam, q_horizontal, q_vertical = self._q_sample
        return (q_beam / self.k + m[0, 0], q_horizontal / self.k + m[1, 0],
                q_vertical / self.k + m[2, 0])

    @cached_property
    def alpha_f(self) -> np.ndarray:
        """Exit angle above the sample plane."""
        beam, horizontal, vertical = self._exit_ray
        return np.arctan2(vertical, np.hypot(beam, horizontal))

    @cached_property
    def phi_f(self) -> np.ndarray:
        """In-plane angle of the exit ray from the sample's beam axis."""
        beam, horizontal, _ = self._exit_ray
        return np.arctan2(horizontal, beam)

    # --- by name ----------------------------------------------------------------------

    def axis_values(self, axis: str) -> np.ndarray:
        """Values of an output axis (pygid's names) in Å⁻¹ or degrees, before unit scaling."""
        getter = AXIS_COORDINATES.get(axis)
        if getter is None:
            raise NxgidError(f"unknown axis {axis!r}: expected one of "
                             + ", ".join(AXIS_COORDINATES))
        return getter(self)


def _deg(values: np.ndarray) -> np.ndarray:
    return np.degrees(values)


#: Output axis name -> coordinate, q in Å⁻¹ and angles in degrees.
AXIS_COORDINATES = {
    "q_xy": lambda c: c.q_xy,
    "q_z": lambda c: c.q_z,
    "q_gid_pol": lambda c: c.q,
    "ang_gid_pol": lambda c: _deg(c.chi_gid),
    "q_gid_rad": lambda c: c.q,
    "q_gid_azimuth": lambda c: c.q * c.chi_gid,
    "ang_gid_inplane": lambda c: _deg(c.phi_f),
    "ang_gid_exit": lambda c: _deg(c.alpha_f),
    "q_x": lambda c: c.q_x,
    "q_y": lambda c: c.q_y,
    "q_pol": lambda c: c.q,
    "ang_pol": lambda c: _deg(c.chi),
    "q_rad": lambda c: c.q,
    "q_azimuth": lambda c: c.q * c.chi,
}

#: Which axes are momentum transfers (scaled by the q unit); the others are angles.
Q_AXES = frozenset({"q_xy", "q_z", "q_gid_pol", "q_gid_rad", "q_gid_azimuth", "q_x", "q_y",
                    "q_pol", "q_rad", "q_azimuth"})


def pixel_coordinates(geometry, sample: SampleGeometry, *, corners: bool = False
                      ) -> PixelCoordinates:
    """Coordinates of every pixel centre (or corner) of *geometry* for *sample*.

    With *corners* the points are those of ``geometry.positions_m(corners=True)``: the
    (rows + 1, cols + 1) corner grid, or (rows, cols, 4) corners per pixel;
    :func:`per_pixel_corners` turns values on either into (rows, cols, 4)."""
    x, y, z = geometry.positions_m(corners=corners)
    return PixelCoordinates(x, y, z, geometry.wavelength_A, sample)


def per_pixel_corners(values: np.ndarray) -> np.ndarray:
    """Values at the four corners of every pixel, shape (rows, cols, 4), in pyFAI's
    order (row, col), (row + 1, col), (row + 1, col + 1), (row, col + 1), from values
    on the (rows + 1, cols + 1) corner grid (or already per pixel)."""
    if values.ndim == 3:
        return values
    return np.stack((values[:-1, :-1], values[1:, :-1], values[1:, 1:], values[:-1, 1:]),
                    axis=-1)
