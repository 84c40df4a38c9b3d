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


def from_entries(target: Target, pixels: np.ndarray, bins: np.ndarray,
                 weights: np.ndarray | None, normalisation: np.ndarray,
                 dark: np.ndarray | None) -> BinMap:
    """Assemble a map from (pixel, bin[, weight]) entries in any order: the one place
    that sorts entries by bin and sums normalisation, dark and pixel counts per bin."""
    n_bins = int(np.prod(target.shape))
    indptr, order = _counting_sort(bins, n_bins)
    pixels = pixels[order].astype(np.int32)
    bins = bins[order]
    entry_norm = normalisation.ravel()[pixels].astype(np.float64)
    entry_dark = (np.zeros(pixels.shape) if dark is None
                  else dark.ravel()[pixels].astype(np.float64))
    if weights is not None:
        weights = weights[order]
        entry_norm *= weights
        entry_dark *= weights
    return BinMap(
        target=target, indptr=indptr, pixels=pixels,
        weights=np.empty(0) if weights is None else weights,
        entry_norm=entry_norm, entry_dark=entry_dark,
        norm=np.bincount(bins, weights=entry_norm, minlength=n_bins),
        dark=np.bincount(bins, weights=entry_dark, minlength=n_bins),
        counts=(np.diff(indptr) if weights is None
                else np.bincount(bins, weights=weights, minlength=n_bins)),
    )


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
    return from_entries(target, pixels_all, index[pixels_all], None, normalisation, dark)


# --- pixel splitting ------------------------------------------------------------------------


@njit(cache=True)
def _span(lo, hi, n, periodic):  # pragma: no cover - compiled
    """Bins [first, last] covered by [lo, hi] (bin units); periodic axes are not clipped."""
    first = int(np.floor(lo))
    last = int(np.floor(hi))
    if periodic:
        if last - first >= n:
            last = first + n - 1
        return first, last
    return max(0, first), min(n - 1, last)


@njit(cache=True)
def _split_entries(x0, x1, y0, y1, pixels, nx, ny, two_d, periodic_x, periodic_y
                   ):  # pragma: no cover - compiled
    """Overlap fractions of every pixel's box [x0, x1) × [y0, y1) (in bin units) with
    the bins; returns (pixel, bin, weight) triplets. On a periodic axis (a full turn of
    an angle) bins past the end wrap round. A box of zero width in one direction counts
    whole in the bin it lies in."""
    n = pixels.shape[0]
    count = 0
    for i in range(n):
        ix0, ix1 = _span(x0[i], x1[i], nx, periodic_x)
        iy0, iy1 = (0, 0)
        if two_d:
            iy0, iy1 = _span(y0[i], y1[i], ny, periodic_y)
        if ix1 >= ix0 and iy1 >= iy0:
            count += (ix1 - ix0 + 1) * (iy1 - iy0 + 1)
    out_pixel = np.empty(count, dtype=np.int32)
    out_bin = np.empty(count, dtype=np.int64)
    out_weight = np.empty(count, dtype=np.float64)
    k = 0
    for i in range(n):
        ix0, ix1 = _span(x0[i], x1[i], nx, periodic_x)
        width = x1[i] - x0[i]
        iy0, iy1 = (0, 0)
        height = 1.0
        if two_d:
            iy0, iy1 = _span(y0[i], y1[i], ny, periodic_y)
            height = y1[i] - y0[i]
        for iy in range(iy0, iy1 + 1):
            fy = 1.0
            if two_d and height > 0:
                fy = (min(iy + 1.0, y1[i]) - max(float(iy), y0[i])) / height
            for ix in range(ix0, ix1 + 1):
                fx = 1.0
                if width > 0:
                    fx = (min(ix + 1.0, x1[i]) - max(float(ix), x0[i])) / width
                out_pixel[k] = pixels[i]
                out_bin[k] = (iy % ny) * nx + (ix % nx)
                out_weight[k] = fx * fy
                k += 1
    return out_pixel[:k], out_bin[:k], out_weight[:k]


def _box(axis, corners: np.ndarray, seam: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box of each pixel's corners along *axis*, in bin units.

    For an angle axis, a pixel whose corners straddle the ±180° seam (span above half a
    turn, *seam*) has its negative corners moved up by a full turn: its box then reaches
    past the axis end, and wraps round when the axis is a full turn (else the part
    outside is dropped, as for any pixel on an edge).
    """
    lo = corners.min(axis=-1)
    hi = corners.max(axis=-1)
    if seam is not None:
        wrapped = (hi - lo) > seam
        if wrapped.any():
            turned = np.where(corners[wrapped] < 0, corners[wrapped] + 2 * seam,
                              corners[wrapped])
            lo[wrapped] = turned.min(axis=-1)
            hi[wrapped] = turned.max(axis=-1)
    return (lo - axis.start) / axis.step, (hi - axis.start) / axis.step


def build_split_binmap(target: Target, corner_values: list[np.ndarray],
                       seams: list[float | None], valid: np.ndarray,
                       normalisation: np.ndarray, dark: np.ndarray | None) -> BinMap:
    """Pixel splitting: each valid pixel is shared among the bins its corners' bounding
    box overlaps, in proportion to the overlap area (weights of a pixel sum to 1 when its
    box lies inside the axes)."""
    flat_valid = valid.ravel()
    pixels_all = np.flatnonzero(flat_valid)
    boxes = []
    for axis, corners, seam in zip(target.axes, corner_values, seams, strict=True):
        lo, hi = _box(axis, corners.reshape(-1, 4)[pixels_all], seam)
        finite = np.isfinite(lo) & np.isfinite(hi)
        boxes.append((lo, hi, finite))
    keep = np.logical_and.reduce([b[2] for b in boxes])
    x0, x1 = boxes[0][0][keep], boxes[0][1][keep]
    two_d = len(boxes) == 2
    y0, y1 = (boxes[1][0][keep], boxes[1][1][keep]) if two_d else (x0, x1)
    nx = target.axes[0].bins
    ny = target.axes[1].bins if two_d else 1
    periodic = [seam is not None and abs(axis.stop - axis.start - 2 * seam) < 1e-9
                for axis, seam in zip(target.axes, seams, strict=True)]
    pix, bins, weights = _split_entries(x0, x1, y0, y1, pixels_all[keep].astype(np.int32),
                                        nx, ny, two_d, periodic[0],
                                        periodic[1] if two_d else False)
    positive = weights > 0
    return from_entries(target, pix[positive], bins[positive], weights[positive],
                        normalisation, dark)
