"""The ``interpolate`` method: maps sampled at bin centres, like pygid's.

For every output bin centre (X, Y) nxgid finds the detector position (r, c) — in pixel
units, pixel centres at integers — whose coordinates are (X, Y), by Newton steps on the
bilinear interpolation of the per-pixel coordinate arrays (started from a pixel that the
integrating map puts in or next to that bin). The bin then takes

* ``bilinear``: the four pixels around (r, c) with bilinear weights, or
* ``nearest``: the single nearest pixel,

as weighted entries of an ordinary pixel→bin map, so corrections, masks, dark, flat,
monitor and error propagation work exactly as for integration: value = Σw(I−D)/Σw·c,
error = √(Σw²I)/Σw·c. A masked neighbour simply drops out of both sums. Bins whose
centre no detector point reaches (the GI missing wedge, beyond the detector) stay NaN.
Interpolation samples; it does not average, so coarse bins do not reduce noise.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from nxgid.conversion.binmap import BinMap, build_binmap, from_entries
from nxgid.conversion.grid import Target, pixel_step

METHODS = ("integrate", "bilinear", "nearest")


@njit(cache=True)
def _invert(ax, ay, targets_x, targets_y, start_r, start_c, tol, max_span_x, max_span_y
            ):  # pragma: no cover - compiled
    """Newton on the bilinear forward map; returns (r, c) or NaN where it fails.

    A solution in a cell whose coordinates jump (span above *max_span_*) is rejected:
    the coordinates are discontinuous there (the two sides of the GI missing wedge, the
    ±180° seam of χ), and interpolating across would invent values that no pixel saw."""
    rows, cols = ax.shape
    n = targets_x.shape[0]
    out_r = np.full(n, np.nan)
    out_c = np.full(n, np.nan)
    for i in range(n):
        r = start_r[i]
        c = start_c[i]
        if r != r:  # no start
            continue
        X = targets_x[i]
        Y = targets_y[i]
        converged = False
        for _ in range(12):
            r0 = min(max(int(np.floor(r)), 0), rows - 2)
            c0 = min(max(int(np.floor(c)), 0), cols - 2)
            fr = r - r0
            fc = c - c0
            x00, x01, x10, x11 = ax[r0, c0], ax[r0, c0 + 1], ax[r0 + 1, c0], ax[r0 + 1, c0 + 1]
            y00, y01, y10, y11 = ay[r0, c0], ay[r0, c0 + 1], ay[r0 + 1, c0], ay[r0 + 1, c0 + 1]
            fx = (1 - fr) * (1 - fc) * x00 + (1 - fr) * fc * x01 + fr * (1 - fc) * x10 \
                + fr * fc * x11
            fy = (1 - fr) * (1 - fc) * y00 + (1 - fr) * fc * y01 + fr * (1 - fc) * y10 \
                + fr * fc * y11
            dxr = (1 - fc) * (x10 - x00) + fc * (x11 - x01)
            dxc = (1 - fr) * (x01 - x00) + fr * (x11 - x10)
            dyr = (1 - fc) * (y10 - y00) + fc * (y11 - y01)
            dyc = (1 - fr) * (y01 - y00) + fr * (y11 - y10)
            det = dxr * dyc - dxc * dyr
            if det == 0 or det != det:
                break
            ex = X - fx
            ey = Y - fy
            dr = (dyc * ex - dxc * ey) / det
            dc = (dxr * ey - dyr * ex) / det
            # keep steps modest so a bad start cannot jump across the detector
            limit = 50.0
            if abs(dr) > limit:
                dr = limit * np.sign(dr)
            if abs(dc) > limit:
                dc = limit * np.sign(dc)
            r += dr
            c += dc
            if abs(dr) < tol and abs(dc) < tol:
                converged = True
                break
        if converged and 0.0 <= r <= rows - 1 and 0.0 <= c <= cols - 1:
            r0 = min(max(int(np.floor(r)), 0), rows - 2)
            c0 = min(max(int(np.floor(c)), 0), cols - 2)
            xs = (ax[r0, c0], ax[r0, c0 + 1], ax[r0 + 1, c0], ax[r0 + 1, c0 + 1])
            ys = (ay[r0, c0], ay[r0, c0 + 1], ay[r0 + 1, c0], ay[r0 + 1, c0 + 1])
            if max(xs) - min(xs) <= max_span_x and max(ys) - min(ys) <= max_span_y:
                out_r[i] = r
                out_c[i] = c
    return out_r, out_c


def invert(target: Target, axis_values: list[np.ndarray]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detector position (row, column; pixel centres at integers) of every bin centre the
    detector reaches: (bins, rows, cols) for those bins, in bin order."""
    from scipy.ndimage import distance_transform_edt

    if len(target.axes) != 2:
        raise ValueError("interpolation is for maps; profiles always integrate pixels")
    cols = axis_values[0].shape[1]
    x_axis, y_axis = target.axes
    # start points: a pixel the integrating map puts in the bin, or in the nearest bin
    anyvalid = np.isfinite(axis_values[0]) & np.isfinite(axis_values[1])
    seed = build_binmap(target, axis_values, anyvalid.copy(), np.ones(anyvalid.shape), None)
    first = np.full(seed.bins, -1, dtype=np.int64)
    has = seed.counts > 0
    first[has] = seed.pixels[seed.indptr[:-1][has]]
    empty = ~has.reshape(y_axis.bins, x_axis.bins)
    if empty.all():
        first_pixel = first
    else:
        _, (iy, ix) = distance_transform_edt(empty, return_indices=True)
        first_pixel = first.reshape(empty.shape)[iy, ix].ravel()
    start_r = np.where(first_pixel >= 0, first_pixel // cols, np.nan).astype(np.float64)
    start_c = np.where(first_pixel >= 0, first_pixel % cols, np.nan).astype(np.float64)
    grid_x, grid_y = np.meshgrid(x_axis.centres, y_axis.centres)
    ax = np.ascontiguousarray(axis_values[0], dtype=np.float64)
    ay = np.ascontiguousarray(axis_values[1], dtype=np.float64)
    # a cell may span a few ordinary pixel steps (diagonals, curvature), not a jump
    spans = [4.0 * pixel_step(values) for values in (ax, ay)]
    r, c = _invert(ax, ay, grid_x.ravel(), grid_y.ravel(), start_r, start_c, 1e-6, *spans)
    found = np.flatnonzero(np.isfinite(r))
    return found, r[found], c[found]


def nearest_pixels(target: Target, axis_values: list[np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(bins, flat index of the detector pixel nearest to each bin centre) for the bins
    the detector reaches."""
    cols = axis_values[0].shape[1]
    found, r, c = invert(target, axis_values)
    return found, np.rint(r).astype(np.int64) * cols + np.rint(c).astype(np.int64)


def build_interpolation_map(target: Target, axis_values: list[np.ndarray], valid: np.ndarray,
                            normalisation: np.ndarray, dark: np.ndarray | None,
                            method: str) -> BinMap:
    """A map whose bins sample the detector at their centres (*method* bilinear/nearest)."""
    rows, cols = valid.shape
    if method == "nearest":
        found, pix = nearest_pixels(target, axis_values)
        bins, weights = found, np.ones(found.size)
    elif method == "bilinear":
        found, r, c = invert(target, axis_values)
        r0 = np.clip(np.floor(r).astype(np.int64), 0, rows - 2)
        c0 = np.clip(np.floor(c).astype(np.int64), 0, cols - 2)
        fr, fc = r - r0, c - c0
        pix = np.concatenate([r0 * cols + c0, r0 * cols + c0 + 1, (r0 + 1) * cols + c0,
                              (r0 + 1) * cols + c0 + 1])
        weights = np.concatenate([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc])
        bins = np.tile(found, 4)
    else:
        raise ValueError(f"unknown interpolation {method!r}")
    keep = valid.ravel()[pix] & (weights > 0) & np.isfinite(normalisation.ravel()[pix])
    return from_entries(target, pix[keep], bins[keep], weights[keep], normalisation, dark)
