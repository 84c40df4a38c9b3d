"""Ground truth from the simulator: features land where physics puts them."""

from __future__ import annotations

import numpy as np
import pytest

from nxgid.conversion import Converter, TargetSpec
from nxgid.geometry import DetectorGeometry, SampleGeometry
from nxgid.images.simulate import Pattern, Ring, Spot, simulate, simulate_function


def geometry() -> DetectorGeometry:
    return DetectorGeometry.from_parameters(
        detector="Pilatus1M", distance_m=0.25, wavelength_A=1.0, poni1_m=0.012, poni2_m=0.085,
        rot1_rad=0.005, rot2_rad=-0.01, rot3_rad=0.0)


RINGS = (Ring(d_spacing_A=8.0, intensity=400, width_A=0.004),
         Ring(d_spacing_A=4.2, intensity=300, width_A=0.004),
         Ring(d_spacing_A=2.9, intensity=200, width_A=0.004))
SPOTS = (Spot(q_xy_A=0.45, q_z_A=0.9, intensity=800, width_A=0.006),
         Spot(q_xy_A=1.1, q_z_A=0.35, intensity=800, width_A=0.006),
         Spot(q_xy_A=0.8, q_z_A=1.6, intensity=800, width_A=0.006))


def centroid(values: np.ndarray, weights: np.ndarray) -> float:
    weights = np.where(np.isfinite(weights), weights, 0.0)
    return float((values * weights).sum() / weights.sum())


def test_rings_land_within_half_a_bin():
    g = geometry()
    sample = SampleGeometry.grazing(0.15)
    image = simulate(g, sample, Pattern(rings=RINGS, background=2.0), noise=False,
                     apply_solid_angle=False)
    spec = TargetSpec("rad_cut_gid", ranges={"q_gid_pol": (0.3, 2.5)},
                      bins={"q_gid_pol": 440}, cut=(5.0, 175.0))
    result = Converter(g, sample, [spec]).convert(image)["rad_cut_gid"]
    axis = result.axes[0]
    profile = result.intensity[0] - 2.0
    for ring in RINGS:
        near = np.abs(axis.centres - ring.q_A) < 5 * ring.width_A
        found = centroid(axis.centres[near], profile[near])
        assert abs(found - ring.q_A) <= axis.step / 2, (ring, found)


def test_spots_land_within_half_a_bin():
    g = geometry()
    sample = SampleGeometry.grazing(0.15)
    image = simulate(g, sample, Pattern(spots=SPOTS), noise=False, apply_solid_angle=False)
    spec = TargetSpec("img_gid_q", ranges={"q_xy": (-1.6, 1.6), "q_z": (-0.1, 2.0)},
                      bins={"q_xy": 320, "q_z": 210})
    result = Converter(g, sample, [spec]).convert(image)["img_gid_q"]
    qx, qz = result.x_axis.centres, result.y_axis.centres
    step_x, step_z = result.x_axis.step, result.y_axis.step
    grid_x, grid_z = np.meshgrid(qx, qz)
    for spot in SPOTS:
        for sign in (1, -1):  # fibre texture: the mirror spot at −q_xy too
            x0 = sign * spot.q_xy_A
            window = (np.abs(grid_x - x0) < 4 * spot.width_A) & \
                (np.abs(grid_z - spot.q_z_A) < 4 * spot.width_A)
            weights = result.intensity[0][window]
            assert np.isfinite(weights).sum() > 4, "spot fell into the missing wedge"
            assert abs(centroid(grid_x[window], weights) - x0) <= step_x / 2
            assert abs(centroid(grid_z[window], weights) - spot.q_z_A) <= step_z / 2


def test_a_spot_in_the_missing_wedge_never_appears():
    g = geometry()
    sample = SampleGeometry.grazing(0.15)
    image = simulate(g, sample, Pattern(spots=(Spot(0.0, 1.2, 1000, 0.006, mirror=False),)),
                     noise=False, apply_solid_angle=False)
    assert image.max() < 1e-3 * 1000


@pytest.mark.parametrize("mode", ["gid", "transmission"])
def test_flat_reciprocal_intensity_stays_flat(mode):
    """A constant intensity, seen through the solid angle, comes back constant."""
    g = geometry()
    sample = SampleGeometry.grazing(0.15) if mode == "gid" else SampleGeometry.transmission()
    level = 50.0
    image = simulate_function(g, sample, lambda c: level, noise=False, horizon=False,
                              apply_solid_angle=True)
    target = "img_gid_q" if mode == "gid" else "img_q"
    result = Converter(g, sample, [target], flat=g.solid_angle()).convert(image)[target]
    filled = result.counts > 0
    np.testing.assert_allclose(result.intensity[0][filled], level, rtol=1e-6)
    uncorrected = Converter(g, sample, [target]).convert(image)[target]
    assert np.nanstd(uncorrected.intensity[0]) > 0.01 * level  # the correction mattered


def test_noisy_pattern_mean_is_unbiased():
    g = geometry()
    sample = SampleGeometry.grazing(0.15)
    pattern = Pattern(background=20.0)
    frames = np.stack([simulate(g, sample, pattern, seed=s, apply_solid_angle=False,
                                horizon=False)
                       for s in range(4)])
    result = Converter(g, sample, ["img_gid_q"]).convert(frames)["img_gid_q"]
    mean = np.nanmean(result.intensity)
    assert mean == pytest.approx(20.0, rel=0.01)
    # errors agree with the scatter between frames
    filled = result.counts > 3
    scatter = np.nanstd(result.intensity[:, filled], axis=0, ddof=1)
    predicted = np.nanmean(result.errors[:, filled], axis=0)
    ratio = np.nanmedian(scatter / predicted)
    assert 0.85 < ratio < 1.15
