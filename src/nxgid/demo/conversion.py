"""The demo's reciprocal-space step: simulate a textured thin film, convert, check.

A pentacene-like film on a Pilatus 2M: powder rings plus fibre-textured Bragg spots at
known (q_xy, q_z), seen at a grazing incidence angle with Poisson noise, the horizon and
the detector gaps. The raw stacks ``<scan>/fN.h5`` (made by :mod:`nxgid.demo.setup`) are
reduced by the workflow under :data:`DEMO_RECIPE` (q_xy/q_z, polar and exit-angle maps
and profiles, solid-angle and polarization corrections, the calibrated geometry and the
beam-stop mask) into ``<scan>/fN_reduced.nxs`` with the sample's layers from
``<sample>/sample.yaml``. One scan is an incidence-angle scan (one angle per frame).
:func:`check_reduction` then finds every spot again in the map read back from the file
and compares it with the truth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nxgid.demo.bins_figure import compare_default_bins
from nxgid.geometry import DetectorGeometry, SampleGeometry
from nxgid.plot.results import frame_mean

INCIDENCE_DEG = 0.15
FRAMES = 4
#: The incidence-angle scan of the demo (one angle per frame), degrees.
INCIDENCE_SCAN_DEG = (0.08, 0.12, 0.16, 0.20)

SAMPLE_YAML = """\
# The sample of the nxgid demo: layers from the top (the film) down to the substrate.
sample:
  name: pentacene-SiO2
  description: pentacene thin film evaporated on thermally oxidised silicon
  layers:
    - material: pentacene
      chemical_formula: C22H14
      thickness: 50 nm
      density: 1.33 g/cm3
      roughness: 2.5 nm
    - material: silicon oxide
      chemical_formula: SiO2
      thickness: 100 nm
      density: 2.2 g/cm3
      roughness: 0.3 nm
    - material: silicon
      chemical_formula: Si
      thickness: 0.5 mm
      density: 2.33 g/cm3
  notes:
    deposition_rate_nm_per_min: 0.5
experiment:
  facility: Demo Synchrotron
  beamline: demo-gid
  proposal: DEMO-2026-001
  title: Pentacene thin-film structure, demo beamtime
  users:
    - name: Ada Beamline
      role: PI
      affiliation: Demo University
    - name: Max Contact
      role: local contact
      affiliation: Demo Synchrotron
"""


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
    #: Reduced NeXus files written.
    files: list[Path] = field(default_factory=list)
    #: The default bins against nxgid 0.1's (docs/conversion.md), on the first frame.
    bins: object | None = None  # nxgid.demo.bins_figure.BinsComparison
    #: What `nxgid reduce` queued (its summary line).
    queued: str = ""


def demo_geometry(wavelength_A: float, distance_mm: float, detector: str) -> DetectorGeometry:
    """The beam enters low on the detector, so most of it sees above the horizon."""
    return DetectorGeometry.from_parameters(
        detector=detector, distance_m=distance_mm / 1000, wavelength_A=wavelength_A,
        beam_center_px=(60.0, 760.0), rot1_rad=0.002, rot2_rad=-0.004)


def film_pattern():
    from nxgid.images.simulate import Pattern, Ring, Spot

    return Pattern(
        rings=(Ring(d_spacing_A=4.55, intensity=25, width_A=0.01),
               Ring(d_spacing_A=3.17, intensity=15, width_A=0.012)),
        spots=(Spot(1.33, 0.38, 900, 0.012), Spot(1.33, 0.80, 500, 0.012),
               Spot(1.62, 0.40, 700, 0.012), Spot(1.97, 0.62, 400, 0.014),
               Spot(0.70, 1.15, 300, 0.012)),
        background=3.0)


#: The demo's reduction recipe ([reduction] of the experiment): maps and profiles with
#: their ranges and bins, corrections, the configuration's mask, incidence angles
#: from the beamline log where there is one.
DEMO_RECIPE = {
    "outputs": "img_gid_q, img_gid_pol, img_gid_exit, vert_cut_gid, rad_cut_gid",
    "img_gid_q": "q_xy=-2.4:2.4:800, q_z=-0.2:2.6:467",
    "img_gid_pol": "q_gid_pol=0.2:2.8:520, ang_gid_pol=0:180:360",
    "img_gid_exit": "ang_gid_inplane=-25:25:500, ang_gid_exit=-1:45:460",
    "vert_cut_gid": "q_z=0:2.5:250, cut=1.28:1.38",
    "rad_cut_gid": "q_gid_pol=0.2:2.8:520, cut=5:175",
    "corrections": "solid_angle, polarization",
    "mask": "configuration",
    "incidence_angle": "auto",
}
#: Overrides: the as-grown film's frames are normalised by the logged monitor; the
#: summed scan has no log of its own, so not there.
DEMO_OVERRIDES = {
    "pentacene-SiO2/as-grown": {"monitor_normalisation": "true"},
    "pentacene-SiO2/as-grown/s001-s003": {"monitor_normalisation": "false"},
}


def write_sample_files(experiment, samples) -> None:
    """``<sample>/sample.yaml`` with the film's layers, read by every conversion."""
    for sample in samples:
        metadata = experiment.sample_metadata_file(sample)
        if not metadata.exists():
            metadata.write_text(SAMPLE_YAML.replace("pentacene-SiO2", sample))


def check_reduction(directory: Path, files: list[Path], first_angle_deg: float,
                    raw_first: Path, poni: Path, polarization_factor: float,
                    timings: dict[str, float], targets) -> ConversionReport:
    """Read back the reduced files the workflow wrote; check the spots of the first
    against the truth; map its frames in other ways in memory; validate every file."""
    from nxgid.conversion import Converter
    from nxgid.conversion.corrections import Corrections
    from nxgid.nexus.reader import NexusFile

    geometry = DetectorGeometry.from_poni(poni)
    pattern = film_pattern()
    corrections = Corrections(solid_angle=True, polarization_factor=polarization_factor)
    specs = {spec.name: spec for spec in targets}  # the recipe's, as the workflow used
    first = NexusFile(files[0])
    results = {e.result: first.load(e.name) for e in first.entries()}
    spots = check_spots(results["img_gid_q"], pattern)
    raw_frames = _read_raw(raw_first)
    sample = SampleGeometry.grazing(first_angle_deg)
    tick = time.perf_counter()
    variants = {
        "img_gid_pol_split": Converter(
            geometry, sample, [specs["img_gid_pol"]], corrections=corrections,
            pixel_splitting=True).convert(raw_frames)["img_gid_pol"],
        "img_gid_q_bilinear": Converter(
            geometry, sample, [specs["img_gid_q"]], corrections=corrections,
            method="bilinear").convert(raw_frames)["img_gid_q"],
    }
    timings["pixel-split polar and bilinear q maps (in memory)"] = time.perf_counter() - tick
    variants.update(transmission_results(geometry, corrections))
    previews = write_previews(directory / "previews", {**results, **variants})
    tick = time.perf_counter()
    bins = compare_default_bins(geometry, sample, raw_frames[0],
                                directory / "previews" / "default-bins.png",
                                corrections=corrections, zoom=((1.1, 1.6), (0.2, 0.6)))
    previews.append(bins.path)
    timings["default bins against nxgid 0.1's (coverage checked)"] = \
        time.perf_counter() - tick
    return ConversionReport(
        poni=poni, previews=previews,
        results={name: r.intensity.shape for name, r in {**results, **variants}.items()},
        spots=spots, timings_s=timings, corrections=corrections.describe(), files=files,
        bins=bins)


def _read_raw(path: Path) -> np.ndarray:
    from nxgid.images.series import open_series

    series = open_series([path])
    return np.stack([frame for frame, _ in series.iter_frames()])


def validate_outputs(paths: list[Path]) -> tuple[int, list[str]]:
    """``nxgid validate`` on the demo's files, as a user runs it: (exit status, the
    lines it printed)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "nxgid.cli.main", "validate",
                           *map(str, paths)], capture_output=True, text=True, check=False)
    return done.returncode, (done.stdout + done.stderr).strip().splitlines()


def transmission_results(geometry: DetectorGeometry, corrections) -> dict:
    """A LaB6-like powder in transmission: the q_x/q_y map and the radial profile."""
    from nxgid.conversion import Converter
    from nxgid.images.simulate import Pattern, Ring, simulate

    sample = SampleGeometry.transmission()
    lab6 = Pattern(rings=tuple(Ring(d, 200.0 / (i + 1), 0.004) for i, d in enumerate(
        (4.1569, 2.9394, 2.4000, 2.0785, 1.8590, 1.6971))), background=2.0)
    frame = simulate(geometry, sample, lab6, seed=3,
                     polarization_factor=corrections.polarization_factor)
    results = Converter(geometry, sample, ["img_q", "rad_cut"],
                        corrections=corrections).convert(frame)
    return {f"transmission_{name}": result for name, result in results.items()}


def check_spots(result, pattern) -> list[SpotCheck]:
    """Centroid of every spot (and its mirror) in the summed map against the truth."""
    summed = frame_mean(result.intensity)
    qx, qz = result.x_axis.centres, result.y_axis.centres
    grid_x, grid_z = np.meshgrid(qx, qz)
    half = (result.x_axis.step / 2, result.y_axis.step / 2)
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
    from nxgid.plot.results import plot_result

    return [plot_result(result, folder / f"{name}.png") for name, result in results.items()]
