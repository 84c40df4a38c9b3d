"""The simulator is ground truth for the conversion tests, so it is checked against the
per-pixel coordinates independently: positions to within a pixel's q-step, the horizon,
Poisson statistics, gaps, seeds and dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nxgid.errors import NxgidError
from nxgid.geometry import DetectorGeometry, SampleGeometry, pixel_coordinates
from nxgid.geometry.coordinates import per_pixel_corners
from nxgid.images.simulate import (
    HORIZON_WIDTH_DEG,
    Pattern,
    Ring,
    Spot,
    simulate,
    simulate_function,
    simulate_stack,
)

GI = SampleGeometry.grazing(0.2)
TRANSMISSION = SampleGeometry.transmission()
#: Noise-free, no solid angle: the frame is the sample's intensity itself.
PLAIN = {"noise": False, "apply_solid_angle": False}


@pytest.fixture(scope="module")
def geometry() -> DetectorGeometry:
    """300 × 260 pixels of 172 µm at 0.2 m, λ = 1 Å; the beam 30 rows above the bottom
    edge and centred left–right, so most of the detector is above the sample horizon."""
    return DetectorGeometry.from_parameters(
        distance_m=0.2, wavelength_A=1.0, beam_center_px=(30.0, 130.0),
        pixel_size_m=(172e-6, 172e-6), shape=(300, 260))


def _span(corner_values: np.ndarray) -> np.ndarray:
    """The range of a coordinate over each pixel's four corners: its q-step."""
    corner_values = per_pixel_corners(corner_values)
    return corner_values.max(axis=-1) - corner_values.min(axis=-1)


# --- positions -------------------------------------------------------------------------

@pytest.mark.parametrize("sample", [GI, TRANSMISSION], ids=["gi", "transmission"])
def test_ring_peaks_at_two_pi_over_d(geometry, sample):
    ring = Ring(d_spacing_A=8.0, intensity=100.0, width_A=0.004)
    frame = simulate(geometry, sample, Pattern(rings=(ring,)), horizon=False, **PLAIN)
    q = pixel_coordinates(geometry, sample).q
    span = _span(pixel_coordinates(geometry, sample, corners=True).q)
    q0 = 2 * math.pi / 8.0

    best = np.unravel_index(np.argmax(frame), frame.shape)
    assert abs(q[best] - q0) <= span[best] / 2
    assert 0.8 * ring.intensity <= frame[best] <= ring.intensity  # intensity = peak height
    # in every column the ring crosses, its brightest pixel is the one nearest 2π/d
    rows = np.argmax(frame[40:], axis=0) + 40
    columns = np.arange(frame.shape[1])
    crossed = frame[rows, columns] > 0.5 * ring.intensity
    assert crossed.sum() > 100
    offset = np.abs(q[rows, columns] - q0)[crossed]
    assert np.all(offset <= span[rows, columns][crossed] / 2)
    # and the profile is a Gaussian in |q| of the given width
    expected = ring.intensity * np.exp(-((q - q0) ** 2) / (2 * ring.width_A**2))
    np.testing.assert_allclose(frame, expected, atol=1e-6 * ring.intensity)


@pytest.mark.parametrize("mirror", [True, False])
def test_spot_lands_at_its_q_xy_q_z(geometry, mirror):
    spot = Spot(q_xy_A=0.3, q_z_A=0.5, intensity=100.0, width_A=0.01, mirror=mirror)
    frame = simulate(geometry, GI, Pattern(spots=(spot,)), **PLAIN)
    coords = pixel_coordinates(geometry, GI)
    corners = pixel_coordinates(geometry, GI, corners=True)
    span_xy, span_z = _span(corners.q_xy), _span(corners.q_z)

    for side, q_xy in ((coords.q_xy > 0, 0.3), (coords.q_xy < 0, -0.3)):
        half = np.where(side, frame, 0.0)
        if q_xy < 0 and not mirror:
            assert not half.any()
            continue
        best = np.unravel_index(np.argmax(half), frame.shape)
        assert abs(coords.q_xy[best] - q_xy) <= span_xy[best]
        assert abs(coords.q_z[best] - 0.5) <= span_z[best]
        assert half[best] > 0.5 * spot.intensity


def test_spot_in_the_missing_wedge_never_reaches_the_detector(geometry):
    coords = pixel_coordinates(geometry, GI)
    near = np.abs(coords.q_z - 1.0) < 0.01
    # the Ewald sphere leaves the q_z axis: |q_xy| ≥ q²/2k ≈ 0.08 Å⁻¹ at q_z = 1 Å⁻¹
    assert np.abs(coords.q_xy[near]).min() > 0.07
    frame = simulate(geometry, GI, Pattern(spots=(Spot(0.0, 1.0, 100.0, width_A=0.01),)),
                     **PLAIN)
    assert not frame.any()


def test_transmission_spots_are_placed_in_q_x_q_y(geometry):
    frame = simulate(geometry, TRANSMISSION, Pattern(spots=(Spot(0.3, 0.5, 100.0),)),
                     **PLAIN)
    coords = pixel_coordinates(geometry, TRANSMISSION)
    best = np.unravel_index(np.argmax(np.where(coords.q_x > 0, frame, 0)), frame.shape)
    assert abs(coords.q_x[best] - 0.3) < 0.005
    assert abs(coords.q_y[best] - 0.5) < 0.005


# --- horizon, Yoneda band ---------------------------------------------------------------

def test_nothing_below_the_horizon_in_grazing_incidence(geometry):
    pattern = Pattern(rings=(Ring(20.0, 50.0, width_A=0.02),), background=10.0)
    alpha_f = pixel_coordinates(geometry, GI).alpha_f
    below, above = alpha_f < 0, alpha_f > math.radians(HORIZON_WIDTH_DEG)
    assert below.sum() > 1000 and above.sum() > 10_000

    gi = simulate(geometry, GI, pattern, **PLAIN)
    assert np.all(gi[below] == 0)
    assert np.all(gi[above] >= 10.0)
    counts = simulate(geometry, GI, pattern, seed=3)
    assert counts[below].sum() == 0
    assert counts[above].mean() > 9
    no_horizon = simulate(geometry, GI, pattern, horizon=False, **PLAIN)
    assert np.all(no_horizon[below] >= 10.0)

    transmission = simulate(geometry, TRANSMISSION, pattern, **PLAIN)
    assert np.all(transmission[below] >= 10.0)


def test_yoneda_band_peaks_at_the_critical_angle(geometry):
    critical_deg = 0.3
    frame = simulate(geometry, GI, Pattern(background=1.0), critical_angle_deg=critical_deg,
                     **PLAIN)
    alpha_f = pixel_coordinates(geometry, GI).alpha_f
    step = _span(pixel_coordinates(geometry, GI, corners=True).alpha_f)

    best = np.unravel_index(np.argmax(frame), frame.shape)
    assert abs(alpha_f[best] - math.radians(critical_deg)) <= step[best]
    assert 2.0 < frame[best] < 4.0
    assert np.all(frame[alpha_f <= 0] == 0)
    low = (alpha_f > 0) & (alpha_f < math.radians(critical_deg / 4))
    assert low.any() and np.all(frame[low] < 0.5)
    high = alpha_f > math.radians(10)
    assert high.any()
    np.testing.assert_allclose(frame[high], 1.0, rtol=3e-3)
    with pytest.raises(NxgidError, match="grazing incidence only"):
        simulate(geometry, TRANSMISSION, Pattern(background=1.0), critical_angle_deg=0.2)


# --- counting ---------------------------------------------------------------------------

def test_poisson_noise_has_poisson_statistics(geometry):
    pattern = Pattern(rings=(Ring(8.0, 200.0, width_A=0.02),), background=20.0)
    expected = simulate(geometry, GI, pattern, noise=False)
    counts = simulate(geometry, GI, pattern, seed=11)
    lit = expected > 0
    assert lit.sum() > 50_000
    e, c = expected[lit], counts[lit].astype(float)
    assert c.mean() == pytest.approx(e.mean(), rel=0.01)
    z = (c - e) / np.sqrt(e)
    assert abs(z.mean()) < 0.02
    assert z.var() == pytest.approx(1.0, abs=0.03)
    # a flat patch: variance ≈ mean
    flat = simulate(geometry, TRANSMISSION, Pattern(background=20.0), apply_solid_angle=False,
                    seed=5).astype(float)
    assert flat.mean() == pytest.approx(20.0, rel=0.01)
    assert flat.var() == pytest.approx(flat.mean(), rel=0.03)


def test_gaps_of_a_real_pilatus_read_zero():
    geometry = DetectorGeometry.from_parameters(
        detector="Pilatus300k", distance_m=0.3, wavelength_A=1.0, beam_center_px=(600, 240))
    mask = geometry.detector_mask
    assert mask is not None and mask.any() and not mask.all()
    pattern = Pattern(background=10.0)

    expected = simulate(geometry, TRANSMISSION, pattern, noise=False)
    assert np.all(expected[mask] == 0) and np.all(expected[~mask] > 8)
    counts = simulate(geometry, TRANSMISSION, pattern)
    assert np.all(counts[mask] == 0)
    assert (counts[~mask] > 0).mean() > 0.999
    unmasked = simulate(geometry, TRANSMISSION, pattern, mask_gaps=False, noise=False)
    assert np.all(unmasked[mask] > 8)


def test_a_seed_reproduces_a_frame(geometry):
    pattern = Pattern(rings=(Ring(8.0, 30.0),), background=2.0)
    first = simulate(geometry, GI, pattern, seed=42)
    np.testing.assert_array_equal(first, simulate(geometry, GI, pattern, seed=42))
    assert not np.array_equal(first, simulate(geometry, GI, pattern, seed=43))


def test_dtypes(geometry):
    pattern = Pattern(background=7.3)
    assert simulate(geometry, GI, pattern).dtype == np.uint32
    assert simulate(geometry, GI, pattern, noise=False).dtype == np.float64
    assert simulate(geometry, GI, pattern, dtype=np.float32).dtype == np.float32
    rounded = simulate(geometry, TRANSMISSION, pattern, apply_solid_angle=False, noise=False,
                       dtype=np.int32)
    assert rounded.dtype == np.int32 and np.all(rounded == 7)
    saturated = simulate(geometry, TRANSMISSION, Pattern(background=1e6), dtype=np.uint16)
    assert saturated.dtype == np.uint16 and np.all(saturated == 65535)
    with pytest.raises(NxgidError, match="dtype"):
        simulate(geometry, GI, pattern, dtype=bool)


# --- known intensity functions ----------------------------------------------------------

def test_flat_reciprocal_space_is_recorded_times_the_solid_angle(geometry):
    solid_angle = geometry.solid_angle()
    assert solid_angle.min() < 0.95  # the test would not see a missing factor otherwise
    frame = simulate_function(geometry, TRANSMISSION, lambda c: 7.5, noise=False)
    np.testing.assert_allclose(frame, 7.5 * solid_angle, rtol=1e-12)

    gi = simulate_function(geometry, GI, lambda c: 7.5, noise=False, exposure=2.0)
    alpha_f = pixel_coordinates(geometry, GI).alpha_f
    above = alpha_f > math.radians(HORIZON_WIDTH_DEG)
    np.testing.assert_allclose(gi[above], 15.0 * solid_angle[above], rtol=1e-12)
    assert np.all(gi[alpha_f <= 0] == 0)

    polarization = geometry.pyfai.polarization(factor=0.9)
    assert polarization.min() < 0.99
    polarized = simulate_function(geometry, TRANSMISSION, lambda c: 7.5, noise=False,
                                  polarization_factor=0.9)
    np.testing.assert_allclose(polarized, 7.5 * solid_angle * polarization, rtol=1e-6)


def test_an_intensity_function_sees_the_pixel_coordinates(geometry):
    coords = pixel_coordinates(geometry, GI)
    frame = simulate_function(geometry, GI, lambda c: 10 + 100 * c.q_xy**2, horizon=False,
                              **PLAIN)
    np.testing.assert_allclose(frame, 10 + 100 * coords.q_xy**2, rtol=1e-12)
    pattern = Pattern(rings=(Ring(8.0, 50.0),), spots=(Spot(0.3, 0.5, 20.0),), background=1.0)
    np.testing.assert_allclose(
        simulate(geometry, GI, pattern, horizon=False, **PLAIN),
        pattern.evaluate(np.hypot(coords.q_xy, coords.q_z), coords.q_xy, coords.q_z),
        rtol=1e-9)
    with pytest.raises(NxgidError, match="negative"):
        simulate_function(geometry, GI, lambda c: c.q_z, noise=False)


# --- stacks, validation -----------------------------------------------------------------

def test_a_stack_is_frames_with_successive_seeds(geometry):
    pattern = Pattern(rings=(Ring(8.0, 30.0),), background=2.0)
    stack = simulate_stack(geometry, GI, pattern, exposure=[1.0, 2.0, 3.0], seed=5)
    assert stack.shape == (3, *geometry.shape) and stack.dtype == np.uint32
    for i, exposure in enumerate([1.0, 2.0, 3.0]):
        np.testing.assert_array_equal(
            stack[i], simulate(geometry, GI, pattern, exposure=exposure, seed=5 + i))

    patterns = [Pattern(rings=(Ring(8.0, 30.0 * (i + 1)),)) for i in range(2)]
    clean = simulate_stack(geometry, GI, patterns, noise=False)
    np.testing.assert_allclose(clean[1], 2 * clean[0])
    assert simulate_stack(geometry, GI, pattern, frames=4, seed=None).shape[0] == 4
    with pytest.raises(NxgidError, match="inconsistent"):
        simulate_stack(geometry, GI, patterns, exposure=[1.0, 2.0, 3.0])
    with pytest.raises(NxgidError, match="give frames"):
        simulate_stack(geometry, GI, pattern)


def test_invalid_patterns_are_refused():
    with pytest.raises(NxgidError, match="d-spacing"):
        Ring(0.0)
    with pytest.raises(NxgidError, match="width"):
        Spot(0.1, 0.2, width_A=0.0)
    with pytest.raises(NxgidError, match="intensity"):
        Spot(0.1, 0.2, intensity=-1.0)
    with pytest.raises(NxgidError, match="background"):
        Pattern(background=-1.0)
    pattern = Pattern(rings=[Ring(5.0)], spots=[Spot(0.1, 0.2)])  # type: ignore[arg-type]
    assert isinstance(pattern.rings, tuple) and hash(pattern) == hash(pattern)
