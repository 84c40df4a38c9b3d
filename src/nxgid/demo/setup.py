"""The demo's experiment set-up, done as a beamline scientist does it from the CLI:

1. a configuration ``gid`` whose nominal geometry is a few mm and pixels off the truth;
2. a synthetic LaB6 powder image at the true geometry (a CBF file in the raw tree), from
   which the configuration is calibrated headless, as ``nxgid calibrate``;
3. a beam stop masked with a rectangle and a circle, as ``nxgid mask``;
4. a raw tree like a beamline's: a SPEC file whose scans (two series at one incidence
   angle, one incidence-angle scan) point at per-scan CBF folders, and one Eiger-style
   HDF5 scan (a master file linking bitshuffle data files);
5. both imported with the beamline plugins (``spec`` and ``hdf5``), as ``nxgid import``:
   scans from the configuration, frames stacked or linked, SPEC logs written;
6. two scans summed into a third, as ``nxgid sum``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nxgid.demo.conversion import FRAMES, INCIDENCE_DEG, INCIDENCE_SCAN_DEG, demo_geometry
from nxgid.experiment.layout import Experiment, ScanRef

CONFIGURATION = "gid"
#: How far the configuration's nominal geometry is from the truth the calibration finds.
NOMINAL_DISTANCE_OFFSET_MM = -5.0
NOMINAL_BEAM_CENTRE_OFFSET_PX = (10.0, -10.0)
#: A beam stop over the direct beam (x = column, y = row, pixels).
BEAM_STOP_RECT = "735,0,50,75"
BEAM_STOP_CIRCLE = "760,60,22"
#: The SPEC scans of the as-grown film: nxgid scan → (SPEC command, incidence angles
#: (one: that many frames at it), temperature in K).
SPEC_SCANS: dict[str, tuple[str, tuple[float, ...], float]] = {
    "s001": ("loopscan 4 1", (INCIDENCE_DEG,), 295.0),
    "s002": (f"ascan ai {INCIDENCE_SCAN_DEG[0]} {INCIDENCE_SCAN_DEG[-1]} "
             f"{len(INCIDENCE_SCAN_DEG) - 1} 1", INCIDENCE_SCAN_DEG, 295.0),
    "s003": ("loopscan 4 1", (INCIDENCE_DEG,), 295.0),
    "s005": ("loopscan 4 1", (INCIDENCE_DEG,), 340.0),  # the film annealed in situ
}
AS_GROWN = ("pentacene-SiO2", "as-grown")
SUMMED_FROM = ("s001", "s003")
SUMMED = "s001-s003"
#: The Eiger-style HDF5 scan.
HDF5_SCAN = ("P3HT-blend", "rt", "s004")
#: [beamline] settings the demo's raw tree follows (one SPEC file per sample and label).
BEAMLINE_SETTINGS = {"spec_file": "{sample}_{label}.spec", "monitor": "I0"}


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
    spec_file: Path | None = None
    imports: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def frames_for(geometry, angles: tuple[float, ...], seed: int, polarization: float):
    """Frames of the film: FRAMES frames at one angle, or one frame per angle."""
    from nxgid.demo.conversion import film_pattern
    from nxgid.geometry import SampleGeometry
    from nxgid.images.simulate import simulate_stack

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


def build_setup(experiment: Experiment, settings, raw: Path,
                say: Callable[[str], None]) -> SetupReport:
    from nxgid.experiment.calibration import synthetic_calibrant_image
    from nxgid.experiment.calibration_job import run_calibration, run_mask
    from nxgid.experiment.configuration import (
        configuration_mask,
        spec_from_settings,
        write_configuration,
    )
    from nxgid.experiment.scans import sum_scans

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
        per_position={"incidence_angle_deg": [INCIDENCE_DEG]})
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

    say("raw tree: a SPEC file with CBF folders, an Eiger-style HDF5 scan")
    spec_file = write_spec_raw_tree(raw, truth, cfg.polarization_factor)
    write_eiger_scan(raw, truth, cfg.polarization_factor)
    timings["raw tree"] = time.perf_counter() - start

    say("import with the spec and hdf5 beamlines")
    from nxgid.beamlines.hdf5 import HDF5BeamLine
    from nxgid.beamlines.importer import import_scans
    from nxgid.beamlines.spec import SpecBeamLine

    imports = import_scans(experiment, SpecBeamLine(raw, settings), *AS_GROWN,
                           CONFIGURATION)
    imports += import_scans(experiment, HDF5BeamLine(raw, settings), *HDF5_SCAN[:2],
                            CONFIGURATION)
    stacks = [(ScanRef(*AS_GROWN, scan), "f1", angles)
              for scan, (_command, angles, _t) in SPEC_SCANS.items()]
    stacks.append((ScanRef(*HDF5_SCAN), "f1", (INCIDENCE_DEG,)))
    timings["import"] = time.perf_counter() - start

    say("summed scan")
    summed = ScanRef(*AS_GROWN, SUMMED)
    sum_scans(experiment, *AS_GROWN, list(SUMMED_FROM), SUMMED)
    timings["sum"] = time.perf_counter() - start
    return SetupReport(configuration=path, poni=poni, mask_file=mask_file,
                       calibration=calibration, mask=mask_lines, stacks=stacks,
                       summed=summed, timings_s=timings, spec_file=spec_file,
                       imports=[f"{a.scan} {a.action} {a.detail}" for a in imports],
                       warnings=[w for a in imports for w in a.warnings])


def write_spec_raw_tree(raw: Path, truth, polarization: float) -> Path:
    """``<sample>_<label>.spec`` and one CBF folder per SPEC scan, as a SPEC beamline
    writes them (per-point monitor, temperature, the scanned incidence angle)."""
    sample, label = AS_GROWN
    lines = [f"#F {sample}_{label}.spec", "#E 1795424400",
             "#D Mon Nov 23 09:00:00 2026", "#O0 phi  chi  th  ai", ""]
    rng = np.random.default_rng(11)
    for scan, (command, angles, temperature) in SPEC_SCANS.items():
        number = int(scan.removeprefix("s"))  # SPEC scan N is nxgid scan sNNN
        frames = frames_for(truth, angles, seed=7 + 10 * number,
                            polarization=polarization)
        write_cbf_series(raw / f"{sample}_{number:03d}", "frame", frames)
        points = len(frames)
        lines += [f"#S {number}  {command}", f"#D Mon Nov 23 09:{10 * number:02d}:00 2026",
                  "#T 1  (Seconds)", f"#P0 0.0 0.0 0.0 {angles[0]}", "#N 5"]
        scanned = len(angles) > 1
        lines.append("#L " + ("ai  " if scanned else "") + "Epoch  Seconds  I0  temp")
        for point in range(points):
            monitor = int(rng.normal(1.0e5, 500))
            row = [f"{angles[point]:.4f}"] if scanned else []
            row += [str(point + 1), "1", str(monitor), f"{temperature + 0.1 * point:.2f}"]
            lines.append(" ".join(row))
        lines.append("")
    path = raw / f"{sample}_{label}.spec"
    path.write_text("\n".join(lines))
    return path


def write_eiger_scan(raw: Path, truth, polarization: float) -> Path:
    """``<sample>/<label>/<scan>_master.h5`` linking two bitshuffle-compressed data
    files, as an Eiger writes them."""
    import h5py
    import hdf5plugin

    sample, label, scan = HDF5_SCAN
    folder = raw / sample / label
    folder.mkdir(parents=True, exist_ok=True)
    frames = frames_for(truth, (INCIDENCE_DEG,), seed=41, polarization=polarization)
    for part, chunk in enumerate((frames[:2], frames[2:]), start=1):
        with h5py.File(folder / f"{scan}_data_{part:06d}.h5", "w") as f:
            f.create_dataset("entry/data/data", data=chunk.astype(np.uint32),
                             chunks=(1, *chunk.shape[1:]),
                             **hdf5plugin.Bitshuffle(cname="lz4"))
    master = folder / f"{scan}_master.h5"
    with h5py.File(master, "w") as f:
        group = f.create_group("entry/data")
        for part in (1, 2):
            group[f"data_{part:06d}"] = h5py.ExternalLink(f"{scan}_data_{part:06d}.h5",
                                                          "/entry/data/data")
    return master
