"""Headless powder calibration: recovery of a known geometry, PONI files, NeXus, pictures."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from nxgid.errors import ExistsError, MissingError, NxgidError
from nxgid.experiment.calibration import (
    CalibrationResult,
    calibrate_powder,
    calibration_hash,
    export_poni,
    import_poni,
    load_calibrant,
    read_calibration,
    synthetic_calibrant_image,
    write_calibration,
)
from nxgid.experiment.calibration_pictures import write_calibration_pictures
from nxgid.geometry.detector import DetectorGeometry

PIXEL_M = 172e-6
DETECTOR = "Pilatus1M"  # 1043 × 981 pixels: LaB6 at 0.2 m and 1 Å gives 5 rings
CENTRE_PX = (530.3, 470.6)


def geometry(distance_m: float = 0.2, centre_px: tuple[float, float] = CENTRE_PX,
             rot1: float = 0.0, rot2: float = 0.0, wavelength_A: float = 1.0
             ) -> DetectorGeometry:
    return DetectorGeometry.from_parameters(detector=DETECTOR, distance_m=distance_m,
                                            wavelength_A=wavelength_A,
                                            beam_center_px=centre_px, rot1_rad=rot1,
                                            rot2_rad=rot2)


@pytest.fixture(scope="module")
def truth() -> DetectorGeometry:
    return geometry(rot1=0.01, rot2=-0.02)


@pytest.fixture(scope="module")
def image(truth: DetectorGeometry) -> np.ndarray:
    return synthetic_calibrant_image(truth, "LaB6", seed=1)


def far_guess(wavelength_A: float = 1.0) -> DetectorGeometry:
    """5 mm further, PONI 10 pixels off in both directions, no rotations."""
    return geometry(0.205, (CENTRE_PX[0] + 10, CENTRE_PX[1] - 10), wavelength_A=wavelength_A)


@pytest.fixture(scope="module")
def calibrated(image: np.ndarray) -> CalibrationResult:
    return calibrate_powder(image, far_guess(), load_calibrant("LaB6", 1.0))


def assert_recovered(found: DetectorGeometry, truth: DetectorGeometry) -> None:
    assert found.distance_m == pytest.approx(truth.distance_m, rel=1e-3)
    poni_px = (np.array(found.poni_m) - np.array(truth.poni_m)) / PIXEL_M
    assert np.all(np.abs(poni_px) < 1.0), poni_px
    rotations = np.array(found.rotations_rad) - np.array(truth.rotations_rad)
    assert np.all(np.abs(rotations) < 1e-3), rotations


def test_synthetic_image_has_rings_gaps_and_noise(image, truth):
    assert image.shape == truth.shape and image.dtype == np.int32
    assert np.all(image[truth.detector_mask] == 0)
    assert image.max() > 20 * np.median(image[~truth.detector_mask])


def test_calibration_recovers_known_geometry(calibrated, truth):
    result = calibrated
    assert_recovered(result.geometry, truth)
    assert result.geometry.wavelength_A == 1.0
    assert result.rms_2theta_deg < 0.01
    assert result.rings_used >= 3 and result.points_used >= 100
    assert result.refined == ("dist", "poni1", "poni2", "rot1", "rot2", "rot3")
    assert result.calibrant == "LaB6"
    assert result.guess.distance_m == 0.205
    assert result.control_points.shape == (result.points_used, 3)
    assert "T" in result.date and result.date[-6] in "+-"  # ISO 8601 with the zone


def test_calibration_refines_the_wavelength(image, truth):
    result = calibrate_powder(image, far_guess(wavelength_A=1.003), "LaB6",
                              refine_wavelength=True)
    assert result.geometry.wavelength_A == pytest.approx(1.0, rel=1e-3)
    assert_recovered(result.geometry, truth)
    assert "wavelength" in result.refined


def test_d_spacing_file_calibrant(tmp_path, image, truth):
    spacings = load_calibrant("LaB6", 1.0).dspacing[:8]
    path = tmp_path / "my_lab6.D"
    shuffled = [spacings[i] for i in (2, 0, 1, 5, 3, 4, 7, 6)]  # order must not matter
    path.write_text("# LaB6, our batch\n" + "".join(f"{d}\n" for d in shuffled))
    calibrant = load_calibrant(str(path), 1.0)
    assert list(calibrant.dspacing) == sorted(spacings, reverse=True)
    result = calibrate_powder(image, far_guess(), calibrant)
    assert_recovered(result.geometry, truth)
    assert result.calibrant == "my_lab6"


def test_calibrant_names_are_case_insensitive_and_checked(tmp_path):
    assert load_calibrant("lab6", 1.0).name == "LaB6"
    with pytest.raises(NxgidError, match="closest: LaB6"):
        load_calibrant("lab6x", 1.0)
    with pytest.raises(MissingError):
        load_calibrant(str(tmp_path / "missing.D"), 1.0)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_image_without_rings_is_a_one_line_error(truth):
    noise = np.random.default_rng(3).poisson(10.0, truth.shape).astype(np.int32)
    noise[truth.detector_mask] = 0
    with pytest.raises(NxgidError) as error:
        calibrate_powder(noise, far_guess(), "LaB6")
    assert "do not lie on LaB6 rings" in one_line(error)


def test_no_ring_on_the_detector(image, tmp_path):
    path = tmp_path / "far.D"
    path.write_text("0.6\n")  # 2θ = 112.9° at 1 Å
    with pytest.raises(NxgidError, match="no far ring falls on the detector") as error:
        calibrate_powder(image, far_guess(), str(path))
    one_line(error)


def test_too_few_rings(image):
    with pytest.raises(NxgidError, match=r"found \d+ on 1 ring") as error:
        calibrate_powder(image, far_guess(), "LaB6", max_rings=1)
    one_line(error)


def test_image_shape_must_match_the_detector(image):
    with pytest.raises(NxgidError, match="does not match the detector shape"):
        calibrate_powder(image[:100], far_guess(), "LaB6")


def test_mask_is_used(image, truth):
    mask = np.zeros(image.shape, dtype=bool)
    mask[:, : image.shape[1] // 2] = True
    result = calibrate_powder(image, far_guess(), "LaB6", mask=mask)
    assert np.all(result.control_points[:, 1] >= image.shape[1] // 2 - 1)
    assert_recovered(result.geometry, truth)


# --- PONI files ------------------------------------------------------------------------

def test_poni_export_import_round_trip(tmp_path, calibrated):
    path = tmp_path / "out" / "refined.poni"
    export_poni(calibrated.geometry, path, calibrant="LaB6")
    imported = import_poni(path)
    before, after = calibrated.geometry.config(), imported.geometry.config()
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, float):
            assert after[key] == pytest.approx(value, abs=1e-12), key
        else:
            assert after[key] == value, key
    assert imported.calibrant == "LaB6" and imported.rms_2theta_deg is None
    assert imported.points_used == 0 and imported.refined == ()
    assert calibration_hash(imported.geometry) == calibration_hash(calibrated.geometry)
    with pytest.raises(ExistsError):
        export_poni(calibrated.geometry, path)
    export_poni(geometry(), path, overwrite=True)
    assert import_poni(path).geometry.distance_m == 0.2
    assert [p.name for p in path.parent.iterdir()] == ["refined.poni"]


# --- NeXus -----------------------------------------------------------------------------

def test_write_and_read_calibration(tmp_path, calibrated, image):
    path = tmp_path / "scan.nxs"
    with h5py.File(path, "w") as handle:
        entry = handle.create_group("entry")
        entry.create_group("instrument")
        write_calibration(entry, calibrated, image, image_file="lab6_0001.cbf")
        write_calibration(entry, calibrated, image)  # replaces
    with h5py.File(path, "r") as handle:
        group = handle["entry/calibration"]
        assert group.attrs["NX_class"] == "NXprocess"
        refinement = group["refinement"]
        assert refinement["dist"].attrs["units"] == "m"
        assert refinement["rot1"].attrs["units"] == "rad"
        assert refinement["wavelength"][()] == pytest.approx(1e-10)
        assert refinement["residual_rms_2theta"].attrs["units"] == "degree"
        assert group["image"].compression == "gzip"
        assert group["image"].dtype == image.dtype
        record = read_calibration(handle["entry"])
        assert read_calibration(handle["entry/instrument"]) is None
    assert record.program == "pyFAI" and record.calibrant == "LaB6"
    assert record.parameters["dist"] == calibrated.geometry.distance_m
    assert record.rms_2theta_deg == pytest.approx(calibrated.rms_2theta_deg)
    assert (record.rings_used, record.points_used) == (calibrated.rings_used,
                                                       calibrated.points_used)
    assert record.refined_parameters == calibrated.refined
    assert record.detector == "Pilatus1M" and record.orientation == 3
    assert record.image_file is None
    np.testing.assert_array_equal(record.image, image)
    np.testing.assert_array_equal(record.control_points, calibrated.control_points)

    rebuilt = record.geometry()
    assert rebuilt.config() == calibrated.geometry.config()
    assert record.sha256 == calibration_hash(calibrated.geometry) == calibration_hash(rebuilt)
    assert record.matches(rebuilt)
    moved = DetectorGeometry.from_parameters(
        detector=DETECTOR, distance_m=rebuilt.distance_m + 1e-6,
        wavelength_A=rebuilt.wavelength_A, poni1_m=rebuilt.poni_m[0],
        poni2_m=rebuilt.poni_m[1], rot1_rad=rebuilt.rotations_rad[0],
        rot2_rad=rebuilt.rotations_rad[1], rot3_rad=rebuilt.rotations_rad[2])
    assert not record.matches(moved)


def test_imported_calibration_without_image(tmp_path):
    poni = tmp_path / "a.poni"
    export_poni(geometry(), poni)
    imported = import_poni(poni)
    with h5py.File(tmp_path / "a.nxs", "w") as handle:
        write_calibration(handle.create_group("entry"), imported, None)
        record = read_calibration(handle["entry"])
    assert record.image is None and record.rms_2theta_deg is None
    assert record.refined_parameters == () and record.calibrant == ""
    assert record.matches(geometry())


# --- pictures --------------------------------------------------------------------------

def test_pictures(tmp_path, calibrated, image):
    folder = tmp_path / "calibrations"  # does not exist yet
    paths = write_calibration_pictures(calibrated, image, folder, "lab6")
    assert [p.name for p in paths] == ["lab6_rings.png", "lab6_cake.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in folder.iterdir()) == ["lab6_cake.png", "lab6_rings.png"]


def test_failing_picture_leaves_nothing_behind(tmp_path, calibrated, image, monkeypatch):
    from matplotlib.figure import Figure

    def broken(self, fname, **kwargs):
        Path(fname).write_bytes(b"half a picture")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    folder = tmp_path / "calibrations"
    with pytest.raises(OSError, match="disk full"):
        write_calibration_pictures(calibrated, image, folder, "lab6")
    assert list(folder.iterdir()) == []


def test_rms_is_the_2theta_residual_of_the_control_points(calibrated):
    points = calibrated.control_points
    integrator = calibrated.geometry.pyfai
    calibrant = load_calibrant("LaB6", calibrated.geometry.wavelength_A)
    rings = np.asarray(calibrant.get_2th())[points[:, 2].astype(int)]
    residual = integrator.tth(points[:, 0], points[:, 1]) - rings
    assert calibrated.rms_2theta_deg == pytest.approx(
        math.degrees(math.sqrt(np.mean(residual**2))), rel=1e-9)


def test_a_calibration_where_nxgid_0_1_put_it_is_still_found(tmp_path):
    poni = tmp_path / "a.poni"
    export_poni(geometry(), poni)
    with h5py.File(tmp_path / "old.nxs", "w") as handle:
        entry = handle.create_group("entry")
        entry.create_group("instrument")
        write_calibration(entry, import_poni(poni), None)
        handle.move("entry/calibration", "entry/instrument/calibration")  # 0.1's place
        assert read_calibration(entry).matches(geometry())
        write_calibration(entry, import_poni(poni), None)  # rewritten where it belongs
        assert "calibration" in entry and "calibration" not in entry["instrument"]
