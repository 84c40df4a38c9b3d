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


#: Which pixels are split among the bins their box overlaps.
SPLITTING: tuple[str, ...] = ("auto", "all", "none")


def build_binmap(target: Target, axis_values: list[np.ndarray], valid: np.ndarray,
                 normalisation: np.ndarray, dark: np.ndarray | None, *,
                 boxes: list[tuple[np.ndarray, np.ndarray]] | None = None,
                 split: str = "none", unsplit: np.ndarray | None = None) -> BinMap:
    """The pixel→bin map of *target*.

    *axis_values* are the per-pixel values of the target's axes at the pixel centres (in
    the axis units), *valid* a boolean array of pixels that may contribute (mask, cuts,
    finite norm). A pixel goes whole to the bin containing its centre, unless it is
    split (*split* ``"all"``, or ``"auto"`` and its box, *boxes* ``(low, high)`` per
    axis, is wider than a bin along some axis): then it is shared among the bins its box
    overlaps, in proportion to the overlap. Pixels in *unsplit* (those straddling the
    missing wedge) are never split. Splitting only the pixels wider than a bin is what
    keeps every bin of the covered region filled: a bin whose centre some pixel covers
    then receives that pixel, or a smaller one whose centre lies in it.
    """
    if split not in SPLITTING:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITTING)}")
    flat_valid = valid.ravel() & np.logical_and.reduce(
        [np.isfinite(v.ravel()) for v in axis_values])
    shared = np.zeros(flat_valid.shape, dtype=bool)
    units: list[tuple[np.ndarray, np.ndarray]] = []
    if split != "none":
        if boxes is None:
            raise ValueError("pixel splitting needs the pixels' boxes")
        for axis, (lo, hi) in zip(target.axes, boxes, strict=True):
            units.append(((lo.ravel() - axis.start) / axis.step,
                          (hi.ravel() - axis.start) / axis.step))
        with np.errstate(invalid="ignore"):
            finite = np.logical_and.reduce([np.isfinite(a) & np.isfinite(b) for a, b in units])
            wide = np.logical_or.reduce([(b - a) > 1.0 for a, b in units])
        shared = flat_valid & finite & (wide if split == "auto" else True)
        if unsplit is not None:
            shared &= ~unsplit.ravel()
    whole = flat_valid & ~shared
    index = np.zeros(flat_valid.shape, dtype=np.int64)
    positions = []
    stride = 1
    for axis, values in zip(target.axes, axis_values, strict=True):
        flat = values.ravel()
        positions.append((flat - axis.start) / axis.step)
        i = axis.index(flat)
        whole &= i >= 0
        index += i * stride
        stride *= axis.bins
    whole_pixels = np.flatnonzero(whole)
    if not shared.any():
        return from_entries(target, whole_pixels, index[whole_pixels], None,
                            normalisation, dark)
    if split == "auto":
        # along an axis where the pixel fits in a bin it stays whole (zero-width box at
        # its centre): it is shared only along the axes where it is wider than a bin
        units = [(np.where(b - a > 1.0, a, centre), np.where(b - a > 1.0, b, centre))
                 for (a, b), centre in zip(units, positions, strict=True)]
    pix, bins, weights = _split(target, units, np.flatnonzero(shared))
    return from_entries(target, np.concatenate([whole_pixels, pix]),
                        np.concatenate([index[whole_pixels], bins]),
                        np.concatenate([np.ones(whole_pixels.size), weights]),
                        normalisation, dark)


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


def _split(target: Target, units: list[tuple[np.ndarray, np.ndarray]],
           pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixel, bin, weight) entries of the split *pixels*, from their boxes in bin
    units. An angle axis that is a full turn wraps round; on any other axis the part of
    a box beyond the ends is dropped, as for any pixel on an edge."""
    x0, x1 = (u[pixels] for u in units[0])
    two_d = len(units) == 2
    y0, y1 = (u[pixels] for u in units[1]) if two_d else (x0, x1)
    periodic = [axis.name.startswith("ang_") and abs(axis.stop - axis.start - 360.0) < 1e-9
                for axis in target.axes]
    pix, bins, weights = _split_entries(
        x0, x1, y0, y1, pixels.astype(np.int32), target.axes[0].bins,
        target.axes[1].bins if two_d else 1, two_d, periodic[0],
        periodic[1] if two_d else False)
    positive = weights > 0
    return pix[positive], bins[positive], weights[positive]
