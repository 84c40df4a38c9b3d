"""Where every pixel lands in output coordinates: its centre and the box of its corners.

Along each output axis a pixel has a *centre value* (the coordinate of its centre) and a
*box*, the interval between the lowest and highest coordinate of its four corners: its
footprint. Pixel splitting shares a pixel among the bins its box overlaps, and the
automatic bin width (:mod:`nxgid.conversion.autobins`) is taken from the boxes.

Two kinds of axes need care:

* **Azimuths are periodic.** χ (``ang_gid_pol``, ``ang_pol``) is taken in the turn
  ``[chi_from, chi_from + 360°)`` that the target asks for, so a range such as −10…190°
  or 90…270° holds the pixels it should; |q|·χ (``q_gid_azimuth``, ``q_azimuth``) uses
  the same χ. A pixel's corners are unwrapped around its centre: a pixel on the seam
  gets a box that crosses the seam, not one that spans the whole turn.
* **The grazing-incidence missing wedge.** q_xy jumps from −|q_beam| to +|q_beam| across
  the meridian (where the horizontal component of q changes sign), and so do χ and |q|·χ
  there. A pixel whose corners lie on both sides straddles the wedge: its box would span
  the wedge although no part of the pixel looks into it. Such pixels are never split;
  they go whole to the bin of their centre (:attr:`Footprints.straddles_wedge`), so no
  intensity is smeared into the wedge.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from nxgid.geometry.coordinates import PixelCoordinates, per_pixel_corners
from nxgid.units import Q_SCALE

#: Azimuth angles (degrees), periodic.
CHI_AXES = frozenset({"ang_gid_pol", "ang_pol"})
#: |q|·χ arc lengths, built on the same χ.
AZIMUTH_AXES = frozenset({"q_gid_azimuth", "q_azimuth"})
#: Axes that jump across the grazing-incidence missing wedge.
WEDGE_AXES = frozenset({"q_xy", "ang_gid_pol", "q_gid_azimuth"})


def wrap_deg(values: np.ndarray, start: float) -> np.ndarray:
    """Angles (degrees) taken into the turn ``[start, start + 360)``.

    Angles already in the turn are returned bit for bit: an automatic range is taken
    from the angles in one turn and the pixels are binned in another, and the rounding
    of ``start + mod(v − start, 360)`` would otherwise move the pixel at the range's edge
    just outside it (or, just below ``start``, a whole turn away)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        wrapped = start + np.mod(values - start, 360.0)
        wrapped[wrapped >= start + 360.0] -= 360.0
        return np.where((values >= start) & (values < start + 360.0), values, wrapped)


def _wrap_half_turn(values: np.ndarray) -> np.ndarray:
    """Angle differences (degrees) taken into [−180, 180)."""
    return np.mod(values + 180.0, 360.0) - 180.0


class Footprints:
    """Centre values and corner boxes of every pixel along output axes, for one sample
    geometry (one incidence angle); values in the output units (the q unit, degrees).

    *centres* are the coordinates of the pixel centres, *corners* those of the corner
    points (:func:`nxgid.geometry.coordinates.pixel_coordinates` with ``corners=True``;
    None when no box is needed).
    """

    def __init__(self, centres: PixelCoordinates, corners: PixelCoordinates | None,
                 q_unit: str) -> None:
        self.centres = centres
        self.corners = corners
        self.q_scale = Q_SCALE[q_unit]
        self.gid = centres.sample.mode == "gid"
        self._values: dict[tuple[str, float], np.ndarray] = {}
        self._boxes: dict[tuple[str, float], tuple[np.ndarray, np.ndarray]] = {}

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.centres.q.shape)

    def _chi_deg(self, coords: PixelCoordinates) -> np.ndarray:
        return np.degrees(coords.chi_gid if self.gid else coords.chi)

    def _scale(self, name: str) -> float:
        return 1.0 if name.startswith("ang_") else self.q_scale

    def values(self, name: str, chi_from_deg: float = -180.0) -> np.ndarray:
        """The value of axis *name* at every pixel centre (χ in the turn from
        *chi_from_deg*)."""
        periodic = name in CHI_AXES or name in AZIMUTH_AXES
        key = (name, float(chi_from_deg) if periodic else 0.0)
        if key not in self._values:
            coords = self.centres
            if name in CHI_AXES:
                value = wrap_deg(self._chi_deg(coords), chi_from_deg)
            elif name in AZIMUTH_AXES:
                chi = wrap_deg(self._chi_deg(coords), chi_from_deg)
                value = coords.q * self.q_scale * np.radians(chi)
            else:
                value = coords.axis_values(name) * self._scale(name)
            self._values[key] = value
        return self._values[key]

    def corner_values(self, name: str, chi_from_deg: float = -180.0) -> np.ndarray:
        """The value of axis *name* at the four corners of every pixel, (rows, cols, 4)
        in pyFAI's corner order, consistent with the pixel's centre value (periodic axes
        unwrapped around it)."""
        corners = self.corners
        if corners is None:
            raise ValueError("these footprints were made without corner coordinates")
        if name in CHI_AXES or name in AZIMUTH_AXES:
            centre_chi = wrap_deg(self._chi_deg(self.centres), chi_from_deg)
            chi = per_pixel_corners(self._chi_deg(corners))
            chi = centre_chi[..., np.newaxis] + \
                _wrap_half_turn(chi - centre_chi[..., np.newaxis])
            if name in CHI_AXES:
                return chi
            return per_pixel_corners(corners.q) * self.q_scale * np.radians(chi)
        return per_pixel_corners(corners.axis_values(name)) * self._scale(name)

    def box(self, name: str, chi_from_deg: float = -180.0
            ) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of every pixel's corners along axis *name*, consistent with its
        centre value (periodic axes unwrapped around the centre). NaN where a corner has
        no value (e.g. below the critical angle with refraction)."""
        periodic = name in CHI_AXES or name in AZIMUTH_AXES
        key = (name, float(chi_from_deg) if periodic else 0.0)
        if key not in self._boxes:
            values = self.corner_values(name, chi_from_deg)
            with np.errstate(invalid="ignore"):
                self._boxes[key] = (values.min(axis=-1), values.max(axis=-1))
        return self._boxes[key]

    def extent(self, name: str, chi_from_deg: float = -180.0) -> np.ndarray:
        """Width of every pixel's box along *name* (its footprint)."""
        lo, hi = self.box(name, chi_from_deg)
        return hi - lo

    @cached_property
    def straddles_wedge(self) -> np.ndarray:
        """True for the pixels whose corners lie on both sides of the grazing-incidence
        meridian (all False in transmission or without corners)."""
        if not self.gid or self.corners is None:
            return np.zeros(self.shape, dtype=bool)
        sign = per_pixel_corners(np.signbit(self.corners.q_horizontal))
        return sign.any(axis=-1) & ~sign.all(axis=-1)
