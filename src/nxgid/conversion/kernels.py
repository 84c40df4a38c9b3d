"""Compiled kernels (numba): accumulate detector pixels into output bins.

The pixel→bin map is stored bin-major (CSR): the entries of bin ``b`` are
``indptr[b] … indptr[b+1]``, each naming a detector pixel (flat index) and, with pixel
splitting, a weight w. For every frame f and bin b the kernel computes

    signal  = Σ w·(I − D)            (I counts, D dark)
    norm    = Σ w·c · monitor_f      (c = corrections × flat field)
    var     = Σ w²·I  (Poisson)  or  Σ w²·V (a given variance V)
    intensity = signal / norm,   errors = √var / norm

over the entries whose value lies in the valid count range (NaN never does), so a pixel
saturated in one frame drops out of that frame's signal *and* normalisation. A bin
with no valid pixel gives NaN.

Frames are processed in blocks of :data:`BLOCK` transposed to (pixels, frames), so each
entry reads one contiguous run of values for the whole block: the pixel→bin map is read
once per block and memory is touched in cache-line units. Each thread owns a range of
bins: no races, and a fixed summation order, so results do not depend on the number of
threads. Compiled code is cached on disk by numba (``cache=True``).
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


@njit(parallel=True, cache=True, nogil=True)
def _convert_block(values, variances, use_variances, indptr, pixels, weights, use_weights,
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
                if n > 0.0:
                    intensity[j, b] = signal[j] / n
                    if want_errors:
                        errors[j, b] = math.sqrt(var[j]) / n if var[j] > 0.0 else 0.0
                else:
                    intensity[j, b] = np.nan
                    if want_errors:
                        errors[j, b] = np.nan
                if keep_sums:
                    signal_sum[j, b] = signal[j]
                    norm_sum[j, b] = n


def run(frames: np.ndarray, binmap, *, lo: float, hi: float, monitor: np.ndarray,
        variances: np.ndarray | None, want_errors: bool, keep_sums: bool,
        out_dtype=np.float32):
    """Convert (frames, pixels) with *binmap*; returns intensity, errors and the sums
    (float64 Σ signal and Σ normalisation) when *keep_sums*."""
    n_frames, n_bins = frames.shape[0], binmap.bins
    intensity = np.empty((n_frames, n_bins), dtype=out_dtype)
    errors = np.empty((n_frames, n_bins) if want_errors else (1, 1), dtype=out_dtype)
    signal_sum = np.zeros((n_frames, n_bins) if keep_sums else (1, 1))
    norm_sum = np.zeros((n_frames, n_bins) if keep_sums else (1, 1))
    use_weights = binmap.weights.size > 0
    weights = binmap.weights if use_weights else np.ones(1)
    monitor = np.ascontiguousarray(monitor, dtype=np.float64)
    block = min(BLOCK, n_frames)
    values = np.empty((frames.shape[1], block), dtype=frames.dtype)
    var_values = (np.empty((frames.shape[1], block), dtype=variances.dtype)
                  if variances is not None else np.empty((1, 1), dtype=frames.dtype))
    for start in range(0, n_frames, block):
        stop = min(n_frames, start + block)
        k = stop - start
        v = values[:, :k] if k < block else values
        _transpose(frames[start:stop], v)
        if variances is not None:
            vv = var_values[:, :k] if k < block else var_values
            _transpose(variances[start:stop], vv)
        else:
            vv = var_values
        sl = slice(start, stop)
        _convert_block(np.ascontiguousarray(v), np.ascontiguousarray(vv),
                       variances is not None, binmap.indptr, binmap.pixels, weights,
                       use_weights, float(lo), float(hi), binmap.entry_norm,
                       binmap.entry_dark, monitor[sl], intensity[sl],
                       errors[sl] if want_errors else errors, want_errors,
                       signal_sum[sl] if keep_sums else signal_sum,
                       norm_sum[sl] if keep_sums else norm_sum, keep_sums)
    return (intensity, errors if want_errors else None,
            signal_sum if keep_sums else None, norm_sum if keep_sums else None)
