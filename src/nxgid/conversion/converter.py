"""The converter: detector frames → reciprocal-space maps and profiles.

    geometry = DetectorGeometry.from_poni("lab6.poni")
    sample = SampleGeometry.grazing(incidence_deg=0.15)
    converter = Converter(geometry, sample, ["img_gid_q", "img_gid_pol",
                                             TargetSpec("vert_cut_gid", cut=(-0.05, 0.05))])
    results = converter.convert(frames)            # {"img_gid_q": Result, …}
    for block in converter.convert_blocks(reader, block_frames=16): …   # constant memory

Maps are built once per (geometry, sample, target, corrections, mask, dark, flat) and
reused for every frame; with several incidence angles, once per angle.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from nxgid.conversion.autobins import MAX_BINS, resolve_targets
from nxgid.conversion.binmap import SPLITTING, BinMap, build_binmap
from nxgid.conversion.footprint import WEDGE_AXES, Footprints
from nxgid.conversion.grid import Axis, Target, axis_names
from nxgid.conversion.result import Result
from nxgid.errors import NxgidError
from nxgid.geometry.coordinates import (
    PixelCoordinates,
    SampleGeometry,
    pixel_coordinates,
)
from nxgid.geometry.detector import DetectorGeometry
from nxgid.names import MAP_RESULTS, PROFILE_RESULTS
from nxgid.units import check_q_unit

#: Pixels with any of the low 16 bits of an NXdetector ``pixel_mask`` set are ignored.
PIXEL_MASK_IGNORED_BITS = 0xFFFF


@dataclass(frozen=True)
class TargetSpec:
    """A requested result: its name, optional ranges, bin counts or steps per axis
    (axis units: the q unit or degrees), and for a profile the range of the coordinate
    it is cut over (e.g. the q_xy range of a ``vert_cut_gid``)."""

    name: str
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    bins: dict[str, int] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    cut: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        names = axis_names(self.name)
        for given in (*self.ranges, *self.bins, *self.steps):
            if given not in names:
                raise NxgidError(f"{self.name}: no axis {given!r}; its axes are "
                                 + ", ".join(names))
        if self.cut is not None and self.name not in PROFILE_RESULTS:
            raise NxgidError(f"{self.name}: only profiles take a cut range")


def combine_masks(shape: tuple[int, int], *masks: np.ndarray | None) -> np.ndarray:
    """True where a pixel is masked. Accepts boolean masks (True = masked) and integer
    NXdetector ``pixel_mask`` bitfields (masked if any of the low 16 bits is set)."""
    combined = np.zeros(shape, dtype=bool)
    for mask in masks:
        if mask is None:
            continue
        mask = np.asarray(mask)
        if mask.shape != shape:
            raise NxgidError(f"mask has shape {mask.shape}; the detector has {shape}")
        if mask.dtype == bool:
            combined |= mask
        elif np.issubdtype(mask.dtype, np.integer):
            combined |= (mask.astype(np.int64) & PIXEL_MASK_IGNORED_BITS) != 0
        else:
            raise NxgidError(f"mask of type {mask.dtype}: expected booleans or an integer "
                             "NXdetector pixel_mask")
    return combined


class Converter:
    """Converts frames of one detector geometry into the requested results."""

    def __init__(
        self,
        geometry: DetectorGeometry,
        sample: SampleGeometry,
        targets: Sequence[str | TargetSpec],
        *,
        q_unit: str = "A^-1",
        corrections=None,
        mask: np.ndarray | None = None,
        use_detector_mask: bool = True,
        dark: np.ndarray | None = None,
        flat: np.ndarray | None = None,
        valid_range: tuple[float | None, float | None] = (None, None),
        incidence_angles_deg: Sequence[float] | None = None,
        errors: bool = True,
        keep_sums: bool = False,
        pixel_splitting: str | bool = "auto",
        method: str = "integrate",
        max_bins: int = MAX_BINS,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        """*corrections* is a :class:`nxgid.conversion.corrections.Corrections` (None:
        no intensity corrections). *mask* is boolean (True = masked) or an NXdetector
        ``pixel_mask``; the detector's own gap mask is added unless *use_detector_mask*
        is False. *valid_range* (low, high) drops, frame by frame, pixels whose value lies
        outside it. *incidence_angles_deg* lists every angle the frames will have, so the
        default ranges cover them all. With *cache_dir*, resolved axes and maps are kept
        on disk and reused by later converters with the same inputs.
        *pixel_splitting* says which pixels are shared among the bins their area covers
        (the box of their corners) instead of going whole to the bin of their centre:
        ``"auto"`` (default) those wider than a bin, so no bin of the covered region is
        left empty; ``"all"`` every pixel; ``"none"`` none (True and False mean all and
        none). Pixels straddling the grazing-incidence missing wedge are never split.
        *method* ``"bilinear"`` or ``"nearest"`` samples maps at their bin centres
        (pygid-like; see :mod:`nxgid.conversion.interpolation`); profiles always
        integrate pixels. *max_bins* limits the bins per frame of every result
        (:mod:`nxgid.conversion.autobins`)."""
        from nxgid.conversion.interpolation import METHODS

        if method not in METHODS:
            raise NxgidError(f"method {method!r}: expected one of {', '.join(METHODS)}")
        if isinstance(pixel_splitting, bool):
            pixel_splitting = "all" if pixel_splitting else "none"
        if pixel_splitting not in SPLITTING:
            raise NxgidError(f"pixel splitting {pixel_splitting!r}: expected one of "
                             + ", ".join(SPLITTING))
        if method != "integrate" and pixel_splitting == "all":
            raise NxgidError("pixel splitting belongs to the integrate method, not to "
                             f"{method} interpolation")
        if max_bins < 1:
            raise NxgidError(f"max_bins = {max_bins}: expected at least 1")
        self.method = method
        self.max_bins = int(max_bins)
        self.geometry = geometry
        self.sample = sample
        self.q_unit = check_q_unit(q_unit)
        if corrections is not None:
            corrections.check_sample(sample)
        self.corrections = corrections
        self.errors = errors
        self.keep_sums = keep_sums
        self.pixel_splitting = pixel_splitting
        shape = geometry.shape
        self.mask = combine_masks(shape, mask,
                                  geometry.detector_mask if use_detector_mask else None)
        self.dark = None if dark is None else self._frame_like(dark, "dark")
        self.flat = None if flat is None else self._frame_like(flat, "flat")
        lo, hi = valid_range
        self.valid_range = (-math.inf if lo is None else float(lo),
                            math.inf if hi is None else float(hi))
        specs = [t if isinstance(t, TargetSpec) else TargetSpec(t) for t in targets]
        angles = [sample.incidence_deg] if incidence_angles_deg is None else \
            [float(a) for a in incidence_angles_deg]
        if not specs:
            raise NxgidError("nothing to convert: give at least one result name")
        for spec in specs:
            kind = MAP_RESULTS.get(spec.name, PROFILE_RESULTS.get(spec.name, ("", ())))[0]
            if kind != sample.mode:
                raise NxgidError(f"{spec.name} is a {kind} result but the sample is in "
                                 f"{sample.mode} geometry")
        self.specs = specs
        self._maps: dict[float, dict[str, BinMap]] = {}
        self._descriptions: dict[str | None, dict] = {}
        #: Pixel footprints per angle, kept from resolving the default ranges until the
        #: maps of that angle are built.
        self._footprints: dict[float, Footprints] = {}
        self._cache = None
        self._cache_key = ""
        if cache_dir is not None:
            from nxgid.conversion.cache import MapCache

            self._cache = MapCache(cache_dir)
            self._cache_key = self._key(specs, angles)
            cached = self._cache.load_targets(self._cache_key)
            if cached is not None:
                self.targets = cached
                return
        self.targets = self._resolve_targets(specs, angles)
        # the coordinates of every angle were needed for the ranges; keep only those of
        # the first (its maps come first), the others are computed again with their maps
        first = float(angles[0])
        self._footprints = {a: f for a, f in self._footprints.items() if a == first}
        if self._cache is not None:
            self._cache.save_targets(self._cache_key, self.targets)

    # --- set-up ---------------------------------------------------------------------

    def _key(self, specs: list[TargetSpec], angles: list[float]) -> str:
        from nxgid.conversion.cache import array_digest, make_key

        return make_key({
            "geometry": self.geometry.config(),
            "sample": [self.sample.mode, self.sample.incidence_deg, self.sample.tilt_deg,
                       self.sample.orientation],
            "targets": [[s.name, sorted(s.ranges.items()), sorted(s.bins.items()),
                         sorted(s.steps.items()), s.cut] for s in specs],
            "angles": angles,
            "q_unit": self.q_unit,
            "corrections": self.corrections.key() if self.corrections is not None else None,
            "mask": array_digest(self.mask),
            "dark": array_digest(self.dark),
            "flat": array_digest(self.flat),
            "pixel_splitting": self.pixel_splitting,
            "method": self.method,
            "max_bins": self.max_bins,
        })

    def _frame_like(self, array: np.ndarray, what: str) -> np.ndarray:
        array = np.asarray(array, dtype=np.float64)
        if array.shape != self.geometry.shape:
            raise NxgidError(f"{what} has shape {array.shape}; the detector has "
                             f"{self.geometry.shape}")
        return array

    @property
    def _splits(self) -> bool:
        """Whether any pixel may be split (maps of the interpolating methods never are)."""
        return self.pixel_splitting != "none"

    def _needs_corners(self) -> bool:
        """Corners are needed to split pixels and to choose automatic bins."""
        if self._splits:
            return True
        return any(name not in spec.ranges or
                   (name not in spec.bins and name not in spec.steps)
                   for spec in self.specs for name in axis_names(spec.name))

    def _coordinates(self, incidence_deg: float, *, corners: bool = False
                     ) -> PixelCoordinates:
        sample = self.sample
        if sample.mode == "gid" and incidence_deg != sample.incidence_deg:
            sample = replace(sample, incidence_deg=incidence_deg)
        coords = pixel_coordinates(self.geometry, sample, corners=corners)
        if self.corrections is not None and getattr(self.corrections, "refraction", False):
            from nxgid.conversion.corrections import refracted_q_z

            apply_refraction(coords, refracted_q_z(coords, self.corrections.critical_angle_deg))
        return coords

    def footprints(self, incidence_deg: float | None = None, *, corners: bool = False
                   ) -> Footprints:
        """Centre values and corner boxes of every pixel (:mod:`.footprint`) at one
        incidence angle; with corners when they are needed (or asked for)."""
        angle = self.sample.incidence_deg if incidence_deg is None else float(incidence_deg)
        if corners and angle in self._footprints and self._footprints[angle].corners is None:
            del self._footprints[angle]
        if angle not in self._footprints:
            corners = self._coordinates(angle, corners=True) \
                if corners or self._needs_corners() else None
            self._footprints[angle] = Footprints(self._coordinates(angle), corners,
                                                 self.q_unit)
        return self._footprints[angle]

    def _resolve_targets(self, specs: list[TargetSpec], angles: list[float]) -> list[Target]:
        """Concrete axes: given ranges and bins, else automatic ones
        (:mod:`nxgid.conversion.autobins`)."""
        footprints = [self.footprints(angle) for angle in dict.fromkeys(angles)]
        return resolve_targets(specs, footprints, ~self.mask, q_unit=self.q_unit,
                               split=self._splits, max_bins=self.max_bins)

    def binmaps(self, incidence_deg: float | None = None) -> dict[str, BinMap]:
        """The pixel→bin maps for one incidence angle (built on first use)."""
        angle = self.sample.incidence_deg if incidence_deg is None else float(incidence_deg)
        if angle not in self._maps and self._cache is not None:
            cached = self._cache.load_maps(self._cache_key, angle, self.targets)
            if cached is not None:
                self._maps[angle] = cached
                self._footprints.pop(angle, None)
        if angle not in self._maps:
            fp = self.footprints(angle)
            norm = np.ones(self.geometry.shape)
            if self.corrections is not None:
                from nxgid.conversion.corrections import correction_factors

                norm = correction_factors(self.corrections, self.geometry, fp.centres)
            if self.flat is not None:
                norm = norm * self.flat
            with np.errstate(invalid="ignore"):
                base_valid = ~self.mask & np.isfinite(norm) & (norm > 0)
            self._maps[angle] = {target.name: self._build_map(target, fp, base_valid, norm)
                                 for target in self.targets}
            self._footprints.pop(angle, None)  # maps built: free the coordinates
            if self._cache is not None:
                self._cache.save_maps(self._cache_key, angle, self._maps[angle])
        return self._maps[angle]

    def _build_map(self, target: Target, fp: Footprints, valid: np.ndarray,
                   norm: np.ndarray) -> BinMap:
        valid = valid.copy()
        for cut_axis, lo, hi in target.cuts:
            values = fp.values(cut_axis, target.chi_from_deg)
            with np.errstate(invalid="ignore"):
                valid &= (values >= lo) & (values <= hi)
        values = [fp.values(axis.name, target.chi_from_deg) for axis in target.axes]
        if self.method != "integrate" and len(target.axes) == 2:
            from nxgid.conversion.interpolation import build_interpolation_map

            return build_interpolation_map(target, values, valid, norm, self.dark,
                                           self.method)
        if not self._splits:
            return build_binmap(target, values, valid, norm, self.dark)
        boxes = [fp.box(axis.name, target.chi_from_deg) for axis in target.axes]
        straddle = fp.straddles_wedge \
            if any(axis.name in WEDGE_AXES for axis in target.axes) else None
        return build_binmap(target, values, valid, norm, self.dark, boxes=boxes,
                            split=self.pixel_splitting, unsplit=straddle)

    # --- conversion -------------------------------------------------------------------

    def bytes_per_frame(self) -> int:
        """Memory the results of one frame take: every bin of every target, intensity
        and errors in float32, the kept sums in float64."""
        per_bin = 4 + (4 if self.errors else 0) + (16 if self.keep_sums else 0)
        return sum(int(np.prod(t.shape)) for t in self.targets) * per_bin

    def check_memory(self, frames: int) -> None:
        """Refuse, before anything is allocated, results of *frames* frames that would
        not fit in this machine's memory (with a copy for writing them)."""
        from nxgid.safety.resources import check_memory

        bins = sum(int(np.prod(t.shape)) for t in self.targets)
        check_memory(2 * frames * self.bytes_per_frame(),
                     f"converting {frames} frame(s) at a time into {bins} bins",
                     "use fewer bins (--bins, --step) or a smaller --block")

    def convert(self, frames: np.ndarray, *, monitor: Sequence[float] | float | None = None,
                variance: np.ndarray | None = None,
                incidence_deg: Sequence[float] | float | None = None,
                out: dict[str, Result] | None = None) -> dict[str, Result]:
        """Convert one frame (rows, cols) or a stack (frames, rows, cols).

        With *out* (results of an earlier call with as many frames), their arrays are
        overwritten instead of allocating new ones: fresh memory costs about as much as
        the conversion itself for large maps.
        """
        from nxgid.conversion import kernels

        stack = np.asarray(frames)
        if stack.ndim == 2:
            stack = stack[np.newaxis]
        if stack.ndim != 3 or stack.shape[1:] != self.geometry.shape:
            raise NxgidError(f"frames of shape {np.shape(frames)}: expected "
                             f"{self.geometry.shape} or (n, *{self.geometry.shape})")
        n = stack.shape[0]
        flat_frames = np.ascontiguousarray(stack).reshape(n, -1)
        flat_variance = None
        if variance is not None:
            variance = np.asarray(variance)
            if variance.shape != stack.shape and variance.shape != stack.shape[1:]:
                raise NxgidError(f"variance of shape {variance.shape} does not match the "
                                 f"frames {stack.shape}")
            flat_variance = np.ascontiguousarray(
                np.broadcast_to(variance, stack.shape)).reshape(n, -1)
        if out is None:
            self.check_memory(n)
        monitors = _per_frame(monitor, n, "monitor", default=1.0)
        bad = ~np.isfinite(monitors) | (monitors <= 0)
        if np.any(bad):
            first = int(np.flatnonzero(bad)[0])
            raise NxgidError(f"monitor value {monitors[first]:g} (frame {first}): monitor "
                             "values must be finite and positive")
        angles = _per_frame(incidence_deg, n, "incidence_deg",
                            default=self.sample.incidence_deg)
        outputs = {t.name: kernels.Outputs(n, int(np.prod(t.shape)), errors=self.errors,
                                           keep_sums=self.keep_sums,
                                           reuse=(out or {}).get(t.name))
                   for t in self.targets}
        lo, hi = self.valid_range
        buffer = var_buffer = None
        for run_start, run_stop, angle in _runs(angles):
            maps = self.binmaps(angle)
            for first in range(run_start, run_stop, kernels.BLOCK):
                rows = slice(first, min(run_stop, first + kernels.BLOCK))
                buffer = kernels.transpose_block(flat_frames[rows], buffer)
                var_block = None
                if flat_variance is not None:
                    var_buffer = kernels.transpose_block(flat_variance[rows], var_buffer)
                    var_block = var_buffer
                for target in self.targets:
                    kernels.convert_block(buffer, var_block, maps[target.name],
                                          outputs[target.name], rows, lo=lo, hi=hi,
                                          monitor=monitors[rows])
        return {t.name: self._assemble(t, outputs[t.name], monitors, angles,
                                       monitor is not None)
                for t in self.targets}

    def convert_blocks(self, frames: Iterable[np.ndarray], *, block_frames: int = 16,
                       monitor: Iterable[float] | None = None,
                       incidence_deg: Iterable[float] | None = None,
                       reuse_outputs: bool = False) -> Iterator[dict[str, Result]]:
        """Convert a stream of frames (e.g. an HDF5 dataset or a reader) block by block,
        in constant memory; yields one result dict per block.

        With *reuse_outputs*, every block is written into the arrays of the previous one:
        faster, but a yielded block is valid only until the next is requested (write or
        copy it first), as a file writer does.
        """
        previous: dict[str, Result] | None = None
        monitors = iter(monitor) if monitor is not None else None
        angles = iter(incidence_deg) if incidence_deg is not None else None
        block: np.ndarray | None = None  # filled in place: no list, no np.stack copy
        filled = 0

        def flush(count: int) -> dict[str, Result]:
            nonlocal previous
            assert block is not None
            m = [next(monitors) for _ in range(count)] if monitors is not None else None
            a = [next(angles) for _ in range(count)] if angles is not None else None
            result = self.convert(block[:count], monitor=m, incidence_deg=a,
                                  out=previous if reuse_outputs else None)
            previous = result
            return result

        for item in frames:
            item = np.asarray(item)
            for frame in (item if item.ndim == 3 else (item,)):
                if block is None or block.dtype != frame.dtype:
                    if block is not None and filled:
                        yield flush(filled)
                        filled = 0
                    block = np.empty((block_frames, *frame.shape), dtype=frame.dtype)
                block[filled] = frame
                filled += 1
                if filled == block_frames:
                    yield flush(filled)
                    filled = 0
        if filled:
            yield flush(filled)

    def _assemble(self, target: Target, out, monitors: np.ndarray,
                  angles: np.ndarray, normalised: bool) -> Result:
        n, shape = out.intensity.shape[0], target.shape

        def view(array):
            return None if array is None else array.reshape(n, *shape)

        counts = self.binmaps(float(angles[0]))[target.name].counts.reshape(shape)
        frame_values = {"monitor": monitors}
        if self.sample.mode == "gid":
            frame_values["incidence_angle_deg"] = angles
        process = self.describe(target)
        process["monitor_normalised"] = normalised
        return Result(name=target.name, axes=tuple(reversed(target.axes)),
                      intensity=view(out.intensity),
                      errors=view(out.errors), counts=counts, process=process,
                      frame_values=frame_values, signal_sum=view(out.signal_sum),
                      norm_sum=view(out.norm_sum))

    def describe(self, target: Target | None = None) -> dict:
        """Everything that defines the conversion, JSON-serialisable (for NeXus process)."""
        key = None if target is None else target.name
        if key not in self._descriptions:
            self._descriptions[key] = self._describe(target)
        return dict(self._descriptions[key])

    def _describe(self, target: Target | None) -> dict:
        record = {
            "method": self.method,
            "pixel_splitting": self.pixel_splitting,
            "max_bins": self.max_bins,
            "q_unit": self.q_unit,
            "sample": {"mode": self.sample.mode, "incidence_deg": self.sample.incidence_deg,
                       "tilt_deg": self.sample.tilt_deg,
                       "orientation": self.sample.orientation},
            "geometry": self.geometry.config(),
            "corrections": (self.corrections.describe() if self.corrections is not None
                            else {}),
            "dark": self.dark is not None,
            "flat": self.flat is not None,
            "masked_pixels": int(self.mask.sum()),
            "valid_range": [None if math.isinf(v) else v for v in self.valid_range],
            "errors": "poisson" if self.errors else None,
            "threads": _threads(),
        }
        if target is not None:
            record["target"] = target.describe()
        return record


def _runs(values: np.ndarray) -> Iterator[tuple[int, int, float]]:
    """(start, stop, value) of each run of equal consecutive values."""
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            yield start, i, float(values[start])
            start = i


def apply_refraction(coords: PixelCoordinates, q_z: np.ndarray) -> None:
    """Replace q_z (and what derives from it) by refraction-corrected values."""
    coords.__dict__["q_z"] = q_z
    q_xy = coords.q_xy
    coords.__dict__["q"] = np.hypot(q_xy, q_z)
    coords.__dict__["chi_gid"] = np.arctan2(q_z, q_xy)


def _per_frame(values, n: int, what: str, *, default: float) -> np.ndarray:
    if values is None:
        return np.full(n, float(default))
    array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if array.size == 1:
        return np.full(n, float(array[0]))
    if array.shape != (n,):
        raise NxgidError(f"{what}: {array.size} values for {n} frames; expected one or "
                         f"one per frame")
    return array


def _threads() -> int:
    try:
        import numba

        return int(numba.get_num_threads())
    except Exception:  # pragma: no cover
        return os.cpu_count() or 1


__all__ = ["Axis", "Converter", "Result", "TargetSpec", "combine_masks"]
