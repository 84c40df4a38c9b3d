"""Output grids: regular bins along named axes, and the targets (maps and profiles).

An :class:`Axis` of ``bins`` bins from ``start`` to ``stop`` has

* edges   ``start + i·step`` for i = 0 … bins, with step = (stop − start) / bins,
* centres ``start + (i + ½)·step`` for i = 0 … bins − 1,

and a pixel whose coordinate v satisfies ``start ≤ v < stop`` falls in bin
``floor((v − start) / step)`` (v = stop goes to the last bin). This is exactly pyFAI's
histogram binning for ``npt = bins`` and ``range = (start, stop)``, so a pyFAI result
with those arguments can be compared bin by bin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nxgid.errors import NxgidError
from nxgid.geometry.coordinates import Q_AXES
from nxgid.names import MAP_RESULTS, PROFILE_RESULTS
from nxgid.units import Q_SCALE, check_q_unit


@dataclass(frozen=True)
class Axis:
    """Regular bins along one output axis; values in the axis unit (q unit or degrees)."""

    name: str
    start: float
    stop: float
    bins: int
    unit: str = "A^-1"

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise NxgidError(f"axis {self.name}: bins = {self.bins}, expected at least 1")
        if not (math.isfinite(self.start) and math.isfinite(self.stop)) or \
                self.stop <= self.start:
            raise NxgidError(f"axis {self.name}: range {self.start} … {self.stop} is empty; "
                             "expected start < stop")

    @classmethod
    def from_step(cls, name: str, start: float, stop: float, step: float,
                  unit: str = "A^-1") -> Axis:
        """Bins of width *step* from *start*; the last edge is at or just past *stop*."""
        if step <= 0:
            raise NxgidError(f"axis {name}: step {step} must be positive")
        bins = max(1, math.ceil((stop - start) / step - 1e-9))
        return cls(name, start, start + bins * step, bins, unit)

    @property
    def step(self) -> float:
        return (self.stop - self.start) / self.bins

    @property
    def edges(self) -> np.ndarray:
        return self.start + np.arange(self.bins + 1) * self.step

    @property
    def centres(self) -> np.ndarray:
        return self.start + (np.arange(self.bins) + 0.5) * self.step

    @property
    def is_q(self) -> bool:
        return self.name in Q_AXES

    def index(self, values: np.ndarray) -> np.ndarray:
        """Bin of every value (int64), −1 outside ``[start, stop]`` or not finite."""
        with np.errstate(invalid="ignore"):
            position = (values - self.start) / self.step
            index = np.floor(position)
            # rounding in (v − start)/step must not push a value of [start, stop] out
            index[(index >= self.bins) & (values <= self.stop)] = self.bins - 1
            index[(index < 0) & (values >= self.start)] = 0
            outside = ~((index >= 0) & (index < self.bins))
        index[outside] = -1
        return index.astype(np.int64)

    def describe(self) -> dict:
        return {"name": self.name, "start": self.start, "stop": self.stop, "bins": self.bins,
                "unit": "deg" if not self.is_q else self.unit}


@dataclass(frozen=True)
class Target:
    """One result: a 2D map (axes x, y) or a 1D profile (axis x) with cut ranges.

    ``cuts`` restricts which pixels count, by ranges of other coordinates, e.g. a
    ``vert_cut_gid`` over ``q_z`` with ``cuts = {"q_xy": (-0.05, 0.05)}``.
    ``chi_from_deg`` is where the turn of χ starts for this target: azimuths are taken
    in ``[chi_from_deg, chi_from_deg + 360)`` (see :mod:`nxgid.conversion.footprint`).
    """

    name: str
    axes: tuple[Axis, ...]
    cuts: tuple[tuple[str, float, float], ...] = field(default=())
    chi_from_deg: float = -180.0

    @property
    def shape(self) -> tuple[int, ...]:
        """Output shape: (y bins, x bins) for maps (rows = y), (x bins,) for profiles."""
        return tuple(axis.bins for axis in reversed(self.axes))

    @property
    def geometry(self) -> str:
        if self.name in MAP_RESULTS:
            return MAP_RESULTS[self.name][0]
        return PROFILE_RESULTS[self.name][0]

    def describe(self) -> dict:
        return {"name": self.name, "axes": [a.describe() for a in self.axes],
                "cuts": [list(c) for c in self.cuts], "chi_from_deg": self.chi_from_deg}


def axis_names(result: str) -> tuple[str, ...]:
    """(x, y) axes of a map, (x,) of a profile."""
    if result in MAP_RESULTS:
        return MAP_RESULTS[result][1]
    if result in PROFILE_RESULTS:
        return (PROFILE_RESULTS[result][1],)
    raise NxgidError(f"unknown result {result!r}: expected one of "
                     + ", ".join([*MAP_RESULTS, *PROFILE_RESULTS]))


#: The coordinate a profile is cut along by default: profile -> (cut axis, default range).
PROFILE_CUTS: dict[str, tuple[str, tuple[float, float] | None]] = {
    "rad_cut_gid": ("ang_gid_pol", (0.0, 180.0)),
    "azim_cut_gid": ("q_gid_pol", None),
    "horiz_cut_gid": ("q_z", None),
    "vert_cut_gid": ("q_xy", None),
    "rad_cut": ("ang_pol", (-180.0, 180.0)),
    "azim_cut": ("q_pol", None),
}


def pixel_step(values: np.ndarray) -> float:
    """The median change of a coordinate between neighbouring pixels (the larger of the
    row and column medians): a typical pixel step, not a footprint."""
    if values.ndim != 2:
        return float(np.ptp(values[np.isfinite(values)])) / 1000 or 1.0
    steps = []
    with np.errstate(invalid="ignore"):
        for diff in (np.diff(values[::8], axis=1), np.diff(values[:, ::8], axis=0)):
            d = np.abs(diff[np.isfinite(diff)])
            d = d[d > 0]
            if d.size:
                steps.append(np.median(d))
    return float(max(steps)) if steps else 1.0


def scale_for(axis_name: str, q_unit: str) -> float:
    """Factor from nxgid's internal values (Å⁻¹, degrees) to the output unit."""
    return Q_SCALE[check_q_unit(q_unit)] if axis_name in Q_AXES else 1.0
