"""``nxgid validate`` and the standalone validators (pynx validate, nxvalidate, nxcheck) on
reduced, configuration and scan files: they agree, and nxgid's never changes a file."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

from nxgid.conversion import Converter, TargetSpec
from nxgid.experiment.configuration import spec_from_settings, write_configuration
from nxgid.experiment.layout import ScanRef
from nxgid.experiment.scans import link_raw, new_scan
from nxgid.geometry import DetectorGeometry, SampleGeometry
from nxgid.images.simulate import Pattern, Spot, simulate_stack
from nxgid.nexus.writer import EntryMetadata, InstrumentInfo, NexusWriter
from nxgid.settings.store import load_effective

pytest.importorskip("nexusformat")
pytest.importorskip("pynxtools")
BIN = Path(sys.executable).parent


def _reduced(path: Path) -> Path:
    geometry = DetectorGeometry.from_parameters(
        detector=None, pixel_size_m=(172e-6, 172e-6), shape=(48, 80), distance_m=0.08,
        wavelength_A=1.0, beam_center_px=(4.0, 40.0))
    sample = SampleGeometry.grazing(0.15)
    frames = simulate_stack(geometry, sample, Pattern(spots=(Spot(1.0, 0.4, 400, 0.04),),
                                                      background=5.0), frames=2)
    converter = Converter(geometry, sample, ["img_gid_q", "img_gid_exit",
                                             TargetSpec("vert_cut_gid", cut=(-0.1, 0.1))])
    with NexusWriter(path, EntryMetadata(InstrumentInfo(geometry))) as writer:
        writer.write(converter.convert(frames))
    return path


@pytest.fixture
def files(sqlite_experiment, site_file, tmp_path):
    """A reduced file, a configuration, and a scan file before and after its raw data."""
    experiment = sqlite_experiment
    settings = load_effective(site_file).settings
    spec = spec_from_settings("gid", settings, values={"detector": "Pilatus100k"})
    config = write_configuration(experiment.configuration_file("gid"), spec)
    (experiment.root / "film" / "rt").mkdir(parents=True)
    before = new_scan(experiment, ScanRef("film", "rt", "s001"), "gid")
    after = new_scan(experiment, ScanRef("film", "rt", "s002"), "gid")
    stack = experiment.raw_stack(ScanRef("film", "rt", "s002"), "f1")
    with h5py.File(stack, "w") as f:
        frames = np.ones((2, 195, 487), np.uint32)
        f.create_dataset("entry/data/data", data=frames, **hdf5plugin.Bitshuffle())
    link_raw(experiment, ScanRef("film", "rt", "s002"))
    return {"reduced": _reduced(tmp_path / "reduced.nxs"), "configuration": config,
            "scan before its data": before, "scan with its data": after}


def _state(path: Path) -> tuple:
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def test_nxgid_validate_passes_every_kind_of_file_and_changes_none(files, nxgid):
    states = {name: _state(path) for name, path in files.items()}
    result = nxgid(["validate", *map(str, files.values())])
    assert result.exit_code == 0, result.output
    for path in files.values():
        assert f"{path}: valid (nexusformat, pynxtools, silx, nxload)" in result.stdout
    assert {name: _state(path) for name, path in files.items()} == states


def test_an_invalid_file_gets_one_line_per_problem_and_status_1(files, nxgid, tmp_path):
    broken = tmp_path / "broken.nxs"
    shutil.copy(files["reduced"], broken)
    with h5py.File(broken, "r+") as f:
        del f["img_gid_q/instrument/monochromator/wavelength"]  # required by NXgid
        f["img_gid_q/data"].attrs["signal"] = "nothing"
    result = nxgid(["validate", str(broken), str(files["configuration"])])
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line.endswith("]")]
    assert any("/img_gid_q/instrument/monochromator" in line and "wavelength" in line
               and "[pynxtools]" in line for line in problems), problems
    assert any("[nexusformat]" in line for line in problems)
    assert any("[silx]" in line and "/img_gid_q/data" in line for line in problems)
    assert f"{broken}: NOT valid" in result.stdout
    assert f"{files['configuration']}: valid" in result.stdout
    missing = nxgid(["validate", str(tmp_path / "none.nxs")])
    assert missing.exit_code == 2 and missing.stderr.startswith("error: ")
    assert len(missing.stderr.strip().splitlines()) == 1


def _copy(files, folder: Path) -> dict[str, Path]:
    """Copies in one folder (nexusformat's tools change the modification time), with the
    scan's raw stack beside it for its relative link."""
    folder.mkdir()
    copies = {}
    for name, path in files.items():
        copies[name] = folder / path.name
        shutil.copy(path, copies[name])
    (folder / "s002").mkdir()
    shutil.copy(files["scan with its data"].parent / "s002" / "f1.h5", folder / "s002")
    return copies


def test_the_standalone_validators_agree(files, nxgid, tmp_path):
    definitions = tmp_path / "definitions"
    made = nxgid(["validate", "--definitions", str(definitions)])
    assert made.exit_code == 0 and (definitions / "applications" / "NXgid.nxdl.xml").exists()
    copies = _copy(files, tmp_path / "copies")
    env = {**os.environ, "NEXUS_DEF_PATH": str(definitions)}
    for name, path in copies.items():
        with h5py.File(path) as f:
            entries = [e for e in f if f[e].attrs.get("NX_class") == "NXentry"]
            named = [e for e in entries if "definition" in f[e]]
        # pynx validate: every entry that names a definition is valid (run from the
        # file's folder: pynxtools resolves relative links from there)
        done = subprocess.run([str(BIN / "pynx"), "validate", path.name], cwd=path.parent,
                              env=env, capture_output=True, text=True, check=False)
        output = done.stdout + done.stderr
        assert "NOT valid" not in output, (name, output[-2000:])
        for entry in named:
            assert f"The entry `{entry}` in file `{path.name}` is valid" in output, name
        # nexusformat: 0 errors, entry by entry and for the whole file
        for entry in named:
            done = subprocess.run([str(BIN / "nxvalidate"), "-d", str(definitions), "-p",
                                   f"/{entry}", str(path)], capture_output=True, text=True,
                                  check=False)
            assert "Total number of errors: 0" in done.stdout + done.stderr, \
                (name, entry, (done.stdout + done.stderr)[-1500:])
        done = subprocess.run([str(BIN / "nxcheck"), "-d", str(definitions), str(path)],
                              capture_output=True, text=True, check=False)
        assert "Total number of errors: 0" in done.stdout + done.stderr, (name, done.stdout)
