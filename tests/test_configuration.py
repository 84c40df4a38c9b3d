"""Configurations, scans made from them, stale calibrations, summed scans."""

from __future__ import annotations

import shutil

import h5py
import hdf5plugin
import numpy as np
import pytest

from nxgid.errors import ExistsError, MissingError, NxgidError
from nxgid.experiment.configuration import (
    configuration_geometry,
    read_configuration,
    set_geometry,
    spec_from_settings,
    write_configuration,
)
from nxgid.experiment.layout import Experiment, ScanRef
from nxgid.experiment.scans import link_raw, new_scan, refresh_scan, scan_info, sum_scans
from nxgid.settings.store import load_effective

DETECTOR = "Pilatus100k"  # 195 × 487: small and quick


@pytest.fixture
def configured(sqlite_experiment, site_file):
    experiment = sqlite_experiment
    settings = load_effective(site_file).settings
    spec = spec_from_settings("gid", settings, values={"detector": DETECTOR,
                                                       "distance_mm": 150.0},
                              per_position={"incidence_angle_deg": [0.1, 0.2]})
    write_configuration(experiment.configuration_file("gid"), spec)
    (experiment.root / "film" / "as-grown").mkdir(parents=True)
    return experiment


def _stack(experiment, ref, entry, frames):
    path = experiment.raw_stack(ref, entry)
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", data=frames, **hdf5plugin.Bitshuffle())
    return path


def test_configuration_values_defaults_and_positions(sqlite_experiment, site_file):
    settings = load_effective(site_file).settings
    spec = spec_from_settings("gid", settings, values={"detector": DETECTOR},
                              positions=3, per_position={"incidence_angle_deg": {2: 0.3},
                                                         "chi_deg": [5.0]})
    assert [p.incidence_angle_deg for p in spec.positions] == [
        settings.configuration.incidence_angle_deg, 0.3,
        settings.configuration.incidence_angle_deg]
    assert [p.chi_deg for p in spec.positions] == [5.0] * 3
    assert spec.distance_mm == settings.configuration.distance_mm
    path = write_configuration(sqlite_experiment.configuration_file("gid"), spec)
    info = read_configuration(path)
    assert [name for name, _ in info["positions"]] == ["f1", "f2", "f3"]
    assert info["positions"][1][1]["angle_of_incidence"] == 0.3
    assert info["positions"][0][1]["chi"] == 5.0
    with h5py.File(path) as f:
        mask = f["entry/instrument/detector/pixel_mask"][()]
        assert mask.shape == (195, 487) and mask.dtype == np.int32
        assert set(np.unique(mask)) <= {0, 1}  # only gaps (bit 0), if the detector has any
        # a template: an empty placeholder for the frames, no dangling link
        placeholder = f["f2/instrument/detector/data"]
        assert placeholder.shape == (0, 195, 487)
        assert isinstance(f["f2/data"].get("data", getlink=True), h5py.HardLink)
        assert f["f2/data/data"].id == placeholder.id
        assert "pixel_mask" not in f["f2/instrument/detector"]  # in /entry only
    with pytest.raises(ExistsError, match="--overwrite"):
        write_configuration(path, spec)


@pytest.mark.parametrize(("values", "per_position", "message"), [
    ({"detector": "Pilatus3000k"}, {}, "closest: "),
    ({"distance_mm": -5}, {}, "distance_mm: Input should be greater than 0"),
    ({"wavelength_A": 50}, {}, "wavelength_A"),
    ({}, {"phi_step_deg": [0.0]}, "position 1 (f1): phi step 0"),
    ({}, {"incidence_angle_deg": {4: 0.1}}, "position 4 does not exist"),
    ({}, {"chi_deg": [1.0, 2.0, 3.0], "theta_deg": [1.0, 2.0]}, "2 values for 3 positions"),
])
def test_bad_configurations_are_refused_with_the_reason(site_file, values, per_position,
                                                        message):
    settings = load_effective(site_file).settings
    with pytest.raises(NxgidError) as caught:
        spec_from_settings("gid", settings, values=values, per_position=per_position)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_scan_links_are_relative_and_resolve_once_data_appear(configured, tmp_path):
    experiment = configured
    ref = ScanRef("film", "as-grown", "s001")
    path = new_scan(experiment, ref, "gid", variables={"temperature": (300.0, "K")})
    info = scan_info(experiment, ref)
    assert [e.state for e in info.entries] == ["missing", "missing"]
    assert [e.link for e in info.entries] == ["s001/f1.h5", "s001/f2.h5"]
    assert info.variables == {"temperature": "300 K"} and info.stale is False
    with h5py.File(path) as f:  # placeholders until the data exist: nothing dangles
        assert f["f1/data/data"].shape == (0, 195, 487)
    frames = np.random.default_rng(0).poisson(3, (4, 195, 487)).astype(np.uint32)
    _stack(experiment, ref, "f1", frames)
    assert link_raw(experiment, ref) == ["f1"]
    with h5py.File(path) as f:
        for group in ("data", "instrument/detector"):
            link = f[f"f1/{group}"].get("data", getlink=True)
            assert link.filename == "s001/f1.h5"  # relative, never absolute
        assert f["f2/data/data"].shape == (0, 195, 487)
    info = scan_info(experiment, ref)
    assert [(e.state, e.frames) for e in info.entries] == [("present", 4), ("missing", 0)]
    # the whole experiment moves: the links still work
    moved = tmp_path / "elsewhere" / "exp"
    shutil.move(str(experiment.root), moved)
    moved_experiment = Experiment.open(moved)
    with h5py.File(moved_experiment.scan_file(ref)) as f:
        np.testing.assert_array_equal(f["f1/data/data"][2], frames[2])
    # a stack of the wrong shape is reported
    _stack(moved_experiment, ref, "f2", np.zeros((2, 10, 10), np.uint32))
    assert scan_info(moved_experiment, ref).entries[1].state.startswith("wrong shape")


def test_scan_entries_validate_as_nxsas(configured):
    from nxgid.nexus.validate import validate_with_pynxtools

    experiment = configured
    ref = ScanRef("film", "as-grown", "s001")
    path = new_scan(experiment, ref, "gid", variables={"temperature": (300.0, "K")})
    # before the raw data exist, and after
    assert validate_with_pynxtools(path, definition="NXsas", entries=["f1", "f2"]) == []
    _stack(experiment, ref, "f1", np.ones((2, 195, 487), np.uint32))
    _stack(experiment, ref, "f2", np.ones((2, 195, 487), np.uint32))
    link_raw(experiment, ref)
    assert validate_with_pynxtools(path, definition="NXsas", entries=["f1", "f2"]) == []


def test_recalibration_makes_scans_stale_until_refreshed(configured):
    from nxgid.geometry import DetectorGeometry

    experiment = configured
    ref = ScanRef("film", "as-grown", "s001")
    new_scan(experiment, ref, "gid")
    config = experiment.configuration_file("gid")
    old = configuration_geometry(config)
    calibrated = DetectorGeometry.from_parameters(
        detector=DETECTOR, distance_m=0.1523, wavelength_A=old.wavelength_A,
        poni1_m=0.0101, poni2_m=0.0402, rot1_rad=0.003)
    set_geometry(config, calibrated)
    assert scan_info(experiment, ref).stale is True
    assert refresh_scan(experiment, ref) is True
    assert scan_info(experiment, ref).stale is False
    assert refresh_scan(experiment, ref) is False
    with h5py.File(experiment.scan_file(ref)) as f:
        assert f["f2/instrument/detector/distance"][()] == pytest.approx(0.1523)
        assert "refreshed" in f["entry"]
        assert f["f2/data/data"].shape == (0, 195, 487)  # still a placeholder


def test_new_scan_refusals_leave_everything_as_it_was(configured):
    experiment = configured
    ref = ScanRef("film", "as-grown", "s001")
    path = new_scan(experiment, ref, "gid")
    before = path.read_bytes()
    with pytest.raises(ExistsError):
        new_scan(experiment, ref, "gid")
    with pytest.raises(MissingError, match="configuration nope does not exist"):
        new_scan(experiment, ScanRef("film", "as-grown", "s002"), "nope")
    with pytest.raises(MissingError, match="nxgid sample new film annealed"):
        new_scan(experiment, ScanRef("film", "annealed", "s002"), "gid")
    assert path.read_bytes() == before
    assert not experiment.scan_file(ScanRef("film", "as-grown", "s002")).exists()


def test_sum_is_the_element_wise_sum_and_refuses_mismatches(configured):
    experiment = configured
    rng = np.random.default_rng(1)
    stacks = {}
    for scan in ("s001", "s002", "s003"):
        ref = ScanRef("film", "as-grown", scan)
        new_scan(experiment, ref, "gid")
        for entry in ("f1", "f2"):
            frames = rng.poisson(4e9 if scan == "s001" else 5, (3, 195, 487)).astype(np.uint32)
            stacks[scan, entry] = frames
            _stack(experiment, ref, entry, frames)
    path = sum_scans(experiment, "film", "as-grown", ["s001", "s002", "s003"], "total")
    total = ScanRef("film", "as-grown", "total")
    assert scan_info(experiment, total).summed_from == [
        "film/as-grown/s001", "film/as-grown/s002", "film/as-grown/s003"]
    with h5py.File(path) as f:
        for entry in ("f1", "f2"):
            summed = f[f"{entry}/data/data"][()]
            expected = sum(stacks[s, entry].astype(np.uint64) for s in ("s001", "s002",
                                                                        "s003"))
            np.testing.assert_array_equal(summed, expected)  # no uint32 overflow
    # mismatches are named, and nothing is written
    odd = ScanRef("film", "as-grown", "s004")
    new_scan(experiment, odd, "gid")
    _stack(experiment, odd, "f1", np.zeros((5, 195, 487), np.uint32))
    _stack(experiment, odd, "f2", np.zeros((3, 195, 487), np.uint32))
    with pytest.raises(NxgidError, match="s004 f1 has 5 frames"):
        sum_scans(experiment, "film", "as-grown", ["s001", "s004"], "bad")
    assert not experiment.scan_file(ScanRef("film", "as-grown", "bad")).exists()
    with pytest.raises(ExistsError):
        sum_scans(experiment, "film", "as-grown", ["s001", "s002"], "total")
