"""Pixel→bin maps: built once per (geometry, sample, target, corrections, mask), reused.

A :class:`BinMap` holds, bin-major (CSR), the detector pixels feeding every output bin,
plus per bin the sum of the normalisation (corrections × flat field), of the dark
current and the number of pixels. Converting a frame is then one pass over the map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from nxgid.conversion.grid import Target


@dataclass
class BinMap:
    target: Target
    #: (bins + 1,) CSR row pointers into ``pixels``.
    indptr: np.ndarray
    #: Flat detector index of every entry, grouped by bin.
    pixels: np.ndarray
    #: Pixel-splitting weight of every entry (empty without splitting).
    weights: np.ndarray
    #: Normalisation (corrections × flat) of every entry, times its weight.
    entry_norm: np.ndarray
    #: Dark current of every entry, times its weight (zeros without dark).
    entry_dark: np.ndarray
    #: Per bin: Σ normalisation, Σ dark, number of pixels.
    norm: np.ndarray
    dark: np.ndarray
    counts: np.ndarray

    @property
    def bins(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.indptr, self.pixels, self.weights, self.entry_norm,
                                      self.entry_dark, self.norm, self.dark, self.counts))


@njit(cache=True)
def _counting_sort(bins, n_bins):  # pragma: no cover - compiled
    """Stable order of entries by bin, and the CSR row pointers, in O(n)."""
    counts = np.zeros(n_bins + 1, dtype=np.int64)
    for b in bins:
        counts[b + 1] += 1
    indptr = np.cumsum(counts)
    cursor = indptr[:-1].copy()
    order = np.empty(bins.shape[0], dtype=np.int64)
    for i in range(bins.shape[0]):
        b = bins[i]
        order[cursor[b]] = i
        cursor[b] += 1
    return indptr, order


def build_binmap(target: Target, axis_values: list[np.ndarray], valid: np.ndarray,
                 normalisation: np.ndarray, dark: np.ndarray | None) -> BinMap:
    """Map every valid pixel centre to the bin containing it (no splitting).

    *axis_values* are the per-pixel values of the target's axes in the axis units,
    *valid* a boolean array of pixels that may contribute (mask, cuts, finite norm).
    """
    flat_valid = valid.ravel()
    index = np.zeros(flat_valid.shape, dtype=np.int64)
    stride = 1
    for axis, values in zip(target.axes, axis_values, strict=True):
        i = axis.index(values.ravel())
        flat_valid &= i >= 0
        index += i * stride
        stride *= axis.bins
    pixels_all = np.flatnonzero(flat_valid)
    bins_of = index[pixels_all]
    indptr, order = _counting_sort(bins_of, stride)
    pixels = pixels_all[order].astype(np.int32)
    entry_norm = normalisation.ravel()[pixels].astype(np.float64)
    entry_dark = (np.zeros(pixels.shape) if dark is None
                  else dark.ravel()[pixels].astype(np.float64))
    sorted_bins = bins_of[order]
    return BinMap(
        target=target, indptr=indptr, pixels=pixels, weights=np.empty(0),
        entry_norm=entry_norm, entry_dark=entry_dark,
        norm=np.bincount(sorted_bins, weights=entry_norm, minlength=stride),
        dark=np.bincount(sorted_bins, weights=entry_dark, minlength=stride),
        counts=np.diff(indptr),
    )
