"""The demo's reciprocal-space step: simulate a textured thin film, convert, check.

A pentacene-like film on a Pilatus 2M: powder rings plus fibre-textured Bragg spots at
known (q_xy, q_z), seen at a grazing incidence angle with Poisson noise, the horizon and
the detector gaps. The frames are converted to q_xy/q_z, polar and exit-angle maps and
to profiles, with solid-angle and polarization corrections, and every spot's position
in the map is compared with the truth. Maps are cached on disk, and a second converter
shows the cache at work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nxgid.geometry import DetectorGeometry, SampleGeometry

INCIDENCE_DEG = 0.15
FRAMES = 4


@dataclass
class SpotCheck:
    q_xy_A: float
    q_z_A: float
    found_q_xy_A: float
    found_q_z_A: float
    half_bin_A: tuple[float, float]

    @property
    def ok(self) -> bool:
        return (abs(self.found_q_xy_A - self.q_xy_A) <= self.half_bin_A[0]
                and abs(self.found_q_z_A - self.q_z_A) <= self.half_bin_A[1])


@dataclass
class ConversionReport:
    poni: Path
    previews: list[Path]
    results: dict[str, tuple[int, ...]]
    spots: list[SpotCheck]
    timings_s: dict[str, float] = field(default_factory=dict)
    corrections: dict = field(default_factory=dict)


def demo_geometry(wavelength_A: float, distance_mm: float, detector: str) -> DetectorGeometry:
    """The beam enters low on the detector, so most of it sees above the horizon."""
    return DetectorGeometry.from_parameters(
        detector=detector, distance_m=distance_mm / 1000, wavelength_A=wavelength_A,
        beam_center_px=(60.0, 760.0), rot1_rad=0.002, rot2_rad=-0.004)


def film_pattern():
    from nxgid.simulate import Pattern, Ring, Spot

    return Pattern(
        rings=(Ring(d_spacing_A=4.55, intensity=25, width_A=0.01),
               Ring(d_spacing_A=3.17, intensity=15, width_A=0.012)),
        spots=(Spot(1.33, 0.38, 900, 0.012), Spot(1.33, 0.80, 500, 0.012),
               Spot(1.62, 0.40, 700, 0.012), Spot(1.97, 0.62, 400, 0.014),
               Spot(0.70, 1.15, 300, 0.012)),
        background=3.0)


def run_conversion(directory: Path, calibrations: Path, settings) -> ConversionReport:
    """Simulate, convert and check; write a PONI file and PNG previews."""
    from nxgid.conversion import Converter, TargetSpec
    from nxgid.conversion.corrections import Corrections
    from nxgid.simulate import simulate_stack

    timings: dict[str, float] = {}
    start = time.perf_counter()
    cfg = settings.configuration
    geometry = demo_geometry(cfg.wavelength_A, cfg.distance_mm, cfg.detector)
    poni = calibrations / "demo-geometry.poni"
    geometry.save_poni(poni)
    geometry = DetectorGeometry.from_poni(poni)  # what a user does with a calibration
    sample = SampleGeometry.grazing(INCIDENCE_DEG)
    pattern = film_pattern()
    frames = simulate_stack(geometry, sample, pattern, frames=FRAMES, seed=7,
                            polarization_factor=cfg.polarization_factor)
    timings["simulate"] = time.perf_counter() - start

    corrections = Corrections(solid_angle=True, polarization_factor=cfg.polarization_factor)
    specs = [
        TargetSpec("img_gid_q", ranges={"q_xy": (-2.4, 2.4), "q_z": (-0.2, 2.6)},
                   bins={"q_xy": 800, "q_z": 467}),
        TargetSpec("img_gid_pol", ranges={"q_gid_pol": (0.2, 2.8), "ang_gid_pol": (0, 180)},
                   bins={"q_gid_pol": 520, "ang_gid_pol": 360}),
        "img_gid_exit",
        TargetSpec("vert_cut_gid", ranges={"q_z": (0.0, 2.5)}, bins={"q_z": 250},
                   cut=(1.28, 1.38)),
        TargetSpec("rad_cut_gid", ranges={"q_gid_pol": (0.2, 2.8)}, bins={"q_gid_pol": 520},
                   cut=(5.0, 175.0)),
    ]
    cache = directory / "cache"
    tick = time.perf_counter()
    converter = Converter(geometry, sample, specs, corrections=corrections, cache_dir=cache)
    results = converter.convert(frames)
    timings["first conversion (maps built)"] = time.perf_counter() - tick
    tick = time.perf_counter()
    again = Converter(geometry, sample, specs, corrections=corrections, cache_dir=cache)
    again.convert(frames[:1])
    timings["new converter from the disk cache"] = time.perf_counter() - tick
    tick = time.perf_counter()
    converter.convert(frames)
    timings[f"warm conversion of {FRAMES} frames"] = time.perf_counter() - tick

    spots = check_spots(results["img_gid_q"], pattern)
    # the other ways to map the same frames, and a transmission (powder) measurement
    tick = time.perf_counter()
    variants = {
        "img_gid_pol_split": Converter(geometry, sample, [specs[1]], corrections=corrections,
                                       pixel_splitting=True).convert(frames)["img_gid_pol"],
        "img_gid_q_bilinear": Converter(geometry, sample, [specs[0]], corrections=corrections,
                                        method="bilinear").convert(frames)["img_gid_q"],
    }
    timings["pixel-split polar and bilinear q maps"] = time.perf_counter() - tick
    variants.update(transmission_results(geometry, corrections))
    previews = write_previews(directory / "previews", {**results, **variants})
    return ConversionReport(
        poni=poni, previews=previews,
        results={name: r.intensity.shape for name, r in {**results, **variants}.items()},
        spots=spots,
        timings_s=timings, corrections=corrections.describe())


def transmission_results(geometry: DetectorGeometry, corrections) -> dict:
    """A LaB6-like powder in transmission: the q_x/q_y map and the radial profile."""
    from nxgid.conversion import Converter
    from nxgid.simulate import Pattern, Ring, simulate

    sample = SampleGeometry.transmission()
    lab6 = Pattern(rings=tuple(Ring(d, 200.0 / (i + 1), 0.004) for i, d in enumerate(
        (4.1569, 2.9394, 2.4000, 2.0785, 1.8590, 1.6971))), background=2.0)
    frame = simulate(geometry, sample, lab6, seed=3,
                     polarization_factor=corrections.polarization_factor)
    results = Converter(geometry, sample, ["img_q", "rad_cut"],
                        corrections=corrections).convert(frame)
    return {f"transmission_{name}": result for name, result in results.items()}


def frame_mean(intensity: np.ndarray) -> np.ndarray:
    """Mean over frames, NaN where no frame has a value (no warning for empty bins)."""
    finite = np.isfinite(intensity)
    total = np.where(finite, intensity, 0.0).sum(axis=0)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def check_spots(result, pattern) -> list[SpotCheck]:
    """Centroid of every spot (and its mirror) in the summed map against the truth."""
    summed = frame_mean(result.intensity)
    qx, qz = (a.centres for a in result.axes)
    grid_x, grid_z = np.meshgrid(qx, qz)
    half = (result.axes[0].step / 2, result.axes[1].step / 2)
    checks = []
    for spot in pattern.spots:
        for x0, z0 in spot.centres_A:
            window = (np.abs(grid_x - x0) < 3 * spot.width_A) & \
                (np.abs(grid_z - z0) < 3 * spot.width_A)
            values = summed[window]
            if not np.isfinite(values).any():
                continue
            weights = np.nan_to_num(values - np.median(values[np.isfinite(values)]))
            weights = np.clip(weights, 0, None)
            if weights.sum() <= 0:
                continue
            checks.append(SpotCheck(
                x0, z0, float((grid_x[window] * weights).sum() / weights.sum()),
                float((grid_z[window] * weights).sum() / weights.sum()), half))
    return checks


def write_previews(folder: Path, results) -> list[Path]:
    """One PNG per map (log scale, axes with units) and one per profile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, result in results.items():
        fig, ax = plt.subplots(figsize=(7, 4.6), dpi=110)
        label = [f"{a.name} ({'Å⁻¹' if a.is_q else '°'})" for a in result.axes]
        data = frame_mean(result.intensity)
        if result.is_map:
            x, y = result.axes
            positive = data[np.isfinite(data) & (data > 0)]
            norm = LogNorm(vmin=max(np.percentile(positive, 1), 1e-3),
                           vmax=np.percentile(positive, 99.9)) if positive.size else None
            image = ax.imshow(data, origin="lower", aspect="auto", norm=norm, cmap="viridis",
                              extent=(x.start, x.stop, y.start, y.stop))
            fig.colorbar(image, ax=ax, label="intensity (corrected counts)")
            ax.set_xlabel(label[0])
            ax.set_ylabel(label[1])
        else:
            ax.plot(result.axes[0].centres, data)
            ax.set_xlabel(label[0])
            ax.set_ylabel("intensity (corrected counts)")
            ax.set_yscale("log")
        ax.set_title(f"{name} ({result.name}, {result.process.get('method')}"
                     f"{', pixel splitting' if result.process.get('pixel_splitting') else ''})"
                     f" — mean of {result.frames} frame(s)")
        path = folder / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
