"""Intensity corrections: each factor against its formula computed by hand from positions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nxgid.conversion.corrections import (
    Corrections,
    air_absorption_factor,
    corrected_q_z,
    correction_factors,
    detector_cos_incidence,
    exit_angle,
    film_absorption_factor,
    lorentz_factor,
    polarization_factor_array,
    refracted_q_z,
    sensor_efficiency_factor,
    sin_exit,
    sin_incidence,
    solid_angle_factor,
)
from nxgid.errors import NxgidError
from nxgid.geometry.coordinates import PixelCoordinates, SampleGeometry, pixel_coordinates
from nxgid.geometry.detector import DetectorGeometry

PIXEL = 172e-6
SHAPE = (200, 180)
INCIDENCE_DEG = 0.3
#: A pixel well above the horizon and off the meridian, and one below the horizon.
UPPER, LOWER = (150, 40), (5, 120)


def _geometry(rot1=0.05, rot2=-0.03, rot3=0.02, centre=(30.0, 90.0), shape=SHAPE,
              distance=0.08) -> DetectorGeometry:
    return DetectorGeometry.from_parameters(
        detector=None, pixel_size_m=(PIXEL, PIXEL), shape=shape, distance_m=distance,
        energy_keV=10.0, beam_center_px=centre, rot1_rad=rot1, rot2_rad=rot2, rot3_rad=rot3)


@pytest.fixture(scope="module")
def tilted() -> DetectorGeometry:
    return _geometry()


@pytest.fixture(scope="module")
def flat() -> DetectorGeometry:
    """No tilt, PONI on the centre of pixel (100, 90)."""
    return _geometry(0.0, 0.0, 0.0, centre=(100.5, 90.5))


@pytest.fixture(scope="module")
def gi(tilted) -> PixelCoordinates:
    return pixel_coordinates(tilted, SampleGeometry.grazing(INCIDENCE_DEG))


def _unit_rays(geometry):
    x, y, z = geometry.positions_m()
    r = np.sqrt(x * x + y * y + z * z)
    return x / r, y / r, z / r, r


def _lab_sin_exit(geometry, incidence_deg):
    """sin α_f by hand for tilt 0: the surface normal leans towards the source,
    n = (0, cos α, −sin α), so the beam meets the surface at α_i from above."""
    _, uy, uz, _ = _unit_rays(geometry)
    a = math.radians(incidence_deg)
    return math.cos(a) * uy - math.sin(a) * uz


def _directions(*rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.array(rows, dtype=float)
    return d[:, 0].copy(), d[:, 1].copy(), d[:, 2].copy()


# --- solid angle and polarization --------------------------------------------------------


def test_solid_angle_is_pyfai_cos_cubed(tilted, flat):
    factor = solid_angle_factor(tilted)
    assert factor.dtype == np.float64 and factor.shape == SHAPE
    np.testing.assert_allclose(factor, tilted.pyfai.solidAngleArray(), rtol=1e-7)
    _, _, _, r = _unit_rays(tilted)
    np.testing.assert_allclose(factor, (tilted.distance_m / r) ** 3, rtol=1e-6)
    flat_factor = solid_angle_factor(flat)
    assert flat_factor[100, 90] == pytest.approx(1.0, abs=1e-7)
    assert flat_factor.max() <= 1.0 + 1e-7
    assert flat_factor[0, 0] < flat_factor[50, 90] < flat_factor[100, 90]


@pytest.mark.parametrize(("factor", "offset_deg"), [(0.99, 0.0), (0.5, 30.0), (-0.7, -12.0)])
def test_polarization_equals_pyfai(tilted, factor, offset_deg):
    array = polarization_factor_array(tilted, factor, offset_deg)
    assert array.dtype == np.float64 and array.shape == SHAPE
    expected = tilted.pyfai.polarization(factor=factor, axis_offset=math.radians(offset_deg))
    np.testing.assert_allclose(array, expected, atol=1e-6)
    # and the formula, from the positions by hand
    ux, uy, uz, _ = _unit_rays(tilted)
    cos2 = uz * uz
    chi = np.arctan2(uy, ux)
    by_hand = 0.5 * (1 + cos2 - factor * np.cos(2 * (chi + math.radians(offset_deg)))
                     * (1 - cos2))
    np.testing.assert_allclose(array, by_hand, atol=1e-6)


def test_horizontal_polarization_dims_the_horizontal_plane():
    geometry = _geometry(0.0, 0.0, 0.0, centre=(100.5, -60.5), distance=0.05)
    array = polarization_factor_array(geometry, 1.0)
    _, _, uz, _ = _unit_rays(geometry)
    # row 100 is the horizontal plane through the beam: factor cos²2θ there
    np.testing.assert_allclose(array[100], uz[100] ** 2, atol=1e-6)
    assert array[100].min() < 0.9
    # rotating the polarization plane by 90° makes it vertical: no loss in that plane
    vertical = polarization_factor_array(geometry, 1.0, 90.0)
    np.testing.assert_allclose(vertical[100], 1.0, atol=1e-6)


# --- air ---------------------------------------------------------------------------------


def test_air_absorption_by_hand_and_monotonic(tilted, flat):
    length = 1.6
    factor = air_absorption_factor(tilted, length)
    x, y, z = tilted.positions_m()
    i, j = UPPER
    path = math.sqrt(x[i, j] ** 2 + y[i, j] ** 2 + z[i, j] ** 2)
    assert factor[i, j] == pytest.approx(math.exp(-path / length), rel=1e-12)
    r = _unit_rays(tilted)[3].ravel()
    order = np.argsort(r)
    assert np.all(np.diff(factor.ravel()[order]) <= 0)
    assert np.all(factor < 1) and np.all(factor > 0)
    # a shorter attenuation length absorbs more
    assert np.all(air_absorption_factor(tilted, 0.5) < factor)
    # evacuated flight tube up to the detector distance: relative to the PONI pixel
    relative = air_absorption_factor(flat, length, flat.distance_m)
    assert relative[100, 90] == pytest.approx(1.0, abs=1e-12)
    assert np.all(relative <= 1.0)
    # a tube longer than every ray leaves no air at all
    np.testing.assert_array_equal(air_absorption_factor(flat, length, 1.0), 1.0)


# --- sensor ------------------------------------------------------------------------------


def _normal_by_hand(geometry):
    """Detector normal from three pixel centres (cross product of the two pixel axes)."""
    x, y, z = geometry.positions_m()
    p = np.array([x[0, 0], y[0, 0], z[0, 0]])
    along_rows = np.array([x[-1, 0], y[-1, 0], z[-1, 0]]) - p
    along_cols = np.array([x[0, -1], y[0, -1], z[0, -1]]) - p
    normal = np.cross(along_rows, along_cols)
    normal /= np.linalg.norm(normal)
    return normal if normal @ p > 0 else -normal


def test_detector_cos_incidence_matches_pyfai(tilted):
    cos_beta = detector_cos_incidence(tilted)
    ux, uy, uz, r = _unit_rays(tilted)
    n = _normal_by_hand(tilted)
    np.testing.assert_allclose(cos_beta, n[0] * ux + n[1] * uy + n[2] * uz, atol=1e-9)
    np.testing.assert_allclose(cos_beta, tilted.distance_m / r, atol=1e-12)
    pyfai = tilted.pyfai.cos_incidence(*np.indices(SHAPE))
    np.testing.assert_allclose(cos_beta, pyfai, atol=1e-7)
    np.testing.assert_allclose(cos_beta ** 3, tilted.solid_angle(), atol=1e-6)


def test_sensor_efficiency_by_hand(tilted, flat):
    t, length = 450e-6, 127e-6
    factor = sensor_efficiency_factor(tilted, t, length)
    i, j = UPPER
    x, y, z = tilted.positions_m()
    ray = np.array([x[i, j], y[i, j], z[i, j]])
    cos_beta = abs(_normal_by_hand(tilted) @ ray) / np.linalg.norm(ray)
    expected = (1 - math.exp(-t / (length * cos_beta))) / (1 - math.exp(-t / length))
    assert factor[i, j] == pytest.approx(expected, rel=1e-9)
    assert np.all(factor >= 1.0)
    flat_factor = sensor_efficiency_factor(flat, t, length)
    assert flat_factor[100, 90] == pytest.approx(1.0, abs=1e-12)
    assert flat_factor[0, 0] > flat_factor[50, 90] > flat_factor[100, 90]


def test_sensor_efficiency_limits(tilted):
    cos_beta = detector_cos_incidence(tilted)
    thick = sensor_efficiency_factor(tilted, 50e-3, 127e-6)
    np.testing.assert_allclose(thick, 1.0, atol=1e-12)
    thin = sensor_efficiency_factor(tilted, 1e-12, 127e-6)
    np.testing.assert_allclose(thin, 1.0 / cos_beta, rtol=1e-6)
    thicknesses = [20e-6, 100e-6, 450e-6, 1e-3]
    corner = [sensor_efficiency_factor(tilted, t, 127e-6)[-1, -1] for t in thicknesses]
    assert corner == sorted(corner, reverse=True)


@settings(max_examples=20, deadline=None)
@given(rot1=st.floats(-0.4, 0.4), rot2=st.floats(-0.4, 0.4), rot3=st.floats(-3.1, 3.1),
       row=st.floats(-50, 50), col=st.floats(-50, 50))
def test_detector_normal_property(rot1, rot2, rot3, row, col):
    geometry = _geometry(rot1, rot2, rot3, centre=(row, col), shape=(12, 10), distance=0.05)
    cos_beta = detector_cos_incidence(geometry)
    n = _normal_by_hand(geometry)
    ux, uy, uz, _ = _unit_rays(geometry)
    np.testing.assert_allclose(cos_beta, n[0] * ux + n[1] * uy + n[2] * uz, atol=1e-9)
    np.testing.assert_allclose(cos_beta ** 3, geometry.solid_angle(), rtol=1e-5)
    factor = sensor_efficiency_factor(geometry, 450e-6, 127e-6)
    assert np.all(factor >= 1.0 - 1e-12)
    assert np.all(factor <= 1.0 / cos_beta + 1e-12)


# --- sample-frame angles -----------------------------------------------------------------


def test_exit_angle_is_the_elevation_above_the_sample_plane(tilted, gi):
    np.testing.assert_allclose(sin_exit(gi), _lab_sin_exit(tilted, INCIDENCE_DEG),
                               atol=1e-12)
    # the specular ray leaves at α_f = α_i
    a = math.radians(2.0)
    rays = _directions([0, math.sin(2 * a), math.cos(2 * a)], [0, 0, 1], [0.1, 0, 1])
    coords = PixelCoordinates(*rays, 1.0, SampleGeometry.grazing(2.0))
    np.testing.assert_allclose(exit_angle(coords)[:2], [a, -a], atol=1e-12)
    assert coords.q_xy[0] == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(incidence=st.floats(0.01, 10.0), tilt=st.floats(-20.0, 20.0),
       orientation=st.integers(1, 8),
       direction=st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(0.1, 1)))
def test_sample_angles_property(incidence, tilt, orientation, direction):
    """With any incidence, tilt and orientation, the surface normal n recovered from q_z
    (q_z is linear in the ray) is a unit vector, sin α_i = −n·beam, sin α_f = n·ray, and
    the specular ray has α_f = α_i, q_xy = 0 and an undefined GI Lorentz factor."""
    sample = SampleGeometry.grazing(incidence, tilt, orientation)
    rays = _directions([1, 0, 0], [0, 1, 0], [0, 0, -1], direction)
    coords = PixelCoordinates(*rays, 1.0, sample)
    k = coords.k
    n_z = -coords.q_z[2] / (2 * k)
    n = np.array([coords.q_z[0] / k + n_z, coords.q_z[1] / k + n_z, n_z])
    assert np.linalg.norm(n) == pytest.approx(1.0, abs=1e-9)
    assert sin_incidence(sample) == pytest.approx(-n[2], abs=1e-12)
    d = np.array(direction) / np.linalg.norm(direction)
    assert sin_exit(coords)[3] == pytest.approx(n @ d, abs=1e-9)
    beam = np.array([0.0, 0.0, 1.0])
    specular = beam - 2 * (beam @ n) * n
    spec = PixelCoordinates(*_directions(specular), 1.0, sample)
    assert exit_angle(spec)[0] == pytest.approx(math.asin(sin_incidence(sample)), abs=1e-7)
    assert spec.q_xy[0] == pytest.approx(0.0, abs=1e-9)
    with np.errstate(invalid="ignore"):
        lorentz = lorentz_factor(spec, "gid")[0]
    assert math.isnan(lorentz) or lorentz > 1e6


# --- film --------------------------------------------------------------------------------


def test_film_absorption_by_hand(tilted, gi):
    t, length = 200e-9, 5e-6
    factor = film_absorption_factor(gi, t, length)
    sin_f = _lab_sin_exit(tilted, INCIDENCE_DEG)
    i, j = UPPER
    x = (t / length) * (1 / math.sin(math.radians(INCIDENCE_DEG)) + 1 / sin_f[i, j])
    assert factor[i, j] == pytest.approx((1 - math.exp(-x)) / x, rel=1e-9)
    below = sin_f <= 0
    assert below[LOWER] and below.any() and not below.all()
    assert np.all(np.isnan(factor[below]))
    above = factor[~below]
    assert np.all((above > 0) & (above < 1))
    # lower exit angle, longer path in the film, more absorption
    order = np.argsort(sin_f[~below])
    assert np.all(np.diff(above[order]) >= -1e-15)


def test_film_absorption_limits(gi):
    below = sin_exit(gi) <= 0
    np.testing.assert_array_equal(film_absorption_factor(gi, 0.0, 5e-6)[~below], 1.0)
    tiny = film_absorption_factor(gi, 1e-15, 5e-6)[~below]
    # 1 − A ≈ x/2 with x = (t/L)(1/sin α_i + 1/sin α_f): small unless α_f → 0
    steep = sin_exit(gi)[~below] > 1e-3
    np.testing.assert_allclose(tiny[steep], 1.0, atol=2e-7)
    assert np.all(tiny < 1.0) and np.all(tiny > 0.9999)
    previous = np.ones_like(tiny)
    for t in (1e-9, 1e-8, 1e-7, 1e-6):
        current = film_absorption_factor(gi, t, 5e-6)[~below]
        assert np.all(current < previous)
        previous = current


def test_film_absorption_needs_grazing_incidence():
    coords = PixelCoordinates(*_directions([0.1, 0.1, 1]), 1.0, SampleGeometry.transmission())
    with pytest.raises(NxgidError, match="grazing-incidence"):
        film_absorption_factor(coords, 1e-7, 1e-5)
    grazing_from_below = PixelCoordinates(*_directions([0.1, 0.1, 1]), 1.0,
                                          SampleGeometry.grazing(-0.2))
    with pytest.raises(NxgidError, match="positive incidence"):
        film_absorption_factor(grazing_from_below, 1e-7, 1e-5)


# --- Lorentz -----------------------------------------------------------------------------


def test_lorentz_powder_by_hand(tilted, gi):
    factor = lorentz_factor(gi, "powder")
    ux, uy, uz, _ = _unit_rays(tilted)
    theta = np.arctan2(np.hypot(ux, uy), uz) / 2
    np.testing.assert_allclose(factor, 1 / (4 * np.sin(theta) ** 2 * np.cos(theta)),
                               rtol=1e-9)
    # the classic form cos θ / sin² 2θ, and NaN where 2θ = 0
    coords = PixelCoordinates(*_directions([0, 0, 1], [0.3, 0.2, 1]), 1.0,
                              SampleGeometry.transmission())
    values = lorentz_factor(coords, "powder")
    assert math.isnan(values[0])
    two_theta = math.atan2(math.hypot(0.3, 0.2), 1)
    assert values[1] == pytest.approx(math.cos(two_theta / 2) / math.sin(two_theta) ** 2)


def test_lorentz_gid_by_hand(tilted, gi):
    factor = lorentz_factor(gi, "gid")
    ux, uy, uz, _ = _unit_rays(tilted)
    a = math.radians(INCIDENCE_DEG)
    # tilt 0: k̂_i∥ = cos α_i·b̂ with b̂ = (0, sin α, cos α), and the in-plane axis
    # orthogonal to it is x̂, so |k̂_i∥ × k̂_f∥| = cos α_i·|x/r|
    np.testing.assert_allclose(factor, 1 / (math.cos(a) * np.abs(ux)), rtol=1e-6)
    assert np.all(factor >= 1.0)
    # pygid's 1/|sin γ| (γ the in-plane angle of k_f) times 1/(cos α_i cos α_f)
    sin_f = _lab_sin_exit(tilted, INCIDENCE_DEG)
    cos_f = np.sqrt(1 - sin_f ** 2)
    in_beam = uy * math.sin(a) + uz * math.cos(a)
    sin_gamma = np.abs(ux) / np.hypot(ux, in_beam)
    np.testing.assert_allclose(factor, 1 / (math.cos(a) * cos_f * sin_gamma), rtol=1e-6)
    # undefined on the meridian (x = 0)
    coords = PixelCoordinates(*_directions([0, 0.2, 1], [0.2, 0.2, 1]), 1.0,
                              SampleGeometry.grazing(INCIDENCE_DEG))
    values = lorentz_factor(coords, "gid")
    assert math.isnan(values[0]) or values[0] > 1e6
    assert np.isfinite(values[1])


def test_lorentz_off_and_gid_needs_grazing_incidence():
    transmission = PixelCoordinates(*_directions([0.1, 0.1, 1]), 1.0,
                                    SampleGeometry.transmission())
    np.testing.assert_array_equal(lorentz_factor(transmission, None), 1.0)
    with pytest.raises(NxgidError, match="grazing-incidence"):
        lorentz_factor(transmission, "gid")
    with pytest.raises(NxgidError, match="lorentz"):
        lorentz_factor(transmission, "fibre")


# --- refraction --------------------------------------------------------------------------


def test_refraction_tends_to_q_z_and_masks_below_critical_angle(tilted, gi):
    above = sin_exit(gi) >= 0
    np.testing.assert_allclose(refracted_q_z(gi, 0.0)[above], gi.q_z[above], atol=1e-12)
    np.testing.assert_allclose(refracted_q_z(gi, 1e-7)[above], gi.q_z[above], atol=1e-6)
    critical = 0.15
    q_z = refracted_q_z(gi, critical)
    sin_f = _lab_sin_exit(tilted, INCIDENCE_DEG)
    below_critical = sin_f < math.sin(math.radians(critical))
    assert below_critical.any() and not below_critical.all()
    assert np.all(np.isnan(q_z[below_critical]))
    assert np.all(np.isfinite(q_z[~below_critical]))
    assert np.all(q_z[~below_critical] < gi.q_z[~below_critical])
    i, j = UPPER
    s_c, s_i = math.sin(math.radians(critical)), math.sin(math.radians(INCIDENCE_DEG))
    expected = gi.k * (math.sqrt(sin_f[i, j] ** 2 - s_c ** 2) + math.sqrt(s_i ** 2 - s_c ** 2))
    assert q_z[i, j] == pytest.approx(expected, rel=1e-9)


def test_refraction_below_the_critical_angle_of_incidence(tilted, gi):
    """α_i < α_c: the incident wave is evanescent and adds no real q_z."""
    q_z = refracted_q_z(gi, 0.5)
    sin_f = _lab_sin_exit(tilted, INCIDENCE_DEG)
    i, j = UPPER
    s_c = math.sin(math.radians(0.5))
    assert q_z[i, j] == pytest.approx(gi.k * math.sqrt(sin_f[i, j] ** 2 - s_c ** 2), rel=1e-9)


def test_corrected_q_z(gi):
    np.testing.assert_array_equal(corrected_q_z(Corrections(), gi), gi.q_z)
    with_refraction = Corrections(refraction=True, critical_angle_deg=0.1)
    np.testing.assert_array_equal(corrected_q_z(with_refraction, gi), refracted_q_z(gi, 0.1))
    transmission = PixelCoordinates(*_directions([0.1, 0.1, 1]), 1.0,
                                    SampleGeometry.transmission())
    with pytest.raises(NxgidError, match="refraction"):
        corrected_q_z(with_refraction, transmission)


# --- all together ------------------------------------------------------------------------

ALL_ON = dict(air_absorption=True, air_attenuation_length_m=1.6, air_path_offset_m=0.02,
              sensor_efficiency=True, sensor_attenuation_length_m=127e-6,
              film_absorption=True, film_thickness_m=100e-9, film_attenuation_length_m=8e-6,
              lorentz="gid", refraction=True, critical_angle_deg=0.12,
              polarization_factor=0.95, polarization_offset_deg=5.0)


def test_product_of_the_factors(tilted, gi):
    norm = correction_factors(Corrections(**ALL_ON), tilted, gi)
    assert norm.dtype == np.float64 and norm.shape == SHAPE
    product = (solid_angle_factor(tilted) * polarization_factor_array(tilted, 0.95, 5.0)
               * air_absorption_factor(tilted, 1.6, 0.02)
               * sensor_efficiency_factor(tilted, 450e-6, 127e-6)
               * film_absorption_factor(gi, 100e-9, 8e-6) * lorentz_factor(gi, "gid"))
    np.testing.assert_allclose(norm, product, rtol=1e-12)
    assert np.array_equal(np.isnan(norm), np.isnan(product))


def test_defaults_and_none(tilted, gi):
    np.testing.assert_array_equal(correction_factors(Corrections.none(), tilted, gi), 1.0)
    default = Corrections()
    assert default.solid_angle and default.polarization_factor == 0.99
    assert not (default.air_absorption or default.sensor_efficiency
                or default.film_absorption or default.refraction)
    assert default.lorentz is None
    np.testing.assert_allclose(correction_factors(default, tilted, gi),
                               solid_angle_factor(tilted)
                               * polarization_factor_array(tilted, 0.99), rtol=1e-12)


def test_correction_factors_checks_sample_and_shape(tilted, gi):
    transmission = pixel_coordinates(tilted, SampleGeometry.transmission())
    with pytest.raises(NxgidError, match="film_absorption"):
        correction_factors(Corrections(**ALL_ON), tilted, transmission)
    powder = Corrections(lorentz="powder")
    assert np.isfinite(correction_factors(powder, tilted, transmission)).all()
    small = _geometry(shape=(20, 18))
    with pytest.raises(ValueError, match="shape"):
        correction_factors(Corrections(), small, gi)


# --- record and key ----------------------------------------------------------------------


def test_describe_is_json_and_key_is_stable():
    first, second = Corrections(**ALL_ON), Corrections(**ALL_ON)
    record = first.describe()
    assert json.loads(json.dumps(record)) == record
    assert record == second.describe()
    assert first.key() == second.key()
    assert len(first.key()) == 16 and int(first.key(), 16) >= 0
    assert record["film_absorption"] == {
        "applied": True, "thickness_m": 100e-9, "attenuation_length_m": 8e-6,
        "reference": "transparent film", "formula": record["film_absorption"]["formula"]}
    assert record["lorentz"]["mode"] == "gid"
    assert record["polarization"]["factor"] == 0.95
    assert Corrections.none().describe()["solid_angle"] == {"applied": False}


@pytest.mark.parametrize("change", [
    {"polarization_factor": 0.9}, {"polarization_offset_deg": 1.0},
    {"air_attenuation_length_m": 1.5}, {"air_path_offset_m": 0.0},
    {"sensor_thickness_m": 320e-6}, {"sensor_attenuation_length_m": 100e-6},
    {"film_thickness_m": 50e-9}, {"film_attenuation_length_m": 9e-6},
    {"lorentz": "powder"}, {"critical_angle_deg": 0.13}, {"solid_angle": False},
    {"refraction": False},
])
def test_key_changes_with_an_applied_parameter(change):
    assert Corrections(**{**ALL_ON, **change}).key() != Corrections(**ALL_ON).key()


def test_key_ignores_parameters_of_corrections_that_are_off():
    off = Corrections(air_attenuation_length_m=1.6)
    assert off.key() == Corrections(air_attenuation_length_m=0.8).key()
    assert off.key() == Corrections().key()


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("polarization_factor", 1.5), ("polarization_factor", -1.01),
    ("polarization_factor", float("nan")), ("polarization_offset_deg", float("inf")),
    ("air_attenuation_length_m", -1.0), ("air_attenuation_length_m", 0.0),
    ("air_path_offset_m", -0.1), ("sensor_thickness_m", -450e-6),
    ("sensor_thickness_m", 0.0), ("sensor_attenuation_length_m", -1e-4),
    ("film_thickness_m", -1e-9), ("film_attenuation_length_m", 0.0),
    ("lorentz", "fibre"), ("critical_angle_deg", -0.1), ("critical_angle_deg", 90.0),
    ("solid_angle", "yes"), ("film_thickness_m", "thin"),
])
def test_bad_parameters_raise_one_line(field, value):
    with pytest.raises(NxgidError) as info:
        Corrections(**{field: value})
    message = str(info.value)
    assert "\n" not in message
    assert field in message and repr(value) in message and "expected" in message


@pytest.mark.parametrize(("switch", "missing"), [
    ("air_absorption", "air_attenuation_length_m"),
    ("sensor_efficiency", "sensor_attenuation_length_m"),
    ("film_absorption", "film_thickness_m"),
    ("refraction", "critical_angle_deg"),
])
def test_enabled_correction_needs_its_parameters(switch, missing):
    with pytest.raises(NxgidError, match=missing) as info:
        Corrections(**{switch: True})
    assert "\n" not in str(info.value)


def test_functions_validate_their_parameters(tilted, gi):
    with pytest.raises(NxgidError, match="polarization_factor"):
        polarization_factor_array(tilted, 2.0)
    with pytest.raises(NxgidError, match="air_attenuation_length_m"):
        air_absorption_factor(tilted, -1.0)
    with pytest.raises(NxgidError, match="sensor_thickness_m"):
        sensor_efficiency_factor(tilted, -1.0, 1e-4)
    with pytest.raises(NxgidError, match="film_attenuation_length_m"):
        film_absorption_factor(gi, 1e-7, 0.0)
    with pytest.raises(NxgidError, match="critical_angle_deg"):
        refracted_q_z(gi, -1.0)
