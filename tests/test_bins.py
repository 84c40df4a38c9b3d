"""Automatic bins: no holes on a flat field, χ ranges that cover what the detector sees,
sizes within the limit, and splitting that keeps the missing wedge empty."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nxgid.conversion import Converter, TargetSpec
from nxgid.conversion.autobins import MAX_BINS, covering_arc
from nxgid.conversion.coverage import covered_bins
from nxgid.errors import NxgidError
from nxgid.geometry import DetectorGeometry, SampleGeometry, pixel_coordinates
from nxgid.names import MAP_RESULTS

GID_MAPS = [name for name, (kind, _) in MAP_RESULTS.items() if kind == "gid"]
TRANSMISSION_MAPS = [name for name, (kind, _) in MAP_RESULTS.items() if kind != "gid"]

#: (detector, distance m): small and large detectors, near and far.
SETUPS = [("Pilatus300k", 0.12), ("Pilatus300k", 1.2), ("Pilatus1M", 0.35)]


def _geometry(detector: str, distance_m: float, *, gid: bool) -> DetectorGeometry:
    import pyFAI

    rows, cols = pyFAI.detector_factory(detector).shape
    centre = (0.05 * rows, 0.52 * cols) if gid else (0.45 * rows, 0.55 * cols)
    return DetectorGeometry.from_parameters(
        detector=detector, distance_m=distance_m, wavelength_A=0.95, beam_center_px=centre,
        rot1_rad=0.004, rot2_rad=-0.006, rot3_rad=0.001)


def _holes(converter: Converter) -> tuple[int, int]:
    """(covered bins left empty, covered bins) of the converter's only target."""
    target = converter.targets[0]
    footprints = converter.footprints(corners=True)
    covered = covered_bins(target, footprints, ~converter.mask)
    counts = converter.binmaps()[target.name].counts.reshape(target.shape)
    return int((covered & (counts == 0)).sum()), int(covered.sum())


@pytest.mark.slow
@pytest.mark.parametrize(("detector", "distance_m"), SETUPS)
@pytest.mark.parametrize("result", GID_MAPS + TRANSMISSION_MAPS)
def test_default_bins_leave_no_empty_bin_in_the_covered_region(detector, distance_m, result):
    gid = result in GID_MAPS
    geometry = _geometry(detector, distance_m, gid=gid)
    sample = SampleGeometry.grazing(0.15) if gid else SampleGeometry.transmission()
    converter = Converter(geometry, sample, [result])
    holes, covered = _holes(converter)
    assert covered > 0.2 * math.prod(converter.targets[0].shape)
    assert holes == 0
    # and the flat field comes back flat in every filled bin
    flat = converter.convert(np.full(geometry.shape, 50.0))[result]
    filled = flat.counts > 0
    np.testing.assert_allclose(flat.intensity[0][filled], 50.0, rtol=1e-9)


@pytest.mark.parametrize("result", ["img_gid_q", "img_gid_exit", "img_q"])
def test_without_splitting_the_same_bins_have_holes(result):
    """The check above can fail: whole pixels alone leave the moiré of empty bins."""
    gid = result != "img_q"
    geometry = _geometry("Pilatus300k", 0.12, gid=gid)
    sample = SampleGeometry.grazing(0.15) if gid else SampleGeometry.transmission()
    holes, _ = _holes(Converter(geometry, sample, [result], pixel_splitting="none"))
    assert holes > 0


def test_bins_follow_the_pixel_footprint():
    """Nine pixels in ten fit in one automatic bin; the rest are split, per axis."""
    geometry = _geometry("Pilatus300k", 0.12, gid=True)
    converter = Converter(geometry, SampleGeometry.grazing(0.15), ["img_gid_q"])
    footprints = converter.footprints()
    valid = ~converter.mask & ~footprints.straddles_wedge
    for axis in converter.targets[0].axes:
        extent = footprints.extent(axis.name)[valid]
        assert np.mean(extent <= axis.step) == pytest.approx(0.9, abs=0.02)
    binmap = converter.binmaps()["img_gid_q"]
    assert binmap.pixels.size / (~converter.mask).sum() < 1.5  # few entries per pixel


def test_gid_polar_maps_cover_the_upper_half_space_the_detector_sees():
    # beam beside the detector: χ from the horizon to a little past 90°
    geometry = DetectorGeometry.from_parameters(
        detector="Pilatus300k", distance_m=0.2, wavelength_A=1.0,
        beam_center_px=(20.0, -30.0))
    sample = SampleGeometry.grazing(0.2)
    converter = Converter(geometry, sample, ["img_gid_pol", "img_gid_pseudopol"])
    chi = converter.targets[0].axes[1]
    coords = pixel_coordinates(geometry, sample)
    above = (coords.q_z >= 0) & ~converter.mask
    seen = np.degrees(coords.chi_gid[above])
    assert chi.start == pytest.approx(0.0, abs=0.5)
    assert chi.stop == pytest.approx(seen.max(), abs=2 * chi.step)
    assert chi.stop < 120  # not the whole turn, not 0–180
    azimuth = converter.targets[1].axes[1]
    assert azimuth.start >= 0.0
    result = converter.convert(np.full(geometry.shape, 7.0))["img_gid_pol"]
    assert np.isfinite(result.intensity).mean() > 0.4


def test_transmission_azimuth_covers_the_shortest_arc_across_the_seam():
    # beam beyond the last column: the detector sees χ around ±180°, which a −180…180
    # axis would split into two halves
    geometry = DetectorGeometry.from_parameters(
        detector="Pilatus300k", distance_m=0.2, wavelength_A=1.0,
        beam_center_px=(300.0, 530.0))
    sample = SampleGeometry.transmission()
    converter = Converter(geometry, sample, ["img_pol", "img_pseudopol"])
    chi = converter.targets[0].axes[1]
    assert chi.stop - chi.start < 180
    assert chi.start < 180 < chi.stop  # across the seam, in one piece
    assert converter.targets[0].chi_from_deg == chi.start
    data = np.full(geometry.shape, 3.0)
    for result in converter.convert(data).values():
        filled = result.counts > 0
        assert filled.mean() > 0.2
        np.testing.assert_allclose(result.intensity[0][filled], 3.0, rtol=1e-9)
    assert _holes(Converter(geometry, sample, ["img_pol"]))[0] == 0


def test_covering_arc():
    assert covering_arc(np.array([170.0, 175.0, -179.0, -170.0])) == \
        pytest.approx((170.0, 190.0))
    assert covering_arc(np.array([-10.0, 0.0, 10.0])) == pytest.approx((-10.0, 10.0))
    assert covering_arc(np.linspace(-180, 180, 2000)) == (-180.0, 180.0)


def test_explicit_chi_ranges_take_their_own_turn():
    geometry = _geometry("Pilatus300k", 0.2, gid=True)
    sample = SampleGeometry.grazing(0.15)
    spec = TargetSpec("img_gid_pol", ranges={"ang_gid_pol": (-10, 190)})
    converter = Converter(geometry, sample, [spec])
    assert converter.targets[0].chi_from_deg == -10
    result = converter.convert(np.full(geometry.shape, 2.0))["img_gid_pol"]
    chi = result.axis("ang_gid_pol").centres
    # below the horizon on both sides: χ slightly under 0° and slightly over 180°
    filled = np.isfinite(result.intensity[0])  # rows: χ, columns: |q|
    assert filled[chi < 0].any() and filled[chi > 180].any()


def test_automatic_bins_stay_within_the_limit():
    geometry = _geometry("Pilatus300k", 0.12, gid=True)
    sample = SampleGeometry.grazing(0.15)
    free = Converter(geometry, sample, ["img_gid_q"]).targets[0]
    assert math.prod(free.shape) <= MAX_BINS
    limited = Converter(geometry, sample, ["img_gid_q"], max_bins=20_000).targets[0]
    assert math.prod(limited.shape) <= 20_000
    assert math.prod(limited.shape) > 15_000  # coarsened just enough
    ratio = [a.step / b.step for a, b in zip(limited.axes, free.axes, strict=True)]
    assert ratio[0] == pytest.approx(ratio[1], rel=0.05)  # both axes by the same factor
    # a fixed axis stays as given, the automatic one gives way
    spec = TargetSpec("img_gid_q", bins={"q_xy": 400})
    mixed = Converter(geometry, sample, [spec], max_bins=20_000).targets[0]
    assert mixed.axes[0].bins == 400 and mixed.axes[1].bins <= 50


def test_explicit_bins_beyond_the_limit_are_refused():
    geometry = _geometry("Pilatus300k", 0.12, gid=True)
    spec = TargetSpec("img_gid_q", bins={"q_xy": 5000, "q_z": 5000})
    with pytest.raises(NxgidError) as info:
        Converter(geometry, SampleGeometry.grazing(0.15), [spec])
    message = str(info.value)
    assert "img_gid_q" in message and "25 M" in message and "max_bins" in message
    assert "\n" not in message
    allowed = Converter(geometry, SampleGeometry.grazing(0.15), [spec],
                        max_bins=25_000_000, pixel_splitting="none")
    assert allowed.targets[0].shape == (5000, 5000)


@pytest.mark.parametrize("mode", ["auto", "all"])
def test_splitting_keeps_the_missing_wedge_empty(mode):
    """Bins ten times finer than a pixel near the meridian: split pixels never put
    intensity into the wedge, where pyFAI's own bounding-box splitting does. With
    ``all``, the box of a pixel beside the wedge, a rectangle around a slanted
    footprint, may reach into it by less than a pixel."""
    from pyFAI.integrator.fiber import FiberIntegrator

    geometry = _geometry("Pilatus300k", 0.12, gid=True)
    incidence = 0.15
    sample = SampleGeometry.grazing(incidence)
    spec = TargetSpec("img_gid_q", ranges={"q_xy": (-0.15, 0.15), "q_z": (0.6, 1.2)},
                      bins={"q_xy": 300, "q_z": 60})
    result = Converter(geometry, sample, [spec], pixel_splitting=mode,
                       use_detector_mask=False).convert(np.ones(geometry.shape))["img_gid_q"]
    k = 2 * math.pi / 0.95
    q_xy = result.axis("q_xy").centres
    q_z = result.axis("q_z").centres
    # half-width of the wedge at each q_z: |q_beam| = k |cos α_f − cos α_i| where the
    # horizontal component is 0, less a margin (two bins; one pixel footprint for all)
    alpha_i = math.radians(incidence)
    alpha_f = np.arcsin(q_z / k - math.sin(alpha_i))
    pixel = k * 172e-6 / 0.12
    margin = 2 * result.axis("q_xy").step if mode == "auto" else pixel
    half = (k * np.abs(np.cos(alpha_f) - math.cos(alpha_i)))[:, np.newaxis] - margin
    wedge = np.abs(q_xy)[np.newaxis, :] < half
    assert wedge.sum() > 500
    assert np.isnan(result.intensity[0][wedge]).all()
    cfg = geometry.pyfai
    fiber = FiberIntegrator(dist=cfg.dist, poni1=cfg.poni1, poni2=cfg.poni2, rot1=cfg.rot1,
                            rot2=cfg.rot2, rot3=cfg.rot3, detector=geometry.detector,
                            wavelength=cfg.wavelength)
    ref = fiber.integrate2d_grazing_incidence(
        np.ones(geometry.shape), npt_ip=300, unit_ip="qip_A^-1", ip_range=(-0.15, 0.15),
        npt_oop=60, unit_oop="qoop_A^-1", oop_range=(0.6, 1.2),
        incident_angle=math.radians(incidence), correctSolidAngle=False,
        polarization_factor=None, method=("bbox", "csr", "cython"))
    assert (np.asarray(ref.count)[wedge] > 0).sum() > 0.5 * wedge.sum()
