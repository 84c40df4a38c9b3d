"""A small synthetic beamtime for the workflow tests: an experiment with a configuration
on a Pilatus 100k, scans whose raw stacks hold simulated thin-film frames, and a recipe
with small maps, so that a whole reduction takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from nxgid.experiment.layout import Experiment, ScanRef

DETECTOR = "Pilatus100k"  # 195 × 487 pixels
INCIDENCE_DEG = 0.15
SAMPLE, LABEL = "film", "rt"
#: The recipe of the tests: small maps and a profile, a cut over the spot at q_xy 1.3.
RECIPE = {
    "outputs": "img_gid_q, vert_cut_gid",
    "img_gid_q": "q_xy=-0.5:2.2:120, q_z=-0.1:1.6:80",
    "vert_cut_gid": "q_z=0:1.6:64, cut=1.2:1.4",
    "errors": "false",
}


@dataclass
class Beamtime:
    experiment: Experiment
    site_file: Path
    scans: list[ScanRef] = field(default_factory=list)


def film_pattern():
    from nxgid.images.simulate import Pattern, Ring, Spot

    return Pattern(rings=(Ring(d_spacing_A=4.55, intensity=20, width_A=0.02),),
                   spots=(Spot(1.30, 0.40, 600, 0.03), Spot(1.62, 0.80, 400, 0.03)),
                   background=2.0)


def geometry(experiment: Experiment):
    from nxgid.experiment.configuration import configuration_geometry

    return configuration_geometry(experiment.configuration_file("gid"))


def write_stack(path: Path, frames: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.attrs["NX_class"] = "NXroot"
        handle.create_dataset("entry/data/data", data=frames, chunks=(1, *frames.shape[1:]),
                              **hdf5plugin.Bitshuffle())
    return path


def simulated_frames(experiment: Experiment, count: int, seed: int = 0) -> np.ndarray:
    from nxgid.geometry import SampleGeometry
    from nxgid.images.simulate import simulate_stack

    return simulate_stack(geometry(experiment), SampleGeometry.grazing(INCIDENCE_DEG),
                          film_pattern(), frames=count, seed=seed).astype(np.int32)


def add_scan(beamtime: Beamtime, scan: str, frames: int, *, seed: int = 0) -> ScanRef:
    from nxgid.experiment.scans import new_scan

    ref = ScanRef(SAMPLE, LABEL, scan)
    new_scan(beamtime.experiment, ref, "gid")
    write_stack(beamtime.experiment.raw_stack(ref, "f1"),
                simulated_frames(beamtime.experiment, frames, seed))
    beamtime.scans.append(ref)
    return ref


def make_beamtime(site_file: Path, scans: dict[str, int] | None = None,
                  recipe: dict[str, str] | None = None) -> Beamtime:
    """An experiment ``exp`` (database from the site file) with scans name → frames."""
    from nxgid.experiment.configuration import spec_from_settings, write_configuration
    from nxgid.experiment.recipe import set_recipe
    from nxgid.settings.store import load_effective
    from nxgid.workflow.workspace import effective_settings, new_experiment, new_sample

    site = load_effective(site_file)
    experiment = new_experiment("exp", site)
    spec = spec_from_settings("gid", site.settings, values={
        "detector": DETECTOR, "distance_mm": 150.0, "wavelength_A": 1.0},
        per_position={"incidence_angle_deg": [INCIDENCE_DEG]})
    write_configuration(experiment.configuration_file("gid"), spec)
    new_sample(experiment, SAMPLE, LABEL)
    effective = effective_settings(experiment, site_path=site_file)
    set_recipe(experiment, effective, "", list({**RECIPE, **(recipe or {})}.items()))
    beamtime = Beamtime(experiment, site_file)
    scans = {"s001": 3, "s002": 3} if scans is None else scans
    for index, (scan, frames) in enumerate(scans.items()):
        add_scan(beamtime, scan, frames, seed=index)
    return beamtime


def set_server(site_file: Path, **values) -> None:
    from nxgid.settings.store import SettingsFile, set_values

    set_values(SettingsFile.read(site_file),
               [("server", key, str(value)) for key, value in values.items()])


def data_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every numeric dataset of a reduced file under ``*/data`` (the results, axes and
    per-frame values), for comparing runs bit for bit."""
    found: dict[str, np.ndarray] = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset) and "/data/" in f"/{name}" \
                and item.dtype.kind in "fiub":
            found[name] = item[()]
    with h5py.File(path, "r") as handle:
        handle.visititems(visit)
    return found
