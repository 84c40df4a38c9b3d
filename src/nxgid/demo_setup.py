"""The demo's experiment set-up, done as a beamline scientist does it from the CLI:

1. a configuration ``gid`` whose nominal geometry is a few mm and pixels off the truth;
2. a synthetic LaB6 powder image at the true geometry (written as a CBF file in the raw
   tree), from which the configuration is calibrated headless, as ``nxgid calibrate``;
3. a beam stop masked with a rectangle and a circle, as ``nxgid mask``;
4. every scan of the plan created from the configuration, as ``nxgid scan new``;
5. synthetic frames of a textured film written as CBF series in the raw tree (one entry
   an incidence-angle scan) and stacked into the scans, as ``nxgid stack``;
6. two scans summed into a third, as ``nxgid sum``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nxgid.demo_conversion import FRAMES, INCIDENCE_DEG, INCIDENCE_SCAN_DEG, demo_geometry
from nxgid.experiment.layout import Experiment, ScanRef

CONFIGURATION = "gid"
#: How far the configuration's nominal geometry is from the truth the calibration finds.
NOMINAL_DISTANCE_OFFSET_MM = -5.0
NOMINAL_BEAM_CENTRE_OFFSET_PX = (10.0, -10.0)
#: A beam stop over the direct beam (x = column, y = row, pixels).
BEAM_STOP_RECT = "735,0,50,75"
BEAM_STOP_CIRCLE = "760,60,22"
#: Entries with raw data: entry -> incidence angles (one: that many frames at it).
ENTRY_ANGLES: dict[str, tuple[float, ...]] = {"f1": (INCIDENCE_DEG,),
                                              "f2": INCIDENCE_SCAN_DEG}
MEASURED = ("s001", "s002")
SUMMED = "s001-s002"


@dataclass
class SetupReport:
    configuration: Path
    poni: Path
    mask_file: Path
    calibration: list[str]
    mask: list[str]
    #: (scan, entry, incidence angles) of every raw stack made.
    stacks: list[tuple[ScanRef, str, tuple[float, ...]]]
    summed: ScanRef
    timings_s: dict[str, float] = field(default_factory=dict)


def frames_for(geometry, angles: tuple[float, ...], seed: int, polarization: float):
    """Frames of the film: FRAMES frames at one angle, or one frame per angle."""
    from nxgid.demo_conversion import film_pattern
    from nxgid.geometry import SampleGeometry
    from nxgid.simulate import simulate_stack

    return np.concatenate([
        simulate_stack(geometry, SampleGeometry.grazing(angle), film_pattern(),
                       frames=FRAMES if len(angles) == 1 else 1, seed=seed + i,
                       polarization_factor=polarization)
        for i, angle in enumerate(angles)]).astype(np.int32)


def write_cbf_series(folder: Path, stem: str, frames: np.ndarray) -> list[Path]:
    """One CBF file per frame, as a Pilatus writes them."""
    import fabio

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames, start=1):
        path = folder / f"{stem}_{index:05d}.cbf"
        fabio.cbfimage.CbfImage(data=frame).write(str(path))
        paths.append(path)
    return paths


def build_setup(experiment: Experiment, settings, raw: Path, plan,
                say: Callable[[str], None]) -> SetupReport:
    from nxgid.calibration import synthetic_calibrant_image
    from nxgid.calibration_job import run_calibration, run_mask
    from nxgid.experiment.configuration import (
        configuration_mask,
        spec_from_settings,
        write_configuration,
    )
    from nxgid.experiment.scans import new_scan, sum_scans
    from nxgid.stack import stack_images

    timings: dict[str, float] = {}
    start = time.perf_counter()
    cfg = settings.configuration
    truth = demo_geometry(cfg.wavelength_A, cfg.distance_mm, cfg.detector)
    say("configuration")
    fit2d = truth.pyfai.getFit2D()
    nominal_centre = (float(fit2d["centerY"]) + NOMINAL_BEAM_CENTRE_OFFSET_PX[0],
                      float(fit2d["centerX"]) + NOMINAL_BEAM_CENTRE_OFFSET_PX[1])
    spec = spec_from_settings(
        CONFIGURATION, settings,
        values={"distance_mm": cfg.distance_mm + NOMINAL_DISTANCE_OFFSET_MM,
                "beam_center_px": nominal_centre},
        per_position={"incidence_angle_deg": [INCIDENCE_DEG, INCIDENCE_SCAN_DEG[0]]})
    path = write_configuration(experiment.configuration_file(CONFIGURATION), spec)

    say("calibration (headless, LaB6)")
    calibrant_image = write_cbf_series(raw / "calibration", "lab6",
                                       synthetic_calibrant_image(truth, "LaB6")[None])[0]
    poni = experiment.calibrations_dir / f"{CONFIGURATION}.poni"
    calibration = run_calibration(experiment, path, image=calibrant_image, calibrant="LaB6",
                                  export_poni=poni)
    timings["calibration"] = time.perf_counter() - start

    say("beam-stop mask")
    mask_lines = run_mask(experiment, path, rects=(BEAM_STOP_RECT,),
                          circles=(BEAM_STOP_CIRCLE,))
    user = (configuration_mask(path) & (1 << 8)) != 0
    mask_file = experiment.calibrations_dir / f"{CONFIGURATION}_user_mask.npy"
    np.save(mask_file, user.astype(np.uint8))

    say("scans from the configuration")
    for sample, labels in plan.items():
        for label, scans in labels.items():
            for scan, (temperature_K, _entries) in scans.items():
                new_scan(experiment, ScanRef(sample, label, scan), CONFIGURATION,
                         variables={"temperature": (temperature_K, "K")})

    say("raw CBF series, stacked into the scans")
    stacks = []
    as_grown = ("pentacene-SiO2", "as-grown")
    for number, scan in enumerate(MEASURED):
        ref = ScanRef(*as_grown, scan)
        for entry, angles in ENTRY_ANGLES.items():
            frames = frames_for(truth, angles, seed=7 + 10 * number + len(stacks),
                                polarization=cfg.polarization_factor)
            series = write_cbf_series(raw / ref.sample / ref.scan, entry, frames)
            stack_images([str(p) for p in series], experiment.raw_stack(ref, entry))
            stacks.append((ref, entry, angles))
    timings["raw series and stacks"] = time.perf_counter() - start

    say("summed scan")
    summed = ScanRef(*as_grown, SUMMED)
    sum_scans(experiment, *as_grown, list(MEASURED), SUMMED)
    timings["sum"] = time.perf_counter() - start
    return SetupReport(configuration=path, poni=poni, mask_file=mask_file,
                       calibration=calibration, mask=mask_lines, stacks=stacks,
                       summed=summed, timings_s=timings)
