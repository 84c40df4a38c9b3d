"""The conversion engine against pyFAI, physics and its own contracts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from nxgid.conversion import Converter, TargetSpec, combine_masks
from nxgid.errors import NxgidError
from nxgid.geometry import DetectorGeometry, SampleGeometry, pixel_coordinates

WAVELENGTH_A = 1.0


def pilatus300k(**kw) -> DetectorGeometry:
    """A real pyFAI detector (with module gaps), tilted, beam low on the detector."""
    params = dict(detector="Pilatus300k", distance_m=0.2, wavelength_A=WAVELENGTH_A,
                  poni1_m=0.095, poni2_m=0.04, rot1_rad=0.01, rot2_rad=0.02, rot3_rad=0.003)
    params.update(kw)
    return DetectorGeometry.from_parameters(**params)


def small(rows: int = 120, cols: int = 100, **kw) -> DetectorGeometry:
    params = dict(detector=None, distance_m=0.15, wavelength_A=WAVELENGTH_A,
                  pixel_size_m=(172e-6, 172e-6), shape=(rows, cols),
                  beam_center_px=(rows - 10.0, cols / 2.0))
    params.update(kw)
    return DetectorGeometry.from_parameters(**params)


def azimuthal_integrator(geometry: DetectorGeometry):
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    cfg = geometry.pyfai
    return AzimuthalIntegrator(dist=cfg.dist, poni1=cfg.poni1, poni2=cfg.poni2, rot1=cfg.rot1,
                               rot2=cfg.rot2, rot3=cfg.rot3, detector=geometry.detector,
                               wavelength=cfg.wavelength)


def fiber_integrator(geometry: DetectorGeometry):
    from pyFAI.integrator.fiber import FiberIntegrator

    cfg = geometry.pyfai
    return FiberIntegrator(dist=cfg.dist, poni1=cfg.poni1, poni2=cfg.poni2, rot1=cfg.rot1,
                           rot2=cfg.rot2, rot3=cfg.rot3, detector=geometry.detector,
                           wavelength=cfg.wavelength)


# --- per-pixel coordinates ------------------------------------------------------------------

def test_q_and_chi_agree_with_azimuthal_integrator():
    geometry = pilatus300k()
    coords = pixel_coordinates(geometry, SampleGeometry.transmission())
    q_ref = geometry.pyfai.array_from_unit(unit="q_A^-1")
    chi_ref = geometry.pyfai.center_array(unit="chi_rad")
    # pyFAI computes its own arrays through float32 Cython positions (≈1e-8 m), so near
    # the beam centre, where q → 0 and χ is undefined, relative agreement is meaningless:
    # compare relatively away from it, and against the range everywhere.
    away = q_ref > 0.1 * q_ref.max()
    assert np.max(np.abs(coords.q - q_ref)[away] / q_ref[away]) < 1e-6
    assert np.max(np.abs(coords.q - q_ref)) < 1e-6 * q_ref.max()
    dchi = np.angle(np.exp(1j * (coords.chi - chi_ref)))
    assert np.max(np.abs(dchi[away])) < 1e-6


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(incidence=st.floats(0.0, 3.0), tilt=st.floats(-3.0, 3.0),
       orientation=st.integers(1, 8), rot1=st.floats(-0.1, 0.1), rot2=st.floats(-0.1, 0.1),
       rot3=st.floats(-0.1, 0.1), distance=st.floats(0.05, 1.0))
def test_gi_coordinates_agree_with_fiber_integrator(incidence, tilt, orientation, rot1, rot2,
                                                    rot3, distance):
    from pyFAI.units import get_unit_fiber

    geometry = small(64, 48, rot1_rad=rot1, rot2_rad=rot2, rot3_rad=rot3,
                     distance_m=distance)
    sample = SampleGeometry.grazing(incidence, tilt, orientation)
    coords = pixel_coordinates(geometry, sample)
    fi = fiber_integrator(geometry)
    kw = dict(incident_angle=math.radians(incidence), tilt_angle=math.radians(tilt),
              sample_orientation=orientation)
    ours = {"qip_A^-1": coords.q_xy, "qoop_A^-1": coords.q_z}
    for unit, values in ours.items():
        ref = fi.array_from_unit(unit=get_unit_fiber(unit, **kw))
        scale = np.max(np.abs(ref))
        assert np.max(np.abs(values - ref)) <= 1e-6 * scale, unit
    # |q| is the same in every frame; χ = atan2(q_z, q_xy)
    np.testing.assert_allclose(np.hypot(coords.q_xy, coords.q_z), coords.q, rtol=1e-9,
                               atol=1e-12)
    # exit angles are those of the same ray: q_z = k (sin α_f + sin α_i), and the in-plane
    # part of the exit ray gives q_xy: k² (cos²α_f + cos²α_i' − 2 cos α_f cos α_i' cos φ_f)
    k = coords.k
    sin_i = math.cos(math.radians(tilt)) * math.sin(math.radians(incidence))
    np.testing.assert_allclose(coords.q_z, k * (np.sin(coords.alpha_f) + sin_i), atol=1e-9)
    cos_f = np.cos(coords.alpha_f)
    beam_in_plane = math.cos(math.radians(incidence))  # in-plane length of the beam
    horizontal_beam = -math.sin(math.radians(tilt)) * math.sin(math.radians(incidence))
    q_beam = k * (cos_f * np.cos(coords.phi_f) - beam_in_plane)
    q_horizontal = k * (cos_f * np.sin(coords.phi_f) - horizontal_beam)
    np.testing.assert_allclose(np.abs(coords.q_xy), np.hypot(q_beam, q_horizontal),
                               atol=1e-9)


def test_exit_angles_of_direct_and_specular_rays():
    """The direct beam leaves at −α_i, the specular ray at +α_i (q_xy = 0)."""
    alpha = 0.8
    geometry = small(200, 200, distance_m=0.1, beam_center_px=(100.0, 100.0))
    coords = pixel_coordinates(geometry, SampleGeometry.grazing(alpha))
    x, y, z = geometry.positions_m()
    centre = np.unravel_index(np.argmin(x ** 2 + y ** 2), x.shape)  # on the beam
    elevation = np.degrees(np.arctan2(y, np.hypot(x, z)))
    specular = np.unravel_index(np.argmin(np.abs(elevation - 2 * alpha) + np.abs(x) * 1e3),
                                x.shape)
    step = np.degrees(172e-6 / 0.1)  # one pixel, in degrees
    assert np.degrees(coords.alpha_f[centre]) == pytest.approx(-alpha, abs=step)
    assert np.degrees(coords.alpha_f[specular]) == pytest.approx(alpha, abs=step)
    assert abs(coords.q_xy[specular]) < coords.k * math.radians(step)


# --- binning against pyFAI --------------------------------------------------------------------

def _compare(ours: np.ndarray, ours_count: np.ndarray, ref, minimum_fraction=0.999):
    """At least *minimum_fraction* of the bins equal pyFAI's to 1e-4, and every other bin
    holds a different number of pixels: a pixel centre on a bin edge, which pyFAI's
    float32 positions put on the other side (never a different average of the same
    pixels)."""
    counts = np.asarray(ref.count)
    both = (ours_count > 0) & (counts > 0)
    assert both.sum() > 0.5 * (ours_count > 0).sum()
    close = np.isclose(ours[both], np.asarray(ref.intensity)[both], rtol=1e-4, atol=0)
    assert close.mean() >= minimum_fraction, close.mean()
    same_pixels = ours_count[both] == counts[both]
    assert not (same_pixels & ~close).any()
    return both


def test_transmission_polar_map_equals_pyfai_integrate2d():
    geometry = pilatus300k(rot1_rad=0.0, rot2_rad=0.0, rot3_rad=0.0, poni1_m=0.05)
    data = np.random.default_rng(1).poisson(200, geometry.shape).astype(np.float64)
    # pyFAI's histogram truncates (pos − start)/step toward zero, so its first bin also
    # takes the pixels in [start − step, start): start the comparison below every pixel.
    spec = TargetSpec("img_pol", ranges={"q_pol": (0.0, 3.0), "ang_pol": (-180, 180)},
                      bins={"q_pol": 150, "ang_pol": 90})
    result = Converter(geometry, SampleGeometry.transmission(), [spec], use_detector_mask=True,
                       pixel_splitting="none").convert(data)["img_pol"]
    ref = azimuthal_integrator(geometry).integrate2d(
        data, 150, 90, unit="q_A^-1", radial_range=(0.0, 3.0), azimuth_range=(-180, 180),
        correctSolidAngle=False, polarization_factor=None, mask=geometry.detector_mask,
        method=("no", "histogram", "cython"))
    np.testing.assert_allclose(result.axis("q_pol").centres, ref.radial, rtol=1e-6)
    # pyFAI nudges its upper bound and works in float32: centres agree to ~1e-5°
    np.testing.assert_allclose(result.axis("ang_pol").centres, ref.azimuthal, atol=1e-4)
    _compare(result.intensity[0], result.counts, ref)


def test_gi_q_map_equals_pyfai_grazing_incidence():
    geometry = pilatus300k()
    incidence = 0.2
    data = np.random.default_rng(2).poisson(150, geometry.shape).astype(np.float64)
    coords = pixel_coordinates(geometry, SampleGeometry.grazing(incidence))
    # ranges starting below every pixel (see the note on pyFAI's first bin above)
    ip_range = (float(coords.q_xy.min()) - 0.01, float(coords.q_xy.max()) + 0.01)
    oop_range = (float(coords.q_z.min()) - 0.01, float(coords.q_z.max()) + 0.01)
    spec = TargetSpec("img_gid_q", ranges={"q_xy": ip_range, "q_z": oop_range},
                      bins={"q_xy": 160, "q_z": 170})
    result = Converter(geometry, SampleGeometry.grazing(incidence), [spec],
                       pixel_splitting="none").convert(data)["img_gid_q"]
    ref = fiber_integrator(geometry).integrate2d_grazing_incidence(
        data, npt_ip=160, unit_ip="qip_A^-1", ip_range=ip_range, npt_oop=170,
        unit_oop="qoop_A^-1", oop_range=oop_range, incident_angle=math.radians(incidence),
        tilt_angle=0.0, sample_orientation=1, correctSolidAngle=False,
        polarization_factor=None, mask=geometry.detector_mask,
        method=("no", "histogram", "cython"))
    np.testing.assert_allclose(result.axis("q_xy").centres, ref.inplane, atol=1e-6)
    np.testing.assert_allclose(result.axis("q_z").centres, ref.outofplane, atol=1e-6)
    _compare(result.intensity[0], result.counts, ref)
    # the missing wedge stays empty in both
    wedge = (np.asarray(ref.count) == 0) & (result.counts == 0)
    assert wedge.sum() > 100
    assert np.isnan(result.intensity[0][wedge]).all()


# --- conservation, errors, NaN semantics ---------------------------------------------------

@pytest.mark.parametrize("target", [
    "img_gid_q", "img_gid_exit",
    # polar maps cover the upper half-space by default: given the whole turn of χ
    TargetSpec("img_gid_pol", ranges={"ang_gid_pol": (-180, 180)}),
    TargetSpec("img_gid_pseudopol", ranges={"q_gid_azimuth": (-25, 25)})],
    ids=lambda t: getattr(t, "name", t))
@pytest.mark.parametrize("splitting", ["auto", "all", "none"])
def test_signal_is_conserved(target, splitting):
    """Every valid pixel's weights sum to one: Σ signal over bins is Σ over pixels."""
    geometry = pilatus300k()
    data = np.random.default_rng(3).poisson(30, (2, *geometry.shape)).astype(np.uint32)
    converter = Converter(geometry, SampleGeometry.grazing(0.3), [target], keep_sums=True,
                          pixel_splitting=splitting)
    result = next(iter(converter.convert(data).values()))
    valid = ~geometry.detector_mask
    for f in range(2):
        assert result.signal_sum[f].sum() == pytest.approx(data[f][valid].sum(), rel=1e-12)
    assert result.counts.sum() == pytest.approx(valid.sum(), rel=1e-12)


def test_poisson_errors_on_a_constant_image():
    geometry = small()
    counts = 250.0
    data = np.full(geometry.shape, counts)
    result = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q"],
                       keep_sums=True).convert(data)["img_gid_q"]
    n = result.counts
    filled = n > 0
    np.testing.assert_allclose(result.intensity[0][filled], counts, rtol=1e-6)
    total = result.signal_sum[0][filled]  # N counts in the bin
    np.testing.assert_allclose(result.errors[0][filled], np.sqrt(total) / n[filled],
                               rtol=1e-6)
    assert np.isnan(result.intensity[0][~filled]).all()
    assert np.isnan(result.errors[0][~filled]).all()


def test_masks_nan_and_valid_range():
    geometry = small()
    rng = np.random.default_rng(4)
    data = rng.poisson(50, (2, *geometry.shape)).astype(np.float64)
    mask = np.zeros(geometry.shape, bool)
    mask[:, :10] = True
    pixel_mask = np.zeros(geometry.shape, np.uint32)
    pixel_mask[:5] = 1 << 8  # user mask bit: ignored
    pixel_mask[5:8] = 1 << 20  # a bit above the low 16: not a reason to ignore
    combined = combine_masks(geometry.shape, mask, pixel_mask)
    assert combined[:5].all() and not combined[5:8, 10:].any()
    data[0, 50, 50] = np.nan  # a bad pixel in frame 0 only
    data[1, 60, 60] = 1e9  # saturated in frame 1
    conv = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q"],
                     mask=pixel_mask | mask.astype(np.uint32), valid_range=(0, 1e6),
                     keep_sums=True)
    result = conv.convert(data)["img_gid_q"]
    usable = ~combined
    expected = [np.nansum(data[0][usable]), data[1][usable].sum() - 1e9]
    for f in range(2):
        assert result.signal_sum[f].sum() == pytest.approx(expected[f], rel=1e-12)
    # the bin of the saturated pixel lost exactly that pixel's normalisation
    assert result.norm_sum[0].sum() - result.norm_sum[1].sum() == pytest.approx(0.0,
                                                                               abs=1e-9)
    assert np.isfinite(result.intensity).any()
    with pytest.raises(NxgidError, match="mask has shape"):
        Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q"], mask=np.ones((3, 3)))


def test_dark_flat_and_monitor():
    geometry = small()
    rng = np.random.default_rng(5)
    dark = np.full(geometry.shape, 5.0)
    flat = rng.uniform(0.8, 1.2, geometry.shape)
    true = 40.0
    data = true * flat + dark  # a perfectly flat sample seen through the flat field
    conv = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q"], dark=dark,
                     flat=flat)
    result = conv.convert(np.stack([data, 2 * data - dark]), monitor=[1.0, 2.0])["img_gid_q"]
    filled = result.counts > 0
    np.testing.assert_allclose(result.intensity[0][filled], true, rtol=1e-6)
    np.testing.assert_allclose(result.intensity[1][filled], true, rtol=1e-6)
    np.testing.assert_array_equal(result.frame_values["monitor"], [1.0, 2.0])
    with pytest.raises(NxgidError, match="monitor"):
        conv.convert(data, monitor=0.0)


def test_given_variance_is_propagated():
    geometry = small()
    data = np.full(geometry.shape, 10.0)
    variance = np.full(geometry.shape, 4.0)
    result = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q"]
                       ).convert(data, variance=variance)["img_gid_q"]
    filled = result.counts > 0
    np.testing.assert_allclose(result.errors[0][filled], 2.0 / np.sqrt(result.counts[filled]),
                               rtol=1e-6)


def test_per_frame_incidence_equals_separate_conversions():
    geometry = small()
    data = np.random.default_rng(6).poisson(20, (3, *geometry.shape)).astype(np.uint32)
    angles = [0.1, 0.3, 0.1]
    spec = TargetSpec("img_gid_q", ranges={"q_xy": (-1, 1), "q_z": (-0.2, 1.5)},
                      bins={"q_xy": 40, "q_z": 50})
    conv = Converter(geometry, SampleGeometry.grazing(0.1), [spec],
                     incidence_angles_deg=angles)
    together = conv.convert(data, incidence_deg=angles)["img_gid_q"]
    for f, angle in enumerate(angles):
        alone = Converter(geometry, SampleGeometry.grazing(angle), [spec]
                          ).convert(data[f])["img_gid_q"]
        np.testing.assert_array_equal(together.intensity[f], alone.intensity[0])
    np.testing.assert_array_equal(together.frame_values["incidence_angle_deg"], angles)
    assert not np.array_equal(together.intensity[0], together.intensity[1])


def test_default_ranges_cover_every_incidence_angle():
    geometry = small()
    one = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q"]).targets[0]
    many = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q"],
                     incidence_angles_deg=[0.1, 2.0]).targets[0]
    assert many.axes[1].start <= one.axes[1].start
    assert many.axes[1].stop >= one.axes[1].stop


def test_results_do_not_depend_on_threads():
    import numba

    geometry = pilatus300k()
    data = np.random.default_rng(7).poisson(30, (3, *geometry.shape)).astype(np.uint32)
    conv = Converter(geometry, SampleGeometry.grazing(0.2), ["img_gid_q", "img_gid_pol"])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = conv.convert(data)
        numba.set_num_threads(max(2, before))
        parallel = conv.convert(data)
    finally:
        numba.set_num_threads(before)
    for name in serial:
        np.testing.assert_array_equal(serial[name].intensity, parallel[name].intensity)
        np.testing.assert_array_equal(serial[name].errors, parallel[name].errors)


def test_blocks_equal_whole_stack():
    geometry = small()
    data = np.random.default_rng(8).poisson(20, (7, *geometry.shape)).astype(np.uint32)
    conv = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q"])
    whole = conv.convert(data)["img_gid_q"].intensity
    parts = [r["img_gid_q"].intensity for r in conv.convert_blocks(iter(data), block_frames=3)]
    assert [p.shape[0] for p in parts] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


# --- profiles ---------------------------------------------------------------------------------

def test_profiles_integrate_pixels_in_the_cut():
    geometry = pilatus300k()
    data = np.random.default_rng(9).poisson(80, geometry.shape).astype(np.float64)
    sample = SampleGeometry.grazing(0.2)
    coords = pixel_coordinates(geometry, sample)
    conv = Converter(geometry, sample, [
        TargetSpec("vert_cut_gid", ranges={"q_z": (0.0, 2.0)}, bins={"q_z": 50},
                   cut=(0.2, 0.6)),
        TargetSpec("horiz_cut_gid", ranges={"q_xy": (-1.0, 1.0)}, bins={"q_xy": 40},
                   cut=(0.5, 1.0)),
        TargetSpec("rad_cut_gid", ranges={"q_gid_pol": (0.2, 2.0)}, bins={"q_gid_pol": 30},
                   cut=(30.0, 60.0)),
        TargetSpec("azim_cut_gid", ranges={"ang_gid_pol": (0, 180)},
                   bins={"ang_gid_pol": 36}, cut=(1.0, 1.5)),
    ])
    results = conv.convert(data)
    usable = ~geometry.detector_mask
    checks = {
        "vert_cut_gid": (coords.q_z, coords.q_xy, (0.0, 2.0, 50), (0.2, 0.6)),
        "horiz_cut_gid": (coords.q_xy, coords.q_z, (-1.0, 1.0, 40), (0.5, 1.0)),
        "rad_cut_gid": (coords.q, np.degrees(coords.chi_gid), (0.2, 2.0, 30), (30.0, 60.0)),
        "azim_cut_gid": (np.degrees(coords.chi_gid), coords.q, (0.0, 180.0, 36), (1.0, 1.5)),
    }
    for name, (along, across, (lo, hi, n), (clo, chi)) in checks.items():
        inside = usable & (across >= clo) & (across <= chi) & (along >= lo) & (along < hi)
        index = np.floor((along[inside] - lo) / ((hi - lo) / n)).astype(int)
        sums = np.bincount(index, weights=data[inside], minlength=n)
        pixels = np.bincount(index, minlength=n)
        with np.errstate(invalid="ignore"):
            expected = sums / pixels
        got = results[name].intensity[0]
        filled = pixels > 0
        np.testing.assert_allclose(got[filled], expected[filled], rtol=1e-5, err_msg=name)
        assert np.isnan(got[~filled]).all()
        np.testing.assert_array_equal(results[name].counts, pixels)


def test_transmission_profiles_and_maps():
    geometry = pilatus300k(rot1_rad=0.0, rot2_rad=0.0, rot3_rad=0.0, poni1_m=0.05)
    data = np.random.default_rng(10).poisson(80, geometry.shape).astype(np.float64)
    conv = Converter(geometry, SampleGeometry.transmission(),
                     ["img_q", "img_pol", "img_pseudopol", "rad_cut", "azim_cut"],
                     q_unit="nm^-1")
    results = conv.convert(data)
    for name, result in results.items():
        assert np.nanmean(result.intensity) == pytest.approx(data.mean(), rel=0.02), name
    assert results["img_q"].axes[0].unit == "nm^-1"
    # the default range holds every pixel's whole footprint (pixels may be split)
    corners = pixel_coordinates(geometry, SampleGeometry.transmission(), corners=True)
    q_max = 10 * corners.q[1:-1, 1:-1].max()  # the outermost corners of inner pixels
    assert results["rad_cut"].axes[0].stop >= q_max
    assert results["rad_cut"].axes[0].stop == pytest.approx(10 * corners.q.max(), rel=1e-9)


def test_wrong_geometry_and_shapes_are_clear_errors():
    geometry = small()
    with pytest.raises(NxgidError, match="transmission result but the sample is in gid"):
        Converter(geometry, SampleGeometry.grazing(0.1), ["img_q"])
    with pytest.raises(NxgidError, match="no axis 'q_x'"):
        TargetSpec("img_gid_q", bins={"q_x": 10})
    conv = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q"])
    with pytest.raises(NxgidError, match="frames of shape"):
        conv.convert(np.zeros((5, 5)))
    with pytest.raises(NxgidError, match="2 values for 3 frames"):
        conv.convert(np.zeros((3, *geometry.shape)), monitor=[1, 2])


# --- corrections and the disk cache ------------------------------------------------------

def test_corrections_enter_the_normalisation():
    from nxgid.conversion.corrections import Corrections, correction_factors

    geometry = pilatus300k()
    sample = SampleGeometry.grazing(0.2)
    corrections = Corrections(solid_angle=True, polarization_factor=0.95)
    coords = pixel_coordinates(geometry, sample)
    factors = correction_factors(corrections, geometry, coords)
    true = 30.0
    data = true * factors  # what the detector records of a flat intensity
    conv = Converter(geometry, sample, ["img_gid_q", "rad_cut_gid"], corrections=corrections)
    results = conv.convert(data)
    for result in results.values():
        filled = result.counts > 0
        np.testing.assert_allclose(result.intensity[0][filled], true, rtol=1e-5)
        assert result.process["corrections"]["polarization"]["factor"] == 0.95
    plain = Converter(geometry, sample, ["img_gid_q"]).convert(data)["img_gid_q"]
    assert np.nanmax(np.abs(plain.intensity[0] - true)) > 0.05 * true


def test_refraction_moves_q_z_only():
    """With refraction on, every pixel lands in the bin of its refracted q_z and its
    unchanged q_xy; pixels below the critical angle drop out."""
    from nxgid.conversion.corrections import Corrections, refracted_q_z

    geometry = pilatus300k(poni1_m=0.01)
    sample = SampleGeometry.grazing(0.2)
    critical = 0.15
    spec = TargetSpec("img_gid_q", ranges={"q_xy": (-1, 1), "q_z": (-0.1, 2.0)},
                      bins={"q_xy": 80, "q_z": 120})
    conv = Converter(geometry, sample, [spec], corrections=Corrections(
        solid_angle=False, polarization_factor=None, refraction=True,
        critical_angle_deg=critical))
    binmap = conv.binmaps()["img_gid_q"]
    coords = pixel_coordinates(geometry, sample)
    q_z = refracted_q_z(coords, critical).ravel()
    q_xy = coords.q_xy.ravel()
    bins_of = np.repeat(np.arange(binmap.bins), np.diff(binmap.indptr))
    x_axis, z_axis = conv.targets[0].axes
    expected = z_axis.index(q_z[binmap.pixels]) * x_axis.bins + x_axis.index(q_xy[binmap.pixels])
    np.testing.assert_array_equal(bins_of, expected)
    below = np.isnan(q_z)
    assert below.any() and not np.isin(np.flatnonzero(below), binmap.pixels).any()
    assert np.nanmax(q_z - coords.q_z.ravel()) < 0  # refraction lowers q_z


def test_disk_cache_gives_identical_results(tmp_path):
    geometry = pilatus300k()
    sample = SampleGeometry.grazing(0.2)
    data = np.random.default_rng(12).poisson(40, (2, *geometry.shape)).astype(np.uint32)
    first = Converter(geometry, sample, ["img_gid_q", "vert_cut_gid"], cache_dir=tmp_path)
    expected = first.convert(data)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert any(f.endswith(".json") for f in files) and any(f.endswith(".npz") for f in files)
    second = Converter(geometry, sample, ["img_gid_q", "vert_cut_gid"], cache_dir=tmp_path)
    assert second.targets == first.targets
    got = second.convert(data)
    for name in expected:
        np.testing.assert_array_equal(got[name].intensity, expected[name].intensity)
    # a different mask is a different entry, never a stale hit
    mask = np.zeros(geometry.shape, bool)
    mask[100:200] = True
    third = Converter(geometry, sample, ["img_gid_q", "vert_cut_gid"], cache_dir=tmp_path,
                      mask=mask)
    assert not np.array_equal(third.convert(data)["img_gid_q"].counts,
                              expected["img_gid_q"].counts)
    # a corrupt entry is ignored and rebuilt
    for path in tmp_path.glob("*.npz"):
        path.write_bytes(b"garbage")
    again = Converter(geometry, sample, ["img_gid_q", "vert_cut_gid"], cache_dir=tmp_path)
    np.testing.assert_array_equal(again.convert(data)["img_gid_q"].intensity,
                                  expected["img_gid_q"].intensity)


# --- pixel splitting --------------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "img_gid_q", TargetSpec("img_gid_pol", ranges={"ang_gid_pol": (-180, 180)}),
    TargetSpec("img_gid_pseudopol", ranges={"q_gid_azimuth": (-25, 25)}), "vert_cut_gid"],
    ids=lambda t: getattr(t, "name", t))
def test_pixel_splitting_conserves_and_fills(target):
    geometry = pilatus300k(poni1_m=0.01)
    sample = SampleGeometry.grazing(0.2)
    data = np.random.default_rng(13).poisson(60, geometry.shape).astype(np.float64)
    name = getattr(target, "name", target)
    # one grid for all three (the automatic one of splitting "all")
    axes = Converter(geometry, sample, [target], pixel_splitting="all").targets[0].axes
    target = TargetSpec(name, ranges={a.name: (a.start, a.stop) for a in axes},
                        bins={a.name: a.bins for a in axes},
                        cut=getattr(target, "cut", None))
    results = {mode: Converter(geometry, sample, [target], pixel_splitting=mode,
                               keep_sums=True).convert(data)[name]
               for mode in ("none", "auto", "all")}
    whole = results["none"]
    for mode in ("auto", "all"):
        shared = results[mode]
        # every pixel's weights sum to one: the same total signal and pixel count
        assert shared.signal_sum.sum() == pytest.approx(whole.signal_sum.sum(), rel=1e-9)
        assert shared.counts.sum() == pytest.approx(whole.counts.sum(), rel=1e-9)
        if shared.is_map:  # bins about one pixel wide: splitting fills the holes
            assert (shared.counts > 0).sum() > (whole.counts > 0).sum()
        assert shared.process["pixel_splitting"] == mode
    # splitting every pixel smooths more than splitting the wide ones only
    if whole.is_map:
        entries = {mode: (results[mode].counts > 0).sum() for mode in results}
        assert entries["none"] < entries["auto"] <= entries["all"]


def test_pixel_splitting_keeps_a_flat_field_flat_and_errors_smaller():
    geometry = pilatus300k(poni1_m=0.01)
    sample = SampleGeometry.grazing(0.2)
    level = 80.0
    data = np.full(geometry.shape, level)
    spec = TargetSpec("img_gid_q", bins={"q_xy": 300, "q_z": 300})
    result = Converter(geometry, sample, [spec], pixel_splitting=True).convert(data)
    img = result["img_gid_q"]
    filled = img.counts > 0
    np.testing.assert_allclose(img.intensity[0][filled], level, rtol=1e-9)
    # Σw²·I / (Σw)² ≤ Σw·I / (Σw)²: sharing pixels never inflates the Poisson error
    whole = Converter(geometry, sample, [spec], pixel_splitting="none"
                      ).convert(data)["img_gid_q"]
    both = filled & (whole.counts > 0)
    assert np.median(img.errors[0][both]) <= np.median(whole.errors[0][both])


def test_polar_seam_is_handled():
    """Pixels straddling χ = ±180° do not smear over the whole χ axis."""
    geometry = pilatus300k(rot1_rad=0.0, rot2_rad=0.0, rot3_rad=0.0, poni1_m=0.05)
    data = np.full(geometry.shape, 10.0)
    spec = TargetSpec("img_pol", ranges={"ang_pol": (-180, 180)}, bins={"ang_pol": 360})
    result = Converter(geometry, SampleGeometry.transmission(), [spec],
                       pixel_splitting=True).convert(data)["img_pol"]
    filled = result.counts > 0
    np.testing.assert_allclose(result.intensity[0][filled], 10.0, rtol=1e-9)
    assert result.counts.max() < 50  # no bin collects hundreds of smeared pixels


# --- interpolation ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_interpolation_samples_a_smooth_field_at_bin_centres(method):
    """A detector image that is a linear function of (q_xy, q_z) comes back as that
    function at the bin centres (exactly for bilinear up to curvature, within a pixel's
    variation for nearest)."""
    geometry = pilatus300k(poni1_m=0.01)
    sample = SampleGeometry.grazing(0.2)
    coords = pixel_coordinates(geometry, sample)
    data = 100.0 + 30.0 * coords.q_xy + 20.0 * coords.q_z
    spec = TargetSpec("img_gid_q", ranges={"q_xy": (-1.2, 1.2), "q_z": (0.0, 2.0)},
                      bins={"q_xy": 120, "q_z": 100})
    result = Converter(geometry, sample, [spec], method=method).convert(data)["img_gid_q"]
    z, x = (a.centres for a in result.axes)  # the array's order: rows q_z, columns q_xy
    truth = 100.0 + 30.0 * x[np.newaxis, :] + 20.0 * z[:, np.newaxis]
    filled = np.isfinite(result.intensity[0])
    assert filled.mean() > 0.5
    pixel_step = 50.0 * np.degrees(172e-6 / 0.2) * math.pi / 180 * coords.k  # ≈ one pixel
    error = np.abs(result.intensity[0][filled] - truth[filled])
    assert np.max(error) < pixel_step  # never more than one pixel's change of the field
    if method == "bilinear":
        # exact (float32) wherever all four neighbours are valid: all but the bins next
        # to module gaps, where a masked neighbour drops out of the weights
        assert np.mean(error < 1e-4) > 0.97
    # the missing wedge is never filled
    wedge = (np.abs(x[np.newaxis, :]) < 0.02) & (z[:, np.newaxis] > 1.0)
    assert np.isnan(result.intensity[0][wedge]).all()


def test_interpolation_keeps_corrections_masks_and_errors():
    geometry = pilatus300k(poni1_m=0.01)
    sample = SampleGeometry.grazing(0.2)
    level, dark_level = 50.0, 4.0
    flat = np.random.default_rng(14).uniform(0.9, 1.1, geometry.shape)
    data = level * flat + dark_level
    conv = Converter(geometry, sample, ["img_gid_q", "vert_cut_gid"], method="bilinear",
                     dark=np.full(geometry.shape, dark_level), flat=flat)
    results = conv.convert(data)
    img = results["img_gid_q"]
    filled = np.isfinite(img.intensity[0])
    np.testing.assert_allclose(img.intensity[0][filled], level, rtol=1e-9)
    assert np.all(img.errors[0][filled] > 0)
    assert results["vert_cut_gid"].process["method"] == "bilinear"  # recorded ...
    assert results["vert_cut_gid"].counts.max() > 1  # ... but profiles integrate pixels
    with pytest.raises(NxgidError, match="method 'cubic'"):
        Converter(geometry, sample, ["img_gid_q"], method="cubic")
    with pytest.raises(NxgidError, match="pixel splitting belongs"):
        Converter(geometry, sample, ["img_gid_q"], method="nearest", pixel_splitting=True)


# --- properties over random geometries ------------------------------------------------------

@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(incidence=st.floats(0.0, 2.0), rot1=st.floats(-0.05, 0.05),
       rot2=st.floats(-0.05, 0.05), row=st.floats(-20, 80), col=st.floats(-20, 120),
       distance=st.floats(0.05, 0.5), splitting=st.sampled_from(["auto", "all", "none"]),
       target=st.sampled_from(["img_gid_q", "img_gid_pol", "img_gid_exit", "rad_cut_gid"]),
       seed=st.integers(0, 2**16))
# found by hypothesis: the pixels at both ends of the automatic χ range were binned with
# angles rounded differently from those the range was taken from, and two were lost
@example(incidence=0.0, rot1=0.0, rot2=0.0, row=0.0, col=0.0, distance=0.25,
         splitting="none", target="img_gid_pol", seed=0)
def test_bins_are_averages_and_signal_is_conserved(incidence, rot1, rot2, row, col, distance,
                                                  splitting, target, seed):
    geometry = small(60, 100, rot1_rad=rot1, rot2_rad=rot2, distance_m=distance,
                     beam_center_px=(row, col))
    sample = SampleGeometry.grazing(incidence)
    data = np.random.default_rng(seed).poisson(25, geometry.shape).astype(np.float64)
    result = Converter(geometry, sample, [target], keep_sums=True,
                       pixel_splitting=splitting).convert(data)[target]
    values = result.intensity[0][np.isfinite(result.intensity[0])]
    if target == "rad_cut_gid":  # its default χ cut (0–180°) may hold no pixel at all
        assume(values.size > 0)
    assert values.size > 0
    # every bin is a weighted average of pixels: within the frame's range
    assert values.min() >= data.min() - 1e-3 and values.max() <= data.max() + 1e-3
    if target in ("img_gid_q", "img_gid_exit"):  # default ranges hold every pixel
        assert result.signal_sum.sum() == pytest.approx(data.sum(), rel=1e-9)
    above = pixel_coordinates(geometry, sample).q_z >= 0
    if target == "img_gid_pol" and above.any():  # the half-space above the horizon
        chi = result.axis("ang_gid_pol")
        assert 0.0 <= chi.start < chi.stop <= 180.0
        assert result.signal_sum.sum() <= data.sum() + 1e-6
        if splitting == "none":  # whole pixels: exactly those above the horizon
            assert result.signal_sum.sum() == pytest.approx(data[above].sum(), rel=1e-9)


def test_to_xarray_carries_axes_units_and_frame_values():
    geometry = small()
    data = np.random.default_rng(15).poisson(20, (3, *geometry.shape)).astype(np.uint32)
    result = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q"]
                       ).convert(data, monitor=[1.0, 2.0, 4.0])["img_gid_q"]
    dataset = result.to_xarray()
    array = dataset["img_gid_q"]
    assert array.dims == ("frame", "q_z", "q_xy")
    np.testing.assert_array_equal(array["q_xy"].values, result.axis("q_xy").centres)
    assert array["q_z"].attrs["units"] == "A^-1"
    np.testing.assert_array_equal(array["monitor"].values, [1.0, 2.0, 4.0])
    np.testing.assert_array_equal(dataset["img_gid_q_errors"].values, result.errors)
    assert float(array.sel(q_xy=0.3, q_z=0.5, method="nearest")[0]) == pytest.approx(
        float(result.intensity[0][result.axis("q_z").index(np.array([0.5]))[0],
                                  result.axis("q_xy").index(np.array([0.3]))[0]]),
        nan_ok=True)


def test_axis_index_keeps_every_value_of_the_closed_range():
    from nxgid.conversion.grid import Axis

    axis = Axis("ang_gid_inplane", -1.780638235803581, 0.16986156055405757, 99, "deg")
    just_below = np.nextafter(axis.stop, -np.inf)  # (v − start)/step rounds to 99.0
    values = np.array([axis.start, just_below, axis.stop, np.nextafter(axis.stop, np.inf),
                       np.nan])
    np.testing.assert_array_equal(axis.index(values), [0, 98, 98, -1, -1])


# --- geometry input --------------------------------------------------------------------------

PONI_V1 = """# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis
PixelSize1: 0.000172
PixelSize2: 0.000172
Distance: 0.3
Poni1: 0.12
Poni2: 0.11
Rot1: 0.01
Rot2: -0.02
Rot3: 0.005
Wavelength: 1e-10
"""

PONI_V2 = """poni_version: 2
Detector: Pilatus2M
Detector_config: {}
Distance: 0.3
Poni1: 0.12
Poni2: 0.11
Rot1: 0.01
Rot2: -0.02
Rot3: 0.005
Wavelength: 1e-10
"""

PONI_V21 = """poni_version: 2.1
Detector: Detector
Detector_config: {"pixel1": 0.0001, "pixel2": 0.0002, "max_shape": [300, 200], "orientation": 3}
Distance: 0.25
Poni1: 0.015
Poni2: 0.02
Rot1: 0.0
Rot2: 0.0
Rot3: 0.0
Wavelength: 1.0332e-10
"""


def test_poni_files_of_every_version(tmp_path):
    for name, text in (("v1", PONI_V1), ("v2", PONI_V2), ("v21", PONI_V21)):
        (tmp_path / f"{name}.poni").write_text(text)
    v2 = DetectorGeometry.from_poni(tmp_path / "v2.poni")
    assert v2.shape == (1679, 1475) and v2.detector_mask.any()  # gaps from the name
    assert v2.wavelength_A == pytest.approx(1.0)
    assert v2.rotations_rad == (0.01, -0.02, 0.005)
    v1 = DetectorGeometry.from_poni(tmp_path / "v1.poni")
    assert v1.pixel_size_m == (0.000172, 0.000172) and v1.distance_m == 0.3
    # non-square pixels and a detector orientation (PONI 2.1)
    v21 = DetectorGeometry.from_poni(tmp_path / "v21.poni")
    assert v21.shape == (300, 200) and v21.pixel_size_m == (0.0001, 0.0002)
    assert v21.detector.orientation == 3
    x, _, _ = v21.positions_m()
    assert abs(x[0, 1] - x[0, 0]) == pytest.approx(0.0002)  # pixel 2 along columns
    # the same geometry round-trips through a PONI file written by nxgid (via pyFAI)
    v21.save_poni(tmp_path / "again.poni")
    again = DetectorGeometry.from_poni(tmp_path / "again.poni")
    np.testing.assert_allclose(again.positions_m()[0], v21.positions_m()[0], atol=1e-12)
    with pytest.raises(NxgidError, match="does not exist"):
        DetectorGeometry.from_poni(tmp_path / "missing.poni")
    (tmp_path / "bad.poni").write_text("Distance: far\n")
    with pytest.raises(NxgidError, match=r"bad\.poni"):
        DetectorGeometry.from_poni(tmp_path / "bad.poni")


def test_manual_geometry_beam_centre_and_energy():
    by_poni = DetectorGeometry.from_parameters(detector="Pilatus300k", distance_m=0.2,
                                               wavelength_A=1.0, poni1_m=0.0172,
                                               poni2_m=0.0344)
    by_centre = DetectorGeometry.from_parameters(detector="Pilatus300k", distance_m=0.2,
                                                 energy_keV=12.398419843320026,
                                                 beam_center_px=(100.0, 200.0))
    assert by_centre.wavelength_A == pytest.approx(1.0, rel=1e-12)
    assert by_centre.poni_m == pytest.approx(by_poni.poni_m)
    # pixel centres at (i + ½)·size: with the beam centre at (100, 200) the pixels
    # 99/100 and 199/200 lie half a pixel on either side of it
    x, y, _ = by_centre.positions_m()
    half = 0.5 * 172e-6
    assert abs(x[100, 199]) == pytest.approx(half, abs=1e-8)  # pyFAI: float32 positions
    assert abs(x[100, 200]) == pytest.approx(half, abs=1e-8)  # pyFAI: float32 positions
    assert x[100, 199] * x[100, 200] < 0
    assert abs(y[99, 200]) == pytest.approx(half, abs=1e-8)  # pyFAI: float32 positions
    assert y[99, 200] * y[100, 200] < 0
    with pytest.raises(NxgidError, match="exactly one of wavelength_A and energy_keV"):
        DetectorGeometry.from_parameters(detector="Pilatus300k", distance_m=0.2,
                                         beam_center_px=(1, 1))
    with pytest.raises(NxgidError, match="not in pyFAI's detector database"):
        DetectorGeometry.from_parameters(detector="Pilatus3000k", distance_m=0.2,
                                         wavelength_A=1.0, beam_center_px=(1, 1))


def test_outputs_can_be_reused():
    geometry = small()
    data = np.random.default_rng(16).poisson(20, (7, *geometry.shape)).astype(np.uint32)
    conv = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q", "vert_cut_gid"])
    first = conv.convert(data[:3])
    expected = conv.convert(data[3:6])
    again = conv.convert(data[3:6], out=first)
    for name in expected:
        assert np.shares_memory(again[name].intensity, first[name].intensity)
        np.testing.assert_array_equal(again[name].intensity, expected[name].intensity)
        np.testing.assert_array_equal(again[name].errors, expected[name].errors)
    # streaming with reuse gives the same numbers as without, block by block
    plain = [r["img_gid_q"].intensity.copy()
             for r in conv.convert_blocks(iter(data), block_frames=3)]
    reused = [r["img_gid_q"].intensity.copy()
              for r in conv.convert_blocks(iter(data), block_frames=3, reuse_outputs=True)]
    for a, b in zip(plain, reused, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("splitting", ["auto", "all", "none"])
def test_one_frame_equals_the_same_frame_in_a_stack(splitting):
    """The single-frame kernels (live mode converts frames one at a time) give what the
    stack kernels give: masks, NaN, a valid range, dark, flat, monitor, variance, sums."""
    geometry = small()
    rng = np.random.default_rng(9)
    data = rng.poisson(30, (3, *geometry.shape)).astype(np.float64)
    data[:, 40, 40] = np.nan
    data[1, 50, 50] = 1e9  # outside the valid range in frame 1 only
    variance = rng.uniform(10, 40, data.shape)
    dark = np.full(geometry.shape, 2.0)
    flat = rng.uniform(0.8, 1.2, geometry.shape)
    for options in ({}, {"valid_range": (0, 1e6), "dark": dark, "flat": flat}):
        conv = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q", "rad_cut_gid"],
                         pixel_splitting=splitting, keep_sums=True, **options)
        for var in (None, variance):
            stack = conv.convert(data, variance=var, monitor=[1.0, 2.0, 0.5])
            for f, m in enumerate((1.0, 2.0, 0.5)):
                one = conv.convert(data[f], variance=None if var is None else var[f],
                                   monitor=m)
                for name in ("img_gid_q", "rad_cut_gid"):
                    a, b = one[name], stack[name]
                    np.testing.assert_array_equal(a.intensity[0], b.intensity[f])
                    np.testing.assert_array_equal(a.errors[0], b.errors[f])
                    np.testing.assert_array_equal(a.signal_sum[0], b.signal_sum[f])
                    np.testing.assert_array_equal(a.norm_sum[0], b.norm_sum[f])
    # integer frames take the fast kernels when nothing can drop out
    counts = rng.poisson(30, (2, *geometry.shape)).astype(np.int32)
    conv = Converter(geometry, SampleGeometry.grazing(0.1), ["img_gid_q"],
                     pixel_splitting=splitting)
    np.testing.assert_array_equal(conv.convert(counts[1])["img_gid_q"].intensity[0],
                                  conv.convert(counts)["img_gid_q"].intensity[1])
