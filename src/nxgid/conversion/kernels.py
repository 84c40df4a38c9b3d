"""Compiled kernels (numba): accumulate detector pixels into output bins.

The pixel→bin map is stored bin-major (CSR): the entries of bin ``b`` are
``indptr[b] … indptr[b+1]``, each naming a detector pixel (flat index) and, with pixel
splitting or interpolation, a weight w. For every frame f and bin b:

    signal  = Σ w·(I − D)            (I counts, D dark)
    norm    = Σ w·c · monitor_f      (c = corrections × flat field)
    var     = Σ w²·I  (Poisson)  or  Σ w²·V (a given variance V)
    intensity = signal / norm,   errors = √var / norm

over the entries whose value lies in the valid count range (NaN never does), so a pixel
saturated in one frame drops out of that frame's signal *and* normalisation. A bin
with no valid pixel gives NaN.

Two kernels compute this:

* :func:`_fast` — the common case: unit weights, Poisson errors, and no value that can
  drop out (integer frames, no valid range). Norm and dark per bin are then constants of
  the map and Σ I = signal + Σ D, so one accumulator per frame is enough.
* :func:`_general` — everything else (weights, a given variance, a valid range, NaN).

Frames are processed in blocks of :data:`BLOCK`, transposed once to (pixels, frames) so
each map entry reads one contiguous run of values for the whole block; every target
shares the transposed block. Each thread owns a range of bins: no races, a fixed
summation order, so results do not depend on the number of threads. Compiled code is
cached on disk by numba (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: Frames per kernel call (transposed together).
BLOCK = 16
_CHUNKS = 512


@njit(parallel=True, cache=True, nogil=True)
def _transpose(frames, out):  # pragma: no cover - compiled
    n_frames, n_pixels = frames.shape
    size = (n_pixels + _CHUNKS - 1) // _CHUNKS
    for c in prange(_CHUNKS):
        for p in range(c * size, min(n_pixels, (c + 1) * size)):
            for j in range(n_frames):
                out[p, j] = frames[j, p]


@njit(inline="always", cache=True)
def _store(intensity, errors, want_errors, j, b, signal, norm, var):  # pragma: no cover
    """intensity = signal/norm and errors = √var/norm, or NaN where norm is 0."""
    if norm > 0.0:
        intensity[j, b] = signal / norm
        if want_errors:
            errors[j, b] = math.sqrt(var) / norm if var > 0.0 else 0.0
    else:
        intensity[j, b] = np.nan
        if want_errors:
            errors[j, b] = np.nan


@njit(inline="always", cache=True)
def _store_one(intensity, errors, want_errors, b, signal, norm, var):  # pragma: no cover
    """:func:`_store` for the 1-D outputs of one frame."""
    if norm > 0.0:
        intensity[b] = signal / norm
        if want_errors:
            errors[b] = math.sqrt(var) / norm if var > 0.0 else 0.0
    else:
        intensity[b] = np.nan
        if want_errors:
            errors[b] = np.nan


@njit(parallel=True, cache=True, nogil=True)
def _fast(values, indptr, pixels, norm_b, dark_b, monitor, intensity, errors, want_errors,
          signal_sum, norm_sum, keep_sums):  # pragma: no cover - compiled
    n_frames = values.shape[1]
    n_bins = indptr.shape[0] - 1
    size = (n_bins + _CHUNKS - 1) // _CHUNKS
    for c in prange(_CHUNKS):
        total = np.empty(n_frames)
        for b in range(c * size, min(n_bins, (c + 1) * size)):
            for j in range(n_frames):
                total[j] = 0.0
            for e in range(indptr[b], indptr[b + 1]):
                p = pixels[e]
                for j in range(n_frames):
                    total[j] += values[p, j]
            norm = norm_b[b]
            dark = dark_b[b]
            for j in range(n_frames):
                n = norm * monitor[j]
                _store(intensity, errors, want_errors, j, b, total[j] - dark, n, total[j])
                if keep_sums:
                    signal_sum[j, b] = total[j] - dark
                    norm_sum[j, b] = n


@njit(parallel=True, cache=True, nogil=True)
def _fast_single(values, indptr, pixels, norm_b, dark_b, monitor, intensity, errors,
                 want_errors, signal_sum, norm_sum, keep_sums):  # pragma: no cover
    """:func:`_fast` for one frame (1-D values): no per-frame inner loop."""
    n_bins = indptr.shape[0] - 1
    m = monitor[0]
    for b in prange(n_bins):
        total = 0.0
        for e in range(indptr[b], indptr[b + 1]):
            total += values[pixels[e]]
        n = norm_b[b] * m
        _store_one(intensity, errors, want_errors, b, total - dark_b[b], n, total)
        if keep_sums:
            signal_sum[b] = total - dark_b[b]
            norm_sum[b] = n


@njit(parallel=True, cache=True, nogil=True)
def _general(values, variances, use_variances, indptr, pixels, weights, use_weights,
             lo, hi, entry_norm, entry_dark, monitor, intensity, errors, want_errors,
             signal_sum, norm_sum, keep_sums):  # pragma: no cover - compiled
    n_frames = values.shape[1]
    n_bins = indptr.shape[0] - 1
    size = (n_bins + _CHUNKS - 1) // _CHUNKS
    for c in prange(_CHUNKS):
        signal = np.empty(n_frames)
        norm = np.empty(n_frames)
        var = np.empty(n_frames)
        for b in range(c * size, min(n_bins, (c + 1) * size)):
            for j in range(n_frames):
                signal[j] = 0.0
                norm[j] = 0.0
                var[j] = 0.0
            for e in range(indptr[b], indptr[b + 1]):
                p = pixels[e]
                w = weights[e] if use_weights else 1.0
                cn = entry_norm[e]
                cd = entry_dark[e]
                for j in range(n_frames):
                    v = np.float64(values[p, j])
                    if v >= lo and v <= hi:  # False for NaN too
                        signal[j] += w * v - cd
                        norm[j] += cn
                        if use_variances:
                            var[j] += w * w * np.float64(variances[p, j])
                        else:
                            var[j] += w * w * v
            for j in range(n_frames):
                n = norm[j] * monitor[j]
                _store(intensity, errors, want_errors, j, b, signal[j], n, var[j])
                if keep_sums:
                    signal_sum[j, b] = signal[j]
                    norm_sum[j, b] = n


@njit(parallel=True, cache=True, nogil=True)
def _general_single(values, variances, use_variances, indptr, pixels, weights, use_weights,
                    lo, hi, entry_norm, entry_dark, m, intensity, errors, want_errors,
                    signal_sum, norm_sum, keep_sums):  # pragma: no cover - compiled
    """:func:`_general` for one frame (1-D values, 1-D outputs): scalar sums, no
    per-frame inner loop — live mode converts frames one at a time."""
    n_bins = indptr.shape[0] - 1
    for b in prange(n_bins):
        signal = 0.0
        norm = 0.0
        var = 0.0
        for e in range(indptr[b], indptr[b + 1]):
            v = np.float64(values[pixels[e]])
            if v >= lo and v <= hi:  # False for NaN too
                w = weights[e] if use_weights else 1.0
                signal += w * v - entry_dark[e]
                norm += entry_norm[e]
                if use_variances:
                    var += w * w * np.float64(variances[pixels[e]])
                else:
                    var += w * w * v
        n = norm * m
        _store_one(intensity, errors, want_errors, b, signal, n, var)
        if keep_sums:
            signal_sum[b] = signal
            norm_sum[b] = n


class Outputs:
    """Result arrays of one target for a whole call, (frames, bins); kernels write blocks
    straight into them (no copies)."""

    def __init__(self, n_frames: int, n_bins: int, *, errors: bool, keep_sums: bool,
                 dtype=np.float32, reuse=None) -> None:
        """New arrays, or *reuse*'s (a Result of the right size: its arrays are
        overwritten, saving the first-touch cost of fresh memory)."""

        def array(existing, dtype_):
            if existing is not None and existing.size == n_frames * n_bins \
                    and existing.dtype == dtype_ and existing.flags.c_contiguous:
                return existing.reshape(n_frames, n_bins)
            return np.empty((n_frames, n_bins), dtype=dtype_)

        self.intensity = array(getattr(reuse, "intensity", None), dtype)
        self.errors = array(getattr(reuse, "errors", None), dtype) if errors else None
        self.signal_sum = array(getattr(reuse, "signal_sum", None), np.float64) \
            if keep_sums else None
        self.norm_sum = array(getattr(reuse, "norm_sum", None), np.float64) \
            if keep_sums else None


_DUMMY_F32 = np.empty((1, 1), dtype=np.float32)
_DUMMY_F64 = np.empty((1, 1))


def can_use_fast(binmap, dtype: np.dtype, lo: float, hi: float, variances) -> bool:
    """True when no value can drop out and weights and variances are trivial."""
    return (binmap.weights.size == 0 and variances is None
            and np.issubdtype(dtype, np.integer) and math.isinf(lo) and lo < 0
            and math.isinf(hi) and hi > 0)


def convert_block(values: np.ndarray, var_values: np.ndarray | None, binmap, out: Outputs,
                  rows: slice, *, lo: float, hi: float, monitor: np.ndarray) -> None:
    """Run one transposed block (pixels, k) through *binmap* into ``out[rows]``."""
    want_errors = out.errors is not None
    keep_sums = out.signal_sum is not None
    intensity = out.intensity[rows]
    errors = out.errors[rows] if want_errors else _DUMMY_F32
    signal_sum = out.signal_sum[rows] if keep_sums else _DUMMY_F64
    norm_sum = out.norm_sum[rows] if keep_sums else _DUMMY_F64
    monitor = np.ascontiguousarray(monitor, dtype=np.float64)
    if can_use_fast(binmap, values.dtype, lo, hi, var_values):
        if values.shape[1] == 1:
            _fast_single(values.reshape(-1), binmap.indptr, binmap.pixels, binmap.norm,
                         binmap.dark, monitor, intensity[0], errors[0], want_errors,
                         signal_sum[0], norm_sum[0], keep_sums)
            return
        _fast(values, binmap.indptr, binmap.pixels, binmap.norm, binmap.dark, monitor,
              intensity, errors, want_errors, signal_sum, norm_sum, keep_sums)
        return
    use_weights = binmap.weights.size > 0
    weights = binmap.weights if use_weights else np.ones(1)
    variances = var_values if var_values is not None else values
    if values.shape[1] == 1:
        _general_single(values.reshape(-1), variances.reshape(-1), var_values is not None,
                        binmap.indptr, binmap.pixels, weights, use_weights, float(lo),
                        float(hi), binmap.entry_norm, binmap.entry_dark, float(monitor[0]),
                        intensity[0], errors[0], want_errors, signal_sum[0], norm_sum[0],
                        keep_sums)
        return
    _general(values, variances, var_values is not None, binmap.indptr, binmap.pixels,
             weights, use_weights, float(lo), float(hi), binmap.entry_norm,
             binmap.entry_dark, monitor, intensity, errors, want_errors, signal_sum,
             norm_sum, keep_sums)


def transpose_block(frames: np.ndarray, buffer: np.ndarray | None = None) -> np.ndarray:
    """(k, pixels) → (pixels, k), reusing *buffer* when it has the right shape."""
    k, n_pixels = frames.shape
    if k == 1 and frames.flags.c_contiguous:
        return frames.reshape(n_pixels, 1)  # one frame: already (pixels, 1), no copy
    if buffer is None or buffer.shape != (n_pixels, k) or buffer.dtype != frames.dtype:
        buffer = np.empty((n_pixels, k), dtype=frames.dtype)
    _transpose(frames, buffer)
    return buffer
