"""Pictures of results: a map (heat map with axis units and a colour bar) or a profile.

matplotlib is imported when a picture is drawn, never at ``import nxgid``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nxgid.conversion.result import Result
from nxgid.names import AXIS_DESCRIPTIONS, RESULT_DESCRIPTIONS, intensity_label

_UNIT_LABELS = {"A^-1": "Å⁻¹", "nm^-1": "nm⁻¹", "deg": "°"}


def axis_label(axis) -> str:
    unit = _UNIT_LABELS.get(axis.unit if axis.is_q else "deg", axis.unit)
    return f"{axis.name} ({unit}) — {AXIS_DESCRIPTIONS.get(axis.name, '')}".rstrip(" —")


def cut_label(result: Result) -> str:
    """``cut over q_xy −0.05 … 0.05 Å⁻¹`` for a profile, from its conversion record."""
    parts = []
    for axis, lo, hi in result.process.get("target", {}).get("cuts", []):
        unit = "°" if axis.startswith("ang_") else \
            _UNIT_LABELS.get(result.process.get("q_unit", "A^-1"), "")
        parts.append(f"cut over {axis} {lo:g} … {hi:g} {unit}".rstrip())
    return ", ".join(parts)


def frame_mean(intensity: np.ndarray) -> np.ndarray:
    """Mean over frames, NaN where no frame has a value (no warning for empty bins)."""
    finite = np.isfinite(intensity)
    total = np.where(finite, intensity, 0.0).sum(axis=0)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def plot_result(result: Result, path: str | Path, *, frame: int | None = None,
                log: bool = True, title: str | None = None, frame_label: str | None = None,
                dpi: int = 110) -> Path:
    """Draw one frame of *result* (or the mean of all frames if *frame* is None) to a
    PNG/PDF/SVG file chosen by the suffix of *path*. *frame_label* replaces "frame N"
    in the title (e.g. the frame's number in the file when *result* holds a slice)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize

    path = Path(path)
    if frame is None:
        data, what = frame_mean(result.intensity), f"mean of {result.frames} frame(s)"
    else:
        data = np.asarray(result.intensity[frame], dtype=np.float64)
        what = frame_label or f"frame {frame}"
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=dpi)
    label = intensity_label(result.process)
    if result.is_map:
        y, x = result.axes
        values = data[np.isfinite(data)]
        positive = values[values > 0]
        if log and positive.size:
            norm = LogNorm(vmin=max(float(np.percentile(positive, 1)), 1e-6),
                           vmax=max(float(np.percentile(positive, 99.9)), 2e-6))
            # a bin holding no counts is drawn in the lowest colour, not left blank:
            # blank (NaN) is a bin no pixel reaches, and only that
            data = np.where(np.isfinite(data), np.maximum(data, norm.vmin), np.nan)
        elif values.size:
            norm = Normalize(vmin=float(np.percentile(values, 1)),
                             vmax=float(np.percentile(values, 99.9)))
        else:
            norm = None
        image = ax.imshow(data, origin="lower", aspect="auto", norm=norm, cmap="viridis",
                          extent=(x.start, x.stop, y.start, y.stop), interpolation="nearest")
        fig.colorbar(image, ax=ax, label=label.replace("; ", "\n")
                     + (" (log scale)" if log else ""))
        ax.set_xlabel(axis_label(x))
        ax.set_ylabel(axis_label(y))
    else:
        ax.plot(result.axes[0].centres, data, lw=1)
        ax.set_xlabel(axis_label(result.axes[0]))
        ax.set_ylabel(label)
        if log and np.any(data[np.isfinite(data)] > 0):
            ax.set_yscale("log")
    cut = cut_label(result)
    heading = f"{result.name}: {RESULT_DESCRIPTIONS.get(result.name, '')}"
    ax.set_title((title or f"{heading}\n{what}") + (f"\n{cut}" if cut else ""),
                 fontsize=10)
    fig.tight_layout()
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def save_figure(fig, path: str | Path) -> Path:
    """Save a matplotlib figure under a temporary name and rename it into place, so a
    reader never sees half a picture; the format follows the suffix of *path*."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from nxgid.safety.partials import clear_stale, partial_path

    clear_stale(path)
    partial = partial_path(path, keep_suffix=True)  # matplotlib picks the format by it
    try:
        fig.savefig(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
