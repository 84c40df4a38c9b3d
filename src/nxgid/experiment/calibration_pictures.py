"""The pictures of a calibration: ``NAME_rings.png`` and ``NAME_cake.png`` of one that
worked, ``NAME_failed.png`` (with the hint of what to check) of one that did not. Every
detector picture has row 0 at the top, x = column and y = row.

matplotlib is imported when a picture is drawn, never at ``import nxgid``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nxgid.experiment.calibration import (
    CalibrationFailed,
    CalibrationResult,
    atomic_paths,
    ring_2theta_rad,
)


def _title(result: CalibrationResult) -> str:
    distance_mm = result.geometry.distance_m * 1e3
    text = f"{result.calibrant or 'calibration'}: distance {distance_mm:.3f} mm"
    if result.rms_2theta_deg is not None:
        text += (f", RMS 2θ residual {result.rms_2theta_deg:.4f}°\n{result.rings_used} rings, "
                 f"{result.points_used} control points")
    return text


def write_calibration_pictures(result: CalibrationResult, image: np.ndarray, folder: Path,
                               stem: str, *, mask: np.ndarray | None = None) -> list[Path]:
    """``STEM_rings.png`` (image, fitted rings, control points) and ``STEM_cake.png``
    (2θ × χ with the calibrant lines) in *folder*, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    folder = Path(folder)
    paths = [folder / f"{stem}_rings.png", folder / f"{stem}_cake.png"]
    image = np.asarray(image, dtype=np.float64)
    integrator = result.geometry.pyfai.promote()
    lines = np.degrees(ring_2theta_rad(result.dspacing_A, integrator.wavelength))
    tth = (np.asarray(integrator.center_array(image.shape, unit="2th_deg", scale=True)))
    on_detector = lines[(lines > tth.min()) & (lines < tth.max())]

    def norm(values: np.ndarray) -> LogNorm | None:
        positive = values[np.isfinite(values) & (values > 0)]
        if not positive.size:
            return None
        low = float(np.percentile(positive, 1))
        return LogNorm(vmin=low, vmax=max(float(np.percentile(positive, 99.9)), low * 10))

    figures = []
    try:
        fig, ax = plt.subplots(figsize=(7, 6.4), dpi=110)
        figures.append(fig)
        shown = ax.imshow(image, origin="upper", norm=norm(image), cmap="viridis",
                          interpolation="nearest")  # row 0 at the top, as every picture
        fig.colorbar(shown, ax=ax, label="counts (log scale)")
        if len(result.control_points):
            ax.plot(result.control_points[:, 1], result.control_points[:, 0], "+",
                    color="white", markersize=3, markeredgewidth=0.5)
        if on_detector.size:
            ax.contour(tth, levels=np.sort(on_detector), colors="red", linewidths=0.7)
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)
        ax.set_xlabel("x (column, pixels)")
        ax.set_ylabel("y (row, pixels)")
        ax.set_title(_title(result) + "\nred: fitted calibrant rings, +: control points",
                     fontsize=9)
        fig.tight_layout()

        cake = integrator.integrate2d(image, 1000, 360, unit="2th_deg", mask=mask,
                                      method=("bbox", "histogram", "cython"))
        intensity = np.where(cake.intensity > 0, cake.intensity, np.nan)
        fig2, ax2 = plt.subplots(figsize=(8, 5), dpi=110)
        figures.append(fig2)
        radial, azimuthal = cake.radial, cake.azimuthal
        shown = ax2.imshow(intensity, origin="lower", aspect="auto", norm=norm(intensity),
                           cmap="viridis", interpolation="nearest",
                           extent=(radial[0], radial[-1], azimuthal[0], azimuthal[-1]))
        fig2.colorbar(shown, ax=ax2, label="intensity (log scale)")
        for angle in on_detector:
            ax2.axvline(angle, color="red", linewidth=0.7, linestyle="--")
        ax2.set_xlabel("2θ (°)")
        ax2.set_ylabel("χ (°)")
        ax2.set_title(_title(result) + "\nred: calibrant lines", fontsize=9)
        fig2.tight_layout()
        with atomic_paths(paths) as temporary:
            for figure, tmp in zip(figures, temporary, strict=True):
                figure.savefig(tmp, format="png")
    finally:
        for figure in figures:
            plt.close(figure)
    return paths


def write_failure_picture(failure: CalibrationFailed, image: np.ndarray,
                          path: Path) -> Path:
    """What a failed calibration found: the powder image (row 0 at the top, x = column,
    y = row), the rings the start geometry predicts (dashed) and the last geometry tried
    (solid), and the control points picked, with the start values in the title — what
    to compare by eye to see whether the wavelength, distance or beam centre is off."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    from nxgid.plot.results import save_figure

    image = np.asarray(image, dtype=np.float64)
    fig = Figure(figsize=(7.5, 7.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positive = image[np.isfinite(image) & (image > 0)]
    norm = None
    if positive.size:
        low = float(np.percentile(positive, 1))
        norm = LogNorm(vmin=low, vmax=max(float(np.percentile(positive, 99.9)), low * 10))
    rows, cols = image.shape
    extent = (0, cols, rows, 0)
    from matplotlib import colormaps

    shown = ax.imshow(np.where(image > 0, image, np.nan), norm=norm,
                      cmap=colormaps["gray"].with_extremes(bad="black"), extent=extent,
                      interpolation="antialiased")
    fig.colorbar(shown, ax=ax, label="counts (log scale)")
    centres = np.arange(rows) + 0.5, np.arange(cols) + 0.5
    for geometry, style, colour in ((failure.guess.pyfai, "dashed", "tab:orange"),
                                    (failure.tried, "solid", "tab:red")):
        tth = np.degrees(np.asarray(geometry.center_array(image.shape, unit="2th_rad",
                                                          scale=False)))
        lines = np.degrees(ring_2theta_rad(failure.dspacing_A, geometry.wavelength))
        levels = np.sort(lines[(lines > tth.min()) & (lines < tth.max())])
        if levels.size:
            ax.contour(centres[1], centres[0], tth, levels=levels, colors=colour,
                       linestyles=style, linewidths=0.8)
    if len(failure.points):
        ax.plot(failure.points[:, 1] + 0.5, failure.points[:, 0] + 0.5, "+", color="cyan",
                markersize=4, markeredgewidth=0.7)
    fit2d = failure.guess.pyfai.getFit2D()
    ax.set_title(f"calibration failed ({failure.calibrant}): start distance "
                 f"{failure.guess.distance_m * 1e3:.1f} mm, beam centre x "
                 f"{float(fit2d['centerX']):.0f}, y {float(fit2d['centerY']):.0f} px, "
                 f"λ {failure.guess.wavelength_A:.4f} Å\norange dashed: rings at the start, "
                 f"red: last try, cyan +: {len(failure.points)} points found", fontsize=8)
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)  # row 0 at the top, as in every picture
    ax.set_xlabel("x (column, pixels)")
    ax.set_ylabel("y (row, pixels)")
    fig.tight_layout()
    return save_figure(fig, path)


def failure_hint(failure: CalibrationFailed) -> str:
    """What to check, with the start values: the rings in the picture should sit where
    the dashed ones are drawn."""
    fit2d = failure.guess.pyfai.getFit2D()
    return (f"check the wavelength ({failure.guess.wavelength_A:.4f} Å; --refine-wavelength "
            f"once close), the start distance ({failure.guess.distance_m * 1e3:.1f} mm; "
            f"--distance MM) and the beam centre (x {float(fit2d['centerX']):.0f}, "
            f"y {float(fit2d['centerY']):.0f} pixels; --beam-center X,Y): rings in the image "
            "larger than the dashed ones mean a larger distance or wavelength than the "
            "start, rings off-centre from them a beam centre off")
