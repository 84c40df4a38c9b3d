"""Synthetic detector frames with a known reciprocal-space truth.

The simulator is the ground truth for the conversion tests and the frames of
``nxgid demo``. It never invents geometry: every pixel's |q|, (q_xy, q_z), (q_x, q_y)
and exit angle come from :func:`nxgid.geometry.pixel_coordinates` (pyFAI positions,
pixel centres), and the intensity a sample scatters is a function of those only.

What a pixel records (counts)::

    E = exposure × S(q) × Ω × P × H × F

* ``S(q)`` — the sample's scattering at the pixel centre (point-sampled, not averaged
  over the pixel), in counts per pixel for exposure 1 at normal incidence:

  - a powder :class:`Ring` is a Gaussian in |q| centred at 2π/d (isotropic: the same on
    every azimuth);
  - a textured-film :class:`Spot` is a 2-D Gaussian in (q_xy, q_z). A fibre-textured
    film is isotropic about its normal, so its intensity depends on (|q_xy|, q_z) only:
    spots come in ±q_xy pairs (``mirror=True``). In transmission the spot's two
    coordinates are read as (q_x, q_y), the components perpendicular to the beam;
  - ``background`` is flat, counts per pixel;
  - or any function of the pixel coordinates (:func:`simulate_function`).

* ``Ω`` — pyFAI's solid angle of the pixel relative to a pixel at the PONI (detector tilt
  included), when ``apply_solid_angle``. A map divided by Ω gives S back.
* ``P`` — pyFAI's polarization factor array (``geometry.pyfai.polarization(factor=…)``)
  when ``polarization_factor`` is given; pyFAI divides by the same array to correct.
* ``H`` — the sample horizon (grazing incidence only, when ``horizon``): a ray leaving
  the sample below its surface (exit angle α_f < 0) runs into the film and substrate and
  is absorbed, so ``H = 0`` for α_f ≤ 0. A flat surface seen edge-on casts a sharp
  shadow; ``H`` rises linearly to 1 over α_f = 0 … :data:`HORIZON_WIDTH_DEG` (0.01°),
  standing for sample waviness and the detector's point spread. That is a fraction of a
  pixel at usual distances, so in practice pixels whose centre lies below the horizon
  read 0 and the rest are untouched. The flat background is taken as diffuse scattering
  from the sample and is shadowed too.
* ``F`` — the Yoneda band (grazing incidence, when ``critical_angle_deg`` > 0): in the
  distorted-wave Born approximation the scattered wave leaves through the film surface
  with the Fresnel transmission ``|t(α_f)|²``, t = 2 sin α_f / (sin α_f + √(sin²α_f −
  sin²α_c + 2iβ)), with β = :data:`BETA_OVER_DELTA` · δ and sin²α_c = 2δ. It vanishes at
  the horizon, peaks (≈ 4×) at α_f = α_c — the Yoneda band — and tends to 1 well above.
  The incident-side factor |t(α_i)|² is a constant for a frame and is left out.

Then Poisson noise (``numpy.random.default_rng(seed).poisson``) when ``noise``, and
detector module gaps (``geometry.detector_mask``, True = gap) read 0 when
``mask_gaps``, as on a real Pilatus; tests get the mask from ``geometry.detector_mask``.

Nothing needs to be done for the *missing wedge* of grazing incidence: a pixel sees the
points of reciprocal space on the Ewald sphere only, and no pixel reaches small |q_xy| at
finite q_z (the sphere leaves the q_z axis), so a spot placed in the wedge simply never
lands on the detector — exactly as in a real experiment. Refraction (the shift of q_z
near α_c) and the direct beam are not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from nxgid.errors import NxgidError
from nxgid.geometry.coordinates import PixelCoordinates, SampleGeometry, pixel_coordinates

__all__ = [
    "BETA_OVER_DELTA",
    "HORIZON_WIDTH_DEG",
    "Pattern",
    "Ring",
    "Spot",
    "detector_response",
    "simulate",
    "simulate_function",
    "simulate_stack",
]

#: Width of the shadow edge at the sample horizon, degrees of exit angle.
HORIZON_WIDTH_DEG = 0.01
#: Absorption over refraction (β/δ) of the film, for the Yoneda band: typical of organic
#: films and silicon at 8–12 keV; it rounds the |t|² peak at α_c to a finite height.
BETA_OVER_DELTA = 0.01
#: Gaussians are evaluated only within this many σ of their centre (exp(−18) ≈ 1.5e−8).
_REACH_SIGMA = 6.0

#: A function of the pixel coordinates returning the reciprocal-space intensity.
IntensityFunction = Callable[[PixelCoordinates], ArrayLike]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise NxgidError(message)


def _finite(value: float) -> bool:
    return math.isfinite(value)


@dataclass(frozen=True)
class Ring:
    """A powder ring: a Gaussian in |q| at q = 2π/d, the same on every azimuth.

    ``intensity`` is the peak height in counts per pixel (exposure 1, before solid angle
    and polarization); ``width_A`` the Gaussian σ in |q|, Å⁻¹.
    """

    d_spacing_A: float
    intensity: float = 1.0
    width_A: float = 0.005

    def __post_init__(self) -> None:
        _check(_finite(self.d_spacing_A) and self.d_spacing_A > 0,
               f"ring d-spacing {self.d_spacing_A} Å: expected a positive number")
        _check(_finite(self.intensity) and self.intensity >= 0,
               f"ring intensity {self.intensity}: expected zero or more")
        _check(_finite(self.width_A) and self.width_A > 0,
               f"ring width {self.width_A} Å⁻¹: expected a positive number")

    @property
    def q_A(self) -> float:
        """Ring position |q| = 2π/d, Å⁻¹."""
        return 2.0 * math.pi / self.d_spacing_A


@dataclass(frozen=True)
class Spot:
    """A textured-film Bragg spot: a round Gaussian at (q_xy, q_z), Å⁻¹.

    ``intensity`` is the peak height in counts per pixel, ``width_A`` the σ in both
    directions. With ``mirror`` (fibre texture) the same spot is also at −q_xy.
    In transmission the coordinates are read as (q_x, q_y).
    """

    q_xy_A: float
    q_z_A: float
    intensity: float = 1.0
    width_A: float = 0.01
    mirror: bool = True

    def __post_init__(self) -> None:
        _check(_finite(self.q_xy_A) and _finite(self.q_z_A),
               f"spot position ({self.q_xy_A}, {self.q_z_A}) Å⁻¹: expected finite numbers")
        _check(_finite(self.intensity) and self.intensity >= 0,
               f"spot intensity {self.intensity}: expected zero or more")
        _check(_finite(self.width_A) and self.width_A > 0,
               f"spot width {self.width_A} Å⁻¹: expected a positive number")

    @property
    def centres_A(self) -> tuple[tuple[float, float], ...]:
        """(q_xy, q_z) of the spot and, with ``mirror``, of its partner at −q_xy."""
        if self.mirror and self.q_xy_A != 0:
            return (self.q_xy_A, self.q_z_A), (-self.q_xy_A, self.q_z_A)
        return ((self.q_xy_A, self.q_z_A),)


@dataclass(frozen=True)
class Pattern:
    """What the sample scatters: rings, spots and a flat background (counts per pixel)."""

    rings: tuple[Ring, ...] = ()
    spots: tuple[Spot, ...] = ()
    background: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rings", tuple(self.rings))
        object.__setattr__(self, "spots", tuple(self.spots))
        _check(_finite(self.background) and self.background >= 0,
               f"background {self.background}: expected zero or more counts per pixel")

    def evaluate(self, q_A: ArrayLike, q_xy_A: ArrayLike, q_z_A: ArrayLike) -> np.ndarray:
        """The intensity at points of reciprocal space (any broadcastable arrays, Å⁻¹).

        ``q_A`` is |q| (rings), (``q_xy_A``, ``q_z_A``) place the spots — in
        transmission pass (q_x, q_y). Use it on pixels or on the centres of output bins
        (for grazing incidence |q| = √(q_xy² + q_z²)).
        """
        q, q_xy, q_z = (np.ascontiguousarray(a, dtype=float)
                        for a in np.broadcast_arrays(q_A, q_xy_A, q_z_A))
        out = np.full(q.shape, float(self.background))
        flat = out.reshape(-1)
        for ring in self.rings:
            _add_gaussian(flat, (q.reshape(-1),), (ring.q_A,), ring.width_A, ring.intensity)
        for spot in self.spots:
            for centre in spot.centres_A:
                _add_gaussian(flat, (q_xy.reshape(-1), q_z.reshape(-1)), centre,
                              spot.width_A, spot.intensity)
        return out


def _add_gaussian(out: np.ndarray, coords: tuple[np.ndarray, ...],
                  centre: tuple[float, ...], sigma: float, height: float) -> None:
    """out += height · exp(−|c − centre|² / 2σ²), evaluated only within 6σ (flat arrays)."""
    if height == 0:
        return
    reach = _REACH_SIGMA * sigma
    index = np.flatnonzero(np.abs(coords[0] - centre[0]) < reach)
    for values, c in zip(coords[1:], centre[1:], strict=True):
        index = index[np.abs(values[index] - c) < reach]
    if index.size == 0:
        return
    r2 = np.zeros(index.size)
    for values, c in zip(coords, centre, strict=True):
        r2 += (values[index] - c) ** 2
    out[index] += height * np.exp(r2 * (-0.5 / (sigma * sigma)))


# --- detector response ----------------------------------------------------------------

def horizon_factor(alpha_f_rad: np.ndarray) -> np.ndarray:
    """Shadow of the sample: 0 for α_f ≤ 0, a linear rise to 1 at α_f = 0.01°."""
    return np.clip(alpha_f_rad / math.radians(HORIZON_WIDTH_DEG), 0.0, 1.0)


def fresnel_exit_factor(alpha_f_rad: np.ndarray, critical_angle_deg: float) -> np.ndarray:
    """|t(α_f)|², the film's Fresnel transmission for the exit wave (Yoneda band).

    0 at and below the horizon, maximal near α_f = α_c, → 1 for α_f ≫ α_c.
    """
    sin_c2 = math.sin(math.radians(critical_angle_deg)) ** 2  # = 2δ
    beta = BETA_OVER_DELTA * sin_c2 / 2.0
    s = np.sin(np.maximum(alpha_f_rad, 0.0))
    kz = np.sqrt(s * s - sin_c2 + 2j * beta)
    return np.abs(2.0 * s / (s + kz)) ** 2


def detector_response(geometry, sample: SampleGeometry, coords: PixelCoordinates | None = None,
                      *, apply_solid_angle: bool = True,
                      polarization_factor: float | None = None, horizon: bool = True,
                      critical_angle_deg: float = 0.0) -> np.ndarray:
    """Ω × P × H × F per pixel (see the module docstring); 1 where nothing applies."""
    _check(_finite(critical_angle_deg) and 0 <= critical_angle_deg < 90,
           f"critical angle {critical_angle_deg}°: expected 0° (none) to 90°")
    grazing = sample.mode == "gid"
    _check(grazing or critical_angle_deg == 0,
           "a critical angle (Yoneda band) applies to grazing incidence only")
    response = np.ones(geometry.shape)
    if apply_solid_angle:
        response *= geometry.solid_angle()
    if polarization_factor is not None:
        _check(_finite(polarization_factor) and -1 <= polarization_factor <= 1,
               f"polarization factor {polarization_factor}: expected -1 to 1")
        response *= geometry.pyfai.polarization(factor=polarization_factor)
    if grazing and (horizon or critical_angle_deg > 0):
        if coords is None:
            coords = pixel_coordinates(geometry, sample)
        alpha_f = coords.alpha_f
        if horizon:
            response *= horizon_factor(alpha_f)
        if critical_angle_deg > 0:
            above = alpha_f > 0
            response[above] *= fresnel_exit_factor(alpha_f[above], critical_angle_deg)
    return response


# --- recording --------------------------------------------------------------------------

def _record(expected: np.ndarray, *, noise: bool, rng: np.random.Generator,
            gaps: np.ndarray | None, dtype: DTypeLike | None) -> np.ndarray:
    """Poisson counts (or the expectation), gaps set to 0, cast to *dtype*.

    Integer types saturate at their maximum, like a counter; without noise an integer
    *dtype* gets the expectation rounded to the nearest count.
    """
    target = np.dtype(dtype if dtype is not None else (np.uint32 if noise else np.float64))
    values = rng.poisson(expected).astype(np.float64) if noise else expected
    if np.issubdtype(target, np.integer):
        info = np.iinfo(target)
        values = np.clip(np.rint(values), max(info.min, 0), info.max)
    elif not np.issubdtype(target, np.floating):
        raise NxgidError(f"dtype {target}: expected an integer or floating-point type")
    frame = values.astype(target)
    if gaps is not None:
        frame[gaps] = 0
    return frame


def _check_expected(expected: np.ndarray) -> np.ndarray:
    _check(bool(np.all(np.isfinite(expected))), "simulated intensity is not finite everywhere")
    _check(bool(np.all(expected >= 0)), "simulated intensity is negative somewhere: a "
           "scattered intensity must be zero or more")
    return expected


def _gaps(geometry, mask_gaps: bool) -> np.ndarray | None:
    mask = geometry.detector_mask if mask_gaps else None
    return mask if mask is not None and mask.any() else None


def _sample_intensity(coords: PixelCoordinates, pattern: Pattern) -> np.ndarray:
    if coords.sample.mode == "gid":
        return pattern.evaluate(coords.q, coords.q_xy, coords.q_z)
    return pattern.evaluate(coords.q, coords.q_x, coords.q_y)


def simulate(geometry, sample: SampleGeometry, pattern: Pattern, *, exposure: float = 1.0,
             noise: bool = True, seed: int | None = 0, apply_solid_angle: bool = True,
             polarization_factor: float | None = None, mask_gaps: bool = True,
             horizon: bool = True, critical_angle_deg: float = 0.0,
             dtype: DTypeLike | None = None) -> np.ndarray:
    """One detector frame (rows, cols) of *pattern* seen by *geometry* for *sample*.

    Expected counts = exposure × pattern × response (solid angle, polarization, horizon,
    Yoneda band: see the module docstring); Poisson counts from
    ``default_rng(seed)`` when *noise*, else the expectation. *dtype* defaults to
    uint32 with noise and float64 without.
    """
    _check(_finite(exposure) and exposure >= 0, f"exposure {exposure}: expected zero or more")
    coords = pixel_coordinates(geometry, sample)
    response = detector_response(geometry, sample, coords, apply_solid_angle=apply_solid_angle,
                                 polarization_factor=polarization_factor, horizon=horizon,
                                 critical_angle_deg=critical_angle_deg)
    expected = _sample_intensity(coords, pattern)
    expected *= response
    expected *= exposure
    return _record(expected, noise=noise, rng=np.random.default_rng(seed),
                   gaps=_gaps(geometry, mask_gaps), dtype=dtype)


def simulate_function(geometry, sample: SampleGeometry, func: IntensityFunction, *,
                      exposure: float = 1.0, noise: bool = True, seed: int | None = 0,
                      apply_solid_angle: bool = True, polarization_factor: float | None = None,
                      mask_gaps: bool = True, horizon: bool = True,
                      critical_angle_deg: float = 0.0,
                      dtype: DTypeLike | None = None) -> np.ndarray:
    """A frame of a known reciprocal-space intensity ``func(coords)``.

    *func* gets the pixels' :class:`~nxgid.geometry.PixelCoordinates` (``q``, ``q_xy``,
    ``q_z``, ``q_x``, ``q_y``, … in Å⁻¹, angles in radians) and returns counts per pixel
    for exposure 1 (an array of the detector shape, or anything that broadcasts to it:
    ``lambda c: 100.0`` is a flat reciprocal space, ``lambda c: 50 * np.exp(-c.q_z)``
    decays along q_z). The other arguments are those of :func:`simulate`; with
    ``apply_solid_angle`` the frame divided by the solid angle is *func* again.
    """
    _check(_finite(exposure) and exposure >= 0, f"exposure {exposure}: expected zero or more")
    coords = pixel_coordinates(geometry, sample)
    response = detector_response(geometry, sample, coords, apply_solid_angle=apply_solid_angle,
                                 polarization_factor=polarization_factor, horizon=horizon,
                                 critical_angle_deg=critical_angle_deg)
    with np.errstate(invalid="ignore"):
        intensity = np.broadcast_to(np.asarray(func(coords), dtype=float), geometry.shape)
    expected = _check_expected(intensity) * response * exposure  # check the sample's own
    return _record(expected, noise=noise, rng=np.random.default_rng(seed),
                   gaps=_gaps(geometry, mask_gaps), dtype=dtype)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence | np.ndarray) and not isinstance(value, str)


def _per_frame(name: str, value: Any, frames: int) -> list[Any]:
    if _is_sequence(value):
        _check(len(value) == frames, f"{name}: {len(value)} values for {frames} frames")
        return list(value)
    return [value] * frames


def _frame_count(patterns: Pattern | Sequence[Pattern], exposure: float | Sequence[float],
                 frames: int | None) -> int:
    counts = {len(v) for v in (patterns, exposure) if _is_sequence(v)}
    if frames is not None:
        counts.add(frames)
    _check(len(counts) <= 1, f"stack: inconsistent numbers of frames {sorted(counts)}")
    _check(len(counts) == 1, "stack: give frames, or a sequence of patterns or exposures")
    n = counts.pop()
    _check(n >= 1, f"stack: {n} frames, expected at least 1")
    return n


def simulate_stack(geometry, sample: SampleGeometry,
                   patterns: Pattern | Sequence[Pattern], *, frames: int | None = None,
                   exposure: float | Sequence[float] = 1.0, noise: bool = True,
                   seed: int | None = 0, apply_solid_angle: bool = True,
                   polarization_factor: float | None = None, mask_gaps: bool = True,
                   horizon: bool = True, critical_angle_deg: float = 0.0,
                   dtype: DTypeLike | None = None) -> np.ndarray:
    """A stack (frames, rows, cols): one pattern and/or exposure per frame.

    Give a sequence of patterns, a sequence of exposures, or *frames* to repeat one.
    Frame i is exactly ``simulate(pattern_i, exposure=exposure_i, seed=seed + i, …)``
    (``seed=None``: unseeded); coordinates and response are computed once.
    """
    n = _frame_count(patterns, exposure, frames)
    pattern_list = _per_frame("patterns", patterns, n)
    exposures = [float(e) for e in _per_frame("exposure", exposure, n)]
    for e in exposures:
        _check(_finite(e) and e >= 0, f"exposure {e}: expected zero or more")
    coords = pixel_coordinates(geometry, sample)
    response = detector_response(geometry, sample, coords, apply_solid_angle=apply_solid_angle,
                                 polarization_factor=polarization_factor, horizon=horizon,
                                 critical_angle_deg=critical_angle_deg)
    gaps = _gaps(geometry, mask_gaps)
    cache: dict[Pattern, np.ndarray] = {}
    stack = []
    for i, (pattern, e) in enumerate(zip(pattern_list, exposures, strict=True)):
        if pattern not in cache:
            cache[pattern] = _sample_intensity(coords, pattern) * response
        rng = np.random.default_rng(None if seed is None else seed + i)
        stack.append(_record(cache[pattern] * e, noise=noise, rng=rng, gaps=gaps, dtype=dtype))
    return np.stack(stack)
