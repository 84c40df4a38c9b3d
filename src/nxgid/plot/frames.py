"""Pictures of detector images: a raw frame, a powder image or a mask, as the detector
sees them (pixels, row 0 at the top), with the mask overlaid.

matplotlib is imported when a picture is drawn, never at ``import nxgid``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nxgid.errors import NxgidError
from nxgid.names import PIXEL_MASK_GAP, PIXEL_MASK_USER
from nxgid.plot.results import save_figure

#: Bits of a ``pixel_mask`` (or an imported integer mask) that mark a pixel as masked
#: (NeXus: the low 16).
MASKED_BITS = 0xFFFF


def mask_summary(bits: np.ndarray) -> dict[str, int | float]:
    """Pixel counts of a ``pixel_mask``: ``pixels``, ``masked`` (any of the low 16 bits),
    ``gaps`` (bit 0), ``user`` (bit 8), ``other`` (masked, neither) and ``percent`` masked."""
    bits = np.asarray(bits).astype(np.int64)
    gaps, user = (bits & PIXEL_MASK_GAP) != 0, (bits & PIXEL_MASK_USER) != 0
    masked = (bits & MASKED_BITS) != 0
    total = int(bits.size)
    return {"pixels": total, "masked": int(masked.sum()), "gaps": int(gaps.sum()),
            "user": int(user.sum()), "other": int((masked & ~gaps & ~user).sum()),
            "percent": 100.0 * float(masked.sum()) / total if total else 0.0}


def _blocks(array: np.ndarray, k: int, ufunc: np.ufunc) -> np.ndarray:
    """*ufunc* over k×k blocks of a 2-D array (edge blocks may be smaller)."""
    for axis in (0, 1):
        array = ufunc.reduceat(array, np.arange(0, array.shape[axis], k), axis=axis)
    return array


_PREVIEW_PIXELS = 1200  # larger images are reduced to about this many pixels per side


def draw_detector_image(image: np.ndarray | None, bits: np.ndarray | None,
                        path: str | Path, *, title: str = "",
                        image_name: str = "the image", unit: str = "counts",
                        log: bool = True) -> Path:
    """A detector image as the detector sees it, and/or its ``pixel_mask`` *bits*: the
    image on a log scale (*log*, else linear; grey without an image), gaps and user-masked pixels as
    semi-transparent overlays with their counts in a legend below the picture (so it
    hides no pixel). Axes are pixels, x = column and y = row as in every position option
    of nxgid, row 0 at the top. Large detectors are drawn in k×k blocks (image: block
    mean; masks: a block shows every bit set in it, so thin gaps stay visible). Written
    atomically; the format follows the suffix (.png, .pdf, .svg)."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if image is None and bits is None:
        raise ValueError("draw_detector_image needs an image or a mask")
    shape = np.shape(image) if bits is None else np.shape(bits)
    shown_mask = bits is not None
    bits = np.zeros(shape, np.int32) if bits is None else \
        np.asarray(bits).astype(np.int32, copy=False)
    rows, cols = bits.shape
    path = Path(path)
    info = mask_summary(bits)
    fig = Figure(figsize=(7.5, max(3.5, min(9.5, 6.0 * rows / max(cols, 1) + 0.7))), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    extent = (0, cols, rows, 0)  # pixel edges at integers, row 0 at the top
    k = math.ceil(max(rows, cols) / _PREVIEW_PIXELS)
    if image is not None:
        data = np.asarray(image)
        if data.shape != (rows, cols):
            raise NxgidError(f"{image_name} is {'×'.join(map(str, data.shape))} pixels, "
                             f"the mask {rows}×{cols} (rows×cols)")
        data = np.nan_to_num(data.astype(np.float32), nan=0, posinf=0, neginf=0)
        if k > 1:
            size = np.outer(*(np.diff(np.r_[0:n:k, n]) for n in (rows, cols)))
            data, bits = _blocks(data, k, np.add) / size, _blocks(bits, k, np.bitwise_or)
        clean = data[(bits & MASKED_BITS) == 0]
        positive = clean[clean > 0]
        if log and positive.size:
            norm = LogNorm(vmin=float(np.percentile(positive, 1)),
                           vmax=max(float(np.percentile(positive, 99.9)),
                                    float(np.percentile(positive, 1)) * 1.001))
        elif clean.size:  # linear: the hottest pixels do not flatten the rest
            low, high = (float(v) for v in np.percentile(clean, (0.5, 99.9)))
            norm = Normalize(low, max(high, low + 1e-9))
        else:
            norm = Normalize()
        cmap = colormaps["gray"].with_extremes(bad="black")
        logged = log and positive.size > 0
        shown = ax.imshow(np.where(data > 0, data, np.nan) if logged else data,
                          cmap=cmap, norm=norm, extent=extent, interpolation="antialiased")
        fig.colorbar(shown, ax=ax, label=unit + (" (log scale)" if logged else ""))
    else:
        bits = _blocks(bits, k, np.bitwise_or) if k > 1 else bits
        ax.imshow(np.full((*bits.shape, 3), 0.55), extent=extent, interpolation="nearest")
    colours = {"gaps": (31, 119, 180, 153), "user": (214, 39, 40, 153)}  # RGBA, 60 % opaque
    overlay = np.zeros((*bits.shape, 4), dtype=np.uint8)  # user drawn over gaps
    for key, bit in (("gaps", PIXEL_MASK_GAP), ("user", PIXEL_MASK_USER)):
        overlay[(bits & bit) != 0] = colours[key]
    if shown_mask:
        ax.imshow(overlay, extent=extent, interpolation="antialiased")

    def share(n: int) -> str:
        return f"{n} px, {100.0 * n / max(info['pixels'], 1):.2f} %"

    handles = [Patch(color=tuple(v / 255 for v in colours[key]),
                     label=f"{label}: {share(info[key])}")
               for key, label in (("gaps", "detector gaps"), ("user", "user mask"))]
    if info["other"]:
        handles.append(Patch(color="none", label=f"other bits: {info['other']} px"))
    if shown_mask:  # below the axes: a legend inside would hide the pixels under it
        fig.legend(handles=handles, loc="lower center", ncols=len(handles) + 1,
                   fontsize=8, frameon=False,
                   title=f"masked: {share(info['masked'])}", title_fontsize=8)
    ax.set_xlabel("x (column, pixels)")
    ax.set_ylabel("y (row, pixels)")
    ax.set_title(title or f"detector mask, {rows}×{cols} pixels (rows×cols)", fontsize=10)
    fig.tight_layout(rect=(0, 0.09 if shown_mask else 0, 1, 1))

    return save_figure(fig, path)
