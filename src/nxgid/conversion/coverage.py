"""Which bins of a map the detector covers: the check behind "no holes".

A bin is *covered* when its centre lies inside the footprint of a valid pixel: the
quadrilateral of the pixel's four corners in the map's coordinates. A covered bin must
receive intensity; an empty covered bin is a hole. Bins in the grazing-incidence
missing wedge, beyond the detector, in module gaps or under the mask are not covered.

The candidate pixel of every bin is found by inverting the geometry at the bin centre
(:mod:`nxgid.conversion.interpolation`); the centre is then tested against that pixel and
its eight neighbours. Pixels straddling the missing wedge are left out (their corners'
quadrilateral spans the wedge, which no part of them sees).
"""

from __future__ import annotations

import numpy as np

from nxgid.conversion.footprint import Footprints
from nxgid.conversion.grid import Target


def _inside(px: np.ndarray, py: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether each point (x, y) lies in the quadrilateral of corners (px, py)[..., 4]
    (either orientation, edges included)."""
    signs = []
    for i in range(4):
        j = (i + 1) % 4
        cross = (px[..., j] - px[..., i]) * (y - py[..., i]) - \
            (py[..., j] - py[..., i]) * (x - px[..., i])
        signs.append(cross)
    cross = np.stack(signs, axis=-1)
    with np.errstate(invalid="ignore"):
        return np.all(cross >= 0, axis=-1) | np.all(cross <= 0, axis=-1)


def covered_bins(target: Target, footprints: Footprints, valid: np.ndarray) -> np.ndarray:
    """Boolean array of the target's shape: True where a valid pixel's footprint holds
    the bin centre (maps only)."""
    from nxgid.conversion.interpolation import nearest_pixels

    if len(target.axes) != 2:
        raise ValueError("coverage is defined for maps")
    x_axis, y_axis = target.axes
    chi_from = target.chi_from_deg
    centres = [footprints.values(axis.name, chi_from) for axis in target.axes]
    rows, cols = valid.shape
    bins, pixel = nearest_pixels(target, centres)
    grid_x, grid_y = np.meshgrid(x_axis.centres, y_axis.centres)
    x, y = grid_x.ravel()[bins], grid_y.ravel()[bins]
    corner_x = footprints.corner_values(x_axis.name, chi_from).reshape(rows * cols, 4)
    corner_y = footprints.corner_values(y_axis.name, chi_from).reshape(rows * cols, 4)
    usable = valid.ravel() & ~footprints.straddles_wedge.ravel()
    r0, c0 = pixel // cols, pixel % cols
    hit = np.zeros(bins.shape, dtype=bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r, c = r0 + dr, c0 + dc
            ok = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
            index = np.where(ok, r * cols + c, 0)
            ok &= usable[index]
            hit |= ok & _inside(corner_x[index], corner_y[index], x, y)
    covered = np.zeros(int(np.prod(target.shape)), dtype=bool)
    covered[bins[hit]] = True
    return covered.reshape(target.shape)
