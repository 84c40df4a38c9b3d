"""The "before and after" of nxgid's automatic bins, as one picture.

Before: the bins nxgid chose up to version 0.1 — as wide as the median change of the
coordinate between neighbouring pixels, every pixel going whole to the bin of its centre.
Wherever a pixel's footprint is wider than a bin (half the pixels), some bins receive no
pixel centre at all: a moiré of isolated empty bins. After: the default (bins as wide as
nine pixels in ten, the wider pixels split among the bins they cover) leaves none.
The empty bins counted are the *covered* ones (:mod:`nxgid.conversion.coverage`).
Used by ``nxgid demo`` and ``docs/figures/make_bins.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class BinsComparison:
    path: Path
    #: (bins of the map, covered bins left empty) before and after.
    before: tuple[tuple[int, ...], int]
    after: tuple[tuple[int, ...], int]


def previous_default(converter, name: str):
    """The TargetSpec nxgid's 0.1 default bins gave *name*: centre ranges, median pixel
    step."""
    from nxgid.conversion import TargetSpec
    from nxgid.conversion.grid import axis_names, pixel_step

    footprints = converter.footprints()
    usable = ~converter.mask
    ranges, bins = {}, {}
    for axis in axis_names(name):
        values = footprints.values(axis)
        inside = values[usable & np.isfinite(values)]
        lo, hi = float(inside.min()), float(inside.max())
        ranges[axis] = (lo, hi)
        bins[axis] = max(1, min(20_000, round((hi - lo) / pixel_step(values))))
    return TargetSpec(name, ranges=ranges, bins=bins)


def empty_covered(converter, result) -> int:
    from nxgid.conversion.coverage import covered_bins

    target = next(t for t in converter.targets if t.name == result.name)
    covered = covered_bins(target, converter.footprints(corners=True), ~converter.mask)
    return int((covered & (result.counts.reshape(target.shape) == 0)).sum())


def compare_default_bins(geometry, sample, frame: np.ndarray, path: str | Path, *,
                         name: str = "img_gid_q", corrections=None,
                         zoom: tuple[tuple[float, float], tuple[float, float]] | None = None
                         ) -> BinsComparison:
    """Convert *frame* with the previous and the current default bins and draw both maps
    side by side (with a zoom on a small region, where the holes show), to *path*."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    from nxgid.conversion import Converter
    from nxgid.plot.results import axis_label, save_figure

    now = Converter(geometry, sample, [name], corrections=corrections)
    spec = previous_default(now, name)
    then = Converter(geometry, sample, [spec], corrections=corrections,
                     pixel_splitting="none")
    results = {}
    for label, converter in (("before", then), ("after", now)):
        result = converter.convert(frame)[name]
        results[label] = (result, empty_covered(converter, result))
    values = results["after"][0].intensity[0]
    positive = values[np.isfinite(values) & (values > 0)]
    norm = LogNorm(vmin=max(float(np.percentile(positive, 1)), 1e-6),
                   vmax=float(np.percentile(positive, 99.9)))
    rows = 2 if zoom else 1
    fig, axes = plt.subplots(rows, 2, figsize=(12, 4.6 * rows), dpi=100, squeeze=False)
    titles = {"before": "before (nxgid 0.1): median pixel step, whole pixels",
              "after": "now: 90 % of footprints per bin, wider pixels split"}
    for column, label in enumerate(("before", "after")):
        result, holes = results[label]
        y, x = result.axes
        for row in range(rows):
            ax = axes[row][column]
            # a bin with no counts is drawn in the lowest colour: white is empty only
            values = np.where(np.isfinite(result.intensity[0]),
                              np.maximum(result.intensity[0], norm.vmin), np.nan)
            ax.imshow(values, origin="lower", aspect="auto", norm=norm,
                      cmap="viridis", interpolation="nearest",
                      extent=(x.start, x.stop, y.start, y.stop))
            ax.set_facecolor("white")
            ax.set_xlabel(axis_label(x))
            ax.set_ylabel(axis_label(y))
            if row == 0:
                ax.set_title(f"{titles[label]}\n{y.bins} × {x.bins} bins, "
                             f"{holes} empty bins inside the covered region", fontsize=9)
            elif zoom:
                ax.set_xlim(*zoom[0])
                ax.set_ylim(*zoom[1])
                ax.set_title("zoom (white: empty bins)", fontsize=9)
    fig.tight_layout()
    try:
        saved = save_figure(fig, path)
    finally:
        plt.close(fig)
    return BinsComparison(saved, (results["before"][0].intensity.shape[1:],
                                  results["before"][1]),
                          (results["after"][0].intensity.shape[1:], results["after"][1]))
