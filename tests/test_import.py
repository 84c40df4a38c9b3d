"""Beamline plugins: discovery and ``nxgid import`` from image folders and HDF5 masters."""

from __future__ import annotations

import os
import stat

import fabio
import h5py
import hdf5plugin
import numpy as np
import pytest

from nxgid.experiment import ScanRef

SHAPE = (195, 487)  # Pilatus 100k


@pytest.fixture
def beamtime(tmp_path, nxgid):
    """An experiment with a raw tree and a configuration ``gid`` with two positions."""
    from nxgid.settings.store import create_site_file, load_effective
    from nxgid.workflow.workspace import new_experiment, new_sample

    raw = tmp_path / "raw" / "exp"
    raw.mkdir(parents=True)
    site = tmp_path / "site" / "settings.ini"
    create_site_file(site, {"instrument": {"analysis_home": str(tmp_path / "analysis"),
                                           "raw_home": str(tmp_path / "raw"),
                                           "instrument": "images"}})
    experiment = new_experiment("exp", load_effective(site))
    new_sample(experiment, "film", "rt")
    result = nxgid(["-E", str(experiment.root), "config", "new", "gid", "--detector",
                    "Pilatus100k", "--positions", "2"])
    assert result.exit_code == 0, result.output
    return experiment, raw


def _cbf_folder(folder, frames):
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        fabio.cbfimage.CbfImage(data=frame).write(str(folder / f"img_{index + 1:04d}.cbf"))


def _snapshot(folder):
    """Every path under *folder* with its size, modification time and content hash."""
    import hashlib

    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns,
                                            hashlib.sha256(path.read_bytes()).hexdigest()
                                            if path.is_file() else "")
            for path in sorted(folder.rglob("*"))}


def test_builtin_beamlines_are_discovered(nxgid):
    from nxgid.beamlines.base import discover, get_beamline
    from nxgid.errors import NxgidError

    found = discover()
    assert {"images", "hdf5"} <= set(found)
    assert found["images"].package == "nxgid" and found["images"].cls is not None
    listed = nxgid(["beamlines"])
    assert "images" in listed.stdout and "from nxgid" in listed.stdout
    with pytest.raises(NxgidError, match="beamline 'nope' is not installed; installed: "):
        get_beamline("nope")


def test_import_image_folders_dry_run_idempotent_and_read_only(beamtime, nxgid):
    experiment, raw = beamtime
    rng = np.random.default_rng(0)
    frames = {scan: rng.poisson(4, (3, *SHAPE)).astype(np.int32) for scan in ("s001", "s002")}
    for scan, stack in frames.items():
        _cbf_folder(raw / "film" / "rt" / scan, stack)
    (raw / "film" / "rt" / "s003").mkdir()  # an empty folder: skipped with the reason
    for path, _dirs, files in os.walk(raw):  # the raw tree is read only
        os.chmod(path, stat.S_IRUSR | stat.S_IXUSR)
        for name in files:
            os.chmod(os.path.join(path, name), stat.S_IRUSR)
    E = ["-E", str(experiment.root)]
    before = _snapshot(raw)  # tests run as root, where chmod alone proves nothing
    try:
        dry = nxgid([*E, "import", "film", "rt", "--config", "gid", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "would be: 1 entry, 3 image file(s) stacked" in dry.stdout
        assert "skipped" in dry.stdout and "no image files" in dry.stdout
        assert not experiment.scan_file(ScanRef("film", "rt", "s001")).exists()

        done = nxgid([*E, "import", "film", "rt", "--config", "gid"])
        assert done.exit_code == 0, done.output
        for scan, stack in frames.items():
            with h5py.File(experiment.scan_file(ScanRef("film", "rt", scan))) as f:
                np.testing.assert_array_equal(f["f1/data/data"][()], stack)
                assert f["entry/import/beamline"][()].decode() == "images"
        again = nxgid([*E, "import", "film", "rt", "--config", "gid"])
        assert again.stdout.count("unchanged") == 2
        assert _snapshot(raw) == before  # nothing in the raw tree was written or added
    finally:
        for path, _dirs, files in os.walk(raw):
            os.chmod(path, stat.S_IRWXU)
            for name in files:
                os.chmod(os.path.join(path, name), stat.S_IRUSR | stat.S_IWUSR)
    # a changed raw scan is reported, and re-imported only when asked
    extra = np.full(SHAPE, 7, np.int32)
    fabio.cbfimage.CbfImage(data=extra).write(str(raw / "film" / "rt" / "s001" / "img_9999.cbf"))
    changed = nxgid([*E, "import", "film", "rt", "--config", "gid"])
    assert "s001         changed" in changed.stdout
    redone = nxgid([*E, "import", "film", "rt", "--config", "gid", "--overwrite"])
    assert redone.exit_code == 0, redone.output
    with h5py.File(experiment.raw_stack(ScanRef("film", "rt", "s001"), "f1")) as f:
        assert f["entry/data/data"].shape == (4, *SHAPE)
        np.testing.assert_array_equal(f["entry/data/data"][3], extra)
    status = nxgid([*E, "status"])
    assert "film/rt/s001" in status.stdout and "film/rt/s002" in status.stdout


def test_import_hdf5_masters_links_never_copies(beamtime, nxgid):
    experiment, raw = beamtime
    folder = raw / "film" / "rt"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    parts = [rng.poisson(3, (2, *SHAPE)).astype(np.uint32) for _ in range(2)]
    for index, part in enumerate(parts, start=1):
        with h5py.File(folder / f"s010_data_{index:06d}.h5", "w") as f:
            f.create_dataset("entry/data/data", data=part, **hdf5plugin.Bitshuffle())
    with h5py.File(folder / "s010_master.h5", "w") as f:
        group = f.create_group("entry/data")
        for index in (1, 2):
            group[f"data_{index:06d}"] = h5py.ExternalLink(f"s010_data_{index:06d}.h5",
                                                           "/entry/data/data")
    E = ["-E", str(experiment.root)]
    result = nxgid([*E, "import", "film", "rt", "--config", "gid", "--beamline", "hdf5"])
    assert result.exit_code == 0, result.output
    ref = ScanRef("film", "rt", "s010")
    stack = experiment.raw_stack(ref, "f1")
    assert stack.stat().st_size < 20_000  # a link, not a copy of the 1.5 MB of frames
    with h5py.File(experiment.scan_file(ref)) as f:
        np.testing.assert_array_equal(f["f1/data/data"][()], np.concatenate(parts))
    bad = nxgid([*E, "import", "film", "rt", "--config", "gid", "--beamline", "nope"])
    assert bad.exit_code == 2 and "not installed" in bad.stderr


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory):
    """The example third-party package under examples/, installed with pip into a
    folder of its own (the project's environment is not touched)."""
    import subprocess
    import sys
    from pathlib import Path

    target = tmp_path_factory.mktemp("plugins")
    source = Path(__file__).resolve().parents[1] / "examples" / "nxgid-example-beamline"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--disable-pip-version-check", "--target", str(target),
                           str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    # and a broken plugin: its entry point names a module that does not exist
    broken = target / "broken_plugin-1.0.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\n"
                                     "Version: 1.0\n")
    (broken / "entry_points.txt").write_text("[nxgid.beamlines]\n"
                                             "broken = no_such_module:Nothing\n")
    return target


def test_a_plugin_from_another_package_is_discovered_and_imports(example_plugin, beamtime,
                                                                 monkeypatch, nxgid):
    import sys

    monkeypatch.syspath_prepend(str(example_plugin))
    from nxgid.beamlines.base import discover

    found = discover()
    assert found["example"].package == "nxgid-example-beamline"
    assert found["example"].cls is not None and found["example"].cls.name == "example"
    assert found["broken"].cls is None and "no_such_module" in found["broken"].error
    listed = nxgid(["beamlines"])
    assert listed.exit_code == 0 and "BROKEN" in listed.stdout and "example" in listed.stdout

    experiment, raw = beamtime
    scan_dir = raw / "film" / "rt" / "s101"
    _cbf_folder(scan_dir, np.ones((3, *SHAPE), np.int32))
    (scan_dir / "log.csv").write_text("frame,monitor,seconds,temperature_K,incidence_deg\n"
                                      "1,1000,1.0,300.0,0.10\n2,1100,1.0,301.0,0.15\n")
    result = nxgid(["-E", str(experiment.root), "import", "film", "rt", "--config", "gid",
                    "--beamline", "example"])
    assert result.exit_code == 0, result.output
    assert "warning: s101: 3 images, 2 log rows" in result.stdout  # both numbers named
    with h5py.File(experiment.scan_file(ScanRef("film", "rt", "s101"))) as f:
        np.testing.assert_array_equal(f["f1/monitor/data"][()], [1000, 1100])
        assert f["f1/monitor/integral"][()] == 2100
        np.testing.assert_array_equal(f["f1/sample/temperature"][()], [300.0, 301.0])
        np.testing.assert_array_equal(
            f["f1/instrument/goniometer/incidence_angle_per_frame"][()], [0.10, 0.15])
        assert f["entry/import/beamline"][()].decode() == "example"
    assert "nxgid_example_beamline" in sys.modules


SPEC_FILE = """#F film.spec
#E 1700000000
#D Mon Nov 23 10:00:00 2026
#O0 phi  chi  th  ai

#S 1  ascan  ai 0.1 0.2 2 1
#D Mon Nov 23 10:05:00 2026
#T 1  (Seconds)
#P0 10.0 0.0 5.0 0.1
#N 5
#L ai  Epoch  Seconds  diode  temp
0.10 1 1 1000 300.0
0.15 2 1 1100 300.5
0.20 3 1 1200 301.0

#S 2  loopscan 3 1
#D Mon Nov 23 10:10:00 2026
#T 1  (Seconds)
#P0 20.0 0.0 5.0 0.25
#N 4
#L Epoch  Seconds  diode  temp
1 1 900 310.0
2 1 950 310.0
3 1 990 310.0
"""


def test_import_a_spec_file_with_cbf_folders(beamtime, nxgid):
    """The spec beamline through `nxgid import`: per-frame angles (scanned, or from #P),
    monitor from the counter named in [beamline] (not one nxgid would guess), and a count
    mismatch warned about."""
    experiment, raw = beamtime
    E = ["-E", str(experiment.root)]
    assert nxgid([*E, "settings", "set", "beamline.monitor", "diode"]).exit_code == 0
    (raw / "film.spec").write_text(SPEC_FILE)
    rng = np.random.default_rng(3)
    _cbf_folder(raw / "film_001", rng.poisson(2, (3, *SHAPE)).astype(np.int32))
    _cbf_folder(raw / "film_002", rng.poisson(2, (2, *SHAPE)).astype(np.int32))  # 3 points
    result = nxgid([*E, "import", "film", "rt", "--config", "gid", "--beamline", "spec"])
    assert result.exit_code == 0, result.output
    assert "2 images, 3 SPEC points" in result.stdout
    with h5py.File(experiment.scan_file(ScanRef("film", "rt", "s001"))) as f:
        gonio = f["f1/instrument/goniometer"]
        np.testing.assert_allclose(gonio["incidence_angle_per_frame"][()], [0.1, 0.15, 0.2])
        np.testing.assert_allclose(gonio["phi_per_frame"][()], [10.0] * 3)  # from #P0
        np.testing.assert_array_equal(f["f1/monitor/data"][()], [1000, 1100, 1200])
        np.testing.assert_allclose(f["f1/sample/temperature"][()], [300.0, 300.5, 301.0])
        assert f["entry/start_time"][()].decode().startswith("2026-11-23T10:05")
        assert f["f1/data/data"].shape == (3, *SHAPE)
    with h5py.File(experiment.scan_file(ScanRef("film", "rt", "s002"))) as f:
        np.testing.assert_allclose(f["f1/instrument/goniometer/incidence_angle_per_frame"][()],
                                   [0.25, 0.25])
