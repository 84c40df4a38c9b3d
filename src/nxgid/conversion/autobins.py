"""Automatic ranges and bins: what a result covers, and how finely, when not told.

* **Range.** From the lowest to the highest value the usable (unmasked) pixels reach at
  every incidence angle the converter is told about — the edges of their footprints
  when pixels may be split, so no weight is lost at the edges. A grazing-incidence polar
  or pseudo-polar map covers the half-space above the sample horizon (χ from 0 to 180°,
  q_z ≥ 0), where the film scatters; what the detector sees below the horizon is in the
  q_xy/q_z and exit-angle maps. A transmission azimuth covers the shortest arc of χ that
  holds every pixel (it crosses ±180° when the detector lies to that side).
* **Width.** The 90th percentile of the pixel footprints along the axis (the extent of
  a pixel's corners, :mod:`nxgid.conversion.footprint`): nine pixels in ten fit in one
  bin, so the map keeps the detector's resolution. Along χ, footprints grow as 1/|q|
  towards the beam centre; the pixels wider than a bin are split among the bins they
  cover (pixel splitting ``auto``, the default), so no bin of the covered region is
  left empty however fine the bins.
* **Size.** At most ``max_bins`` bins per frame (:data:`MAX_BINS`, 4 M, by default):
  automatic axes are made coarser, all by the same factor, until a result fits; bins
  given explicitly beyond the limit are refused with a message saying what to do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nxgid.conversion.footprint import AZIMUTH_AXES, CHI_AXES, Footprints
from nxgid.conversion.grid import PROFILE_CUTS, Axis, Target, axis_names
from nxgid.errors import NxgidError
from nxgid.geometry.coordinates import Q_AXES

#: Bins per frame a result may have unless the caller allows more.
MAX_BINS = 4_000_000
#: The automatic bin width is this quantile of the pixel footprints along the axis.
FOOTPRINT_QUANTILE = 0.9
#: Where χ starts its turn in grazing incidence unless a range says otherwise: straight
#: down into the sample, where no pixel looks.
GID_CHI_FROM_DEG = -90.0
#: A gap in the azimuths seen narrower than this is not a gap (the full turn is covered).
_MIN_ARC_GAP_DEG = 1.0


def format_bins(count: float) -> str:
    """A bin count as people say it: 950, 2.4 k, 4 M."""
    if count >= 1e6:
        return f"{count / 1e6:.3g} M"
    if count >= 1e4:
        return f"{count / 1e3:.3g} k"
    return f"{count:.0f}"


def covering_arc(angles_deg: np.ndarray) -> tuple[float, float]:
    """The shortest arc ``(start, stop)`` in degrees, start in [−180, 180), holding every
    finite angle of *angles_deg*; the full turn (−180, 180) when no gap is wider than
    1°."""
    values = np.unique(np.round(np.mod(angles_deg[np.isfinite(angles_deg)], 360.0), 6))
    if values.size < 2:
        return -180.0, 180.0
    gaps = np.diff(np.concatenate([values, values[:1] + 360.0]))
    widest = int(np.argmax(gaps))
    if gaps[widest] < _MIN_ARC_GAP_DEG:
        return -180.0, 180.0
    start = float(values[(widest + 1) % values.size])
    length = 360.0 - float(gaps[widest])
    start = (start + 180.0) % 360.0 - 180.0
    return start, start + length


class _Region:
    """The pixels an automatic axis is taken from, and how."""

    def __init__(self, footprints: Sequence[Footprints], usable: np.ndarray,
                 boxes: bool) -> None:
        self.footprints = footprints
        self.usable = usable
        self.boxes = boxes

    def pixels(self, fp: Footprints, name: str) -> np.ndarray:
        if fp.gid and (name in CHI_AXES or name in AZIMUTH_AXES):
            with np.errstate(invalid="ignore"):
                above = self.usable & (fp.centres.q_z >= 0)  # above the sample horizon
            if above.any():
                return above
        return self.usable

    def edges(self, fp: Footprints, name: str, chi_from: float) -> np.ndarray:
        """Values an automatic range must hold: box edges (or centres) of the pixels."""
        inside = self.pixels(fp, name)
        if self.boxes:
            lo, hi = fp.box(name, chi_from)
            values = np.concatenate([lo[inside], hi[inside]])
        else:
            values = fp.values(name, chi_from)[inside]
        return values[np.isfinite(values)]

    def extents(self, name: str, chi_from: float) -> np.ndarray:
        """Footprints along *name* of the pixels of the first angle (not straddling the
        missing wedge: their boxes span it)."""
        fp = self.footprints[0]
        inside = self.pixels(fp, name) & ~fp.straddles_wedge
        extent = fp.extent(name, chi_from)[inside]
        return extent[np.isfinite(extent) & (extent > 0)]


def _chi_from(spec, fp: Footprints, region: _Region) -> float:
    """Where the turn of χ starts for a result (see :class:`Target`)."""
    names = axis_names(spec.name)
    chi_axis = next((n for n in names if n in CHI_AXES), None)
    if chi_axis is not None:
        if chi_axis in spec.ranges:
            return float(spec.ranges[chi_axis][0])
        return _auto_range(chi_axis, region, None)[0]
    if spec.name in PROFILE_CUTS and PROFILE_CUTS[spec.name][0] in CHI_AXES:
        cut = spec.cut or PROFILE_CUTS[spec.name][1]
        return float(cut[0]) if cut is not None else -180.0
    if any(n in AZIMUTH_AXES for n in names) and not fp.gid:
        return covering_arc(region.edges(fp, "ang_pol", -180.0))[0]
    return GID_CHI_FROM_DEG if fp.gid else -180.0


def _auto_range(name: str, region: _Region, chi_from: float | None) -> tuple[float, float]:
    if name in CHI_AXES:
        fp0 = region.footprints[0]
        if fp0.gid and (region.pixels(fp0, name) is not region.usable):
            values = np.concatenate([region.edges(fp, name, GID_CHI_FROM_DEG)
                                     for fp in region.footprints])
            return max(0.0, float(values.min())), min(180.0, float(values.max()))
        values = np.concatenate([region.edges(fp, name, -180.0) for fp in region.footprints])
        return covering_arc(values)
    values = np.concatenate([region.edges(fp, name, -180.0 if chi_from is None else chi_from)
                             for fp in region.footprints])
    if not values.size:
        raise NxgidError(f"axis {name}: no usable pixel has a value")
    lo, hi = float(values.min()), float(values.max())
    fp0 = region.footprints[0]
    if name in AZIMUTH_AXES and fp0.gid and region.pixels(fp0, name) is not region.usable:
        lo = max(lo, 0.0)  # above the horizon, χ ≥ 0
    return lo, hi


def _auto_step(name: str, region: _Region, chi_from: float) -> float:
    extent = region.extents(name, chi_from)
    if not extent.size:
        return 0.0
    return float(np.quantile(extent, FOOTPRINT_QUANTILE))


def resolve_targets(specs: Sequence, footprints: Sequence[Footprints], usable: np.ndarray,
                    *, q_unit: str, split: bool, max_bins: int = MAX_BINS) -> list[Target]:
    """Concrete targets: the given ranges, bins and steps, and automatic ones for the rest
    (see the module docstring). *footprints* has one entry per incidence angle; *split*
    says whether pixels may be split (then ranges hold the pixels' whole boxes)."""
    region = _Region(footprints, usable, split)
    targets = []
    for spec in specs:
        chi_from = _chi_from(spec, footprints[0], region)
        names = axis_names(spec.name)
        ranges, steps, automatic = [], [], []
        for name in names:
            lo, hi = spec.ranges.get(name) or _auto_range(name, region, chi_from)
            if not hi > lo:
                raise NxgidError(f"{spec.name}: axis {name} range {lo} … {hi} is empty; "
                                 "expected start < stop")
            if name in spec.bins:
                step = (hi - lo) / spec.bins[name]
            elif name in spec.steps:
                step = float(spec.steps[name])
            else:
                step = _auto_step(name, region, chi_from) or (hi - lo) / 1000
            ranges.append((float(lo), float(hi)))
            steps.append(step)
            automatic.append(name not in spec.bins and name not in spec.steps)
        counts = _fit(spec.name, names, ranges, steps, automatic, max_bins)
        axes = tuple(Axis(name, lo, lo + count * step if name in spec.steps else hi,
                          count, q_unit if name in Q_AXES else "deg")
                     for name, (lo, hi), step, count in zip(names, ranges, steps, counts,
                                                            strict=True))
        cuts: tuple[tuple[str, float, float], ...] = ()
        if spec.name in PROFILE_CUTS:
            cut_axis, default = PROFILE_CUTS[spec.name]
            cut = spec.cut or default
            if cut is not None:
                cuts = ((cut_axis, float(cut[0]), float(cut[1])),)
        targets.append(Target(spec.name, axes, cuts, chi_from))
    return targets


def _fit(result: str, names: Sequence[str], ranges, steps, automatic, max_bins: int
         ) -> list[int]:
    """Bin counts within *max_bins*: automatic axes coarsened together if needed."""
    def count(index: int, factor: float = 1.0) -> int:
        lo, hi = ranges[index]
        bins = (hi - lo) / (steps[index] * factor)
        # automatic bins are never narrower than the footprint they were taken from
        rounded = math.floor(bins + 1e-9) if automatic[index] else math.ceil(bins - 1e-9)
        return max(1, rounded)

    counts = [count(i) for i in range(len(names))]
    total = math.prod(counts)
    if total <= max_bins:
        return counts
    fixed = math.prod(c for c, auto in zip(counts, automatic, strict=True) if not auto)
    free = [i for i, auto in enumerate(automatic) if auto]
    if not free or fixed > max_bins:
        shape = " × ".join(f"{names[i]} {counts[i]}" for i in range(len(names)))
        raise NxgidError(
            f"{result}: {shape} = {format_bins(total)} bins per frame, more than the "
            f"{format_bins(max_bins)} allowed; choose fewer bins or a larger step "
            f"(e.g. {', '.join(f'{n}={max(1, counts[i] // 4)}' for i, n in enumerate(names))})"
            f", or allow it with max_bins ≥ {total} (nxgid convert --max-bins)")
    factor = (total / max_bins) ** (1.0 / len(free))
    while True:
        counts = [count(i, factor) if i in free else counts[i] for i in range(len(names))]
        if math.prod(counts) <= max_bins:
            return counts
        factor *= 1.01
