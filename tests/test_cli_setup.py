"""The set-up commands end to end: config, calibrate, mask, scan, stack, sum."""

from __future__ import annotations

import fabio
import h5py
import numpy as np
import pytest

from nxgid.experiment.calibration import synthetic_calibrant_image
from nxgid.geometry import DetectorGeometry

DETECTOR = "Pilatus300k"  # 619 × 487, with gaps


@pytest.fixture
def exp_root(sqlite_experiment):
    (sqlite_experiment.root / "film" / "as-grown").mkdir(parents=True)
    return sqlite_experiment.root


def test_configuration_calibration_mask_scans_stack_and_sum(exp_root, tmp_path, nxgid):
    truth = DetectorGeometry.from_parameters(
        detector=DETECTOR, distance_m=0.096, wavelength_A=1.0, beam_center_px=(300.0, 250.0),
        rot1_rad=0.005, rot2_rad=-0.01)
    lab6 = tmp_path / "lab6.edf"
    fabio.edfimage.EdfImage(data=synthetic_calibrant_image(truth, "LaB6")).write(str(lab6))
    E = ["-E", str(exp_root)]

    result = nxgid([*E, "config", "new", "gid", "--detector", DETECTOR, "--distance", "101",
                    "--beam-center", "260,290", "--positions", "2", "--incidence", "2=0.3"])
    assert result.exit_code == 0, result.output
    shown = nxgid([*E, "config", "show", "gid"])
    assert "f2   angle_of_incidence 0.3" in shown.stdout and "calibrated     no" in shown.stdout
    # --beam-center X,Y: x = column, y = row, and shown back the same way
    assert "beam centre    x 260.0, y 290.0 pixels (column, row)" in shown.stdout

    # scans first: recalibrating the configuration makes them stale
    assert nxgid([*E, "scan", "new", "film", "as-grown", "s001", "--config", "gid",
                  "--var", "temperature=300K"]).exit_code == 0
    calibrated = nxgid([*E, "calibrate", "gid", "--image", str(lab6), "--calibrant", "LaB6",
                        "--export-poni", str(tmp_path / "gid.poni")])
    assert calibrated.exit_code == 0, calibrated.output
    assert "RMS residual" in calibrated.stdout
    found = DetectorGeometry.from_poni(tmp_path / "gid.poni")
    assert found.distance_m == pytest.approx(0.096, rel=1e-3)  # from 5 mm off
    for got, want in zip(found.poni_m, truth.poni_m, strict=True):
        assert abs(got - want) < 172e-6  # within a pixel, from 10 pixels off
    again = nxgid([*E, "calibrate", "gid", "--image", str(lab6), "--calibrant", "LaB6"])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    info = nxgid([*E, "scan", "info", "film/as-grown/s001"])
    assert "STALE" in info.stdout and "temperature = 300 K" in info.stdout
    assert nxgid([*E, "scan", "refresh", "film/as-grown/s001"]).exit_code == 0
    assert "up to date" in nxgid([*E, "scan", "info", "film/as-grown/s001"]).stdout

    masked = nxgid([*E, "mask", "gid", "--rect", "240,290,20,20", "--circle", "250,300,8"])
    assert masked.exit_code == 0, masked.output
    with h5py.File(exp_root / "configurations" / "gid.nxs") as f:
        bits = f["entry/instrument/detector/pixel_mask"][()]
    assert np.all(bits[290:310, 240:260] & 256) and not np.any(bits[:, :200] & 256)
    assert np.count_nonzero(bits & 1) > 0  # the gaps stay in bit 0
    bad = nxgid([*E, "mask", "gid", "--rect", "1,2,3"])
    assert bad.exit_code == 2 and "--rect '1,2,3'" in bad.stderr

    # raw series → stacks → a summed scan
    rng = np.random.default_rng(0)
    series = {}
    for scan in ("s001", "s002"):
        if scan == "s002":
            assert nxgid([*E, "scan", "new", "film", "as-grown", "s002", "--config",
                          "gid"]).exit_code == 0
        for entry in ("f1", "f2"):
            frames = rng.poisson(5, (3, 619, 487)).astype(np.int32)
            series[scan, entry] = frames
            for index, frame in enumerate(frames):
                fabio.cbfimage.CbfImage(data=frame).write(
                    str(tmp_path / f"{scan}_{entry}_{index:03d}.cbf"))
            stacked = nxgid([*E, "stack", str(tmp_path / f"{scan}_{entry}_*.cbf"),
                             "--scan", f"film/as-grown/{scan}", "--entry", entry])
            assert stacked.exit_code == 0, stacked.output
    assert "2/2 entries with data" in nxgid([*E, "scan", "list"]).stdout
    summed = nxgid([*E, "sum", "film", "as-grown", "s001", "s002", "--into", "both"])
    assert summed.exit_code == 0, summed.output
    with h5py.File(exp_root / "film" / "as-grown" / "film_both.nxs") as f:
        np.testing.assert_array_equal(
            f["f2/data/data"][()], series["s001", "f2"].astype(np.int64) + series["s002", "f2"])
    refused = nxgid([*E, "sum", "film", "as-grown", "s001", "s002", "--into", "both"])
    assert refused.exit_code == 2 and "exists" in refused.stderr
    status = nxgid([*E, "status"])
    assert "film/as-grown/both" in status.stdout


def test_setup_commands_refuse_bad_input(exp_root, nxgid):
    E = ["-E", str(exp_root)]
    bad = nxgid([*E, "config", "new", "gid", "--detector", "Pilatus3000k"])
    assert bad.exit_code == 2 and "closest" in bad.stderr
    bad = nxgid([*E, "config", "new", "gid", "--phi-step", "0"])
    assert bad.exit_code == 2 and "phi step 0" in bad.stderr
    bad = nxgid([*E, "config", "new", "gid", "--distance", "-1"])
    assert bad.exit_code == 2 and "distance" in bad.stderr
    assert not (exp_root / "configurations" / "gid.nxs").exists()
    bad = nxgid([*E, "scan", "new", "film", "as-grown", "s001", "--config", "nope"])
    assert bad.exit_code == 2 and "configuration nope does not exist" in bad.stderr
    bad = nxgid([*E, "stack", "nothing_*.cbf", "--scan", "film/as-grown/s009"])
    assert bad.exit_code == 2 and "does not exist" in bad.stderr
    bad = nxgid([*E, "calibrate", "nope", "--image", "x.cbf", "--calibrant", "LaB6"])
    assert bad.exit_code == 2 and "configuration nope does not exist" in bad.stderr
    assert "Traceback" not in bad.output


def test_a_failed_calibration_shows_what_it_found_and_what_to_check(exp_root, tmp_path,
                                                                     nxgid):
    """A start 30 % too short: one error line naming the picture of the image, the rings
    the start predicts and the points found, and the start values to check."""
    truth = DetectorGeometry.from_parameters(
        detector=DETECTOR, distance_m=0.096, wavelength_A=1.0, beam_center_px=(300.0, 250.0))
    lab6 = tmp_path / "lab6.edf"
    fabio.edfimage.EdfImage(data=synthetic_calibrant_image(truth, "LaB6")).write(str(lab6))
    E = ["-E", str(exp_root)]
    assert nxgid([*E, "config", "new", "gid", "--detector", DETECTOR, "--distance", "67",
                  "--beam-center", "250,300"]).exit_code == 0
    before = (exp_root / "configurations" / "gid.nxs").read_bytes()
    failed = nxgid([*E, "calibrate", "gid", "--image", str(lab6), "--calibrant", "LaB6"])
    assert failed.exit_code == 2 and failed.stdout == ""
    (line,) = failed.stderr.splitlines()
    picture = exp_root / "calibrations" / "gid_failed.png"
    assert line.startswith("error: calibration") and str(picture) in line
    for hint in ("the wavelength (1.0000 Å", "the start distance (67.0 mm",
                 "the beam centre (x 250, y 300 pixels"):
        assert hint in line, hint
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (exp_root / "configurations" / "gid.nxs").read_bytes() == before  # untouched
