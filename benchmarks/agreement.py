"""How exactly nxgid's binned maps agree with pyFAI's on the same grid (the figures of
docs/conversion.md, "Agreement with pyFAI"): the share of bins with equal intensity
(to 1e-4), and whether the others hold a different number of pixels.

    .venv/bin/python benchmarks/agreement.py
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np

from nxgid.conversion import Converter, TargetSpec
from nxgid.geometry import SampleGeometry, pixel_coordinates

# the tests' own geometries and pyFAI integrators
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
_tests = importlib.import_module("test_conversion")
azimuthal_integrator = _tests.azimuthal_integrator
fiber_integrator = _tests.fiber_integrator
pilatus300k = _tests.pilatus300k


def report(tag: str, ours, ref) -> None:
    ref_counts, ref_values = np.asarray(ref.count), np.asarray(ref.intensity)
    both = (ours.counts > 0) & (ref_counts > 0)
    equal = np.isclose(ours.intensity[0][both], ref_values[both], rtol=1e-4, atol=0)
    same = np.isclose(ours.counts[both], ref_counts[both], rtol=1e-9, atol=1e-12)
    print(f"{tag}: {both.sum()} bins filled in both, {(ours.counts > 0).sum() - both.sum()}"
          f" in nxgid only, {(ref_counts > 0).sum() - both.sum()} in pyFAI only; "
          f"{100 * equal.mean():.3f} % equal to 1e-4; {100 * same.mean():.3f} % with the "
          f"same pixel count; unequal bins with the same pixel count: {(same & ~equal).sum()}")


def main() -> None:
    geometry = pilatus300k(rot1_rad=0.0, rot2_rad=0.0, rot3_rad=0.0, poni1_m=0.05)
    data = np.random.default_rng(1).poisson(200, geometry.shape).astype(np.float64)
    spec = TargetSpec("img_pol", ranges={"q_pol": (0.0, 3.0), "ang_pol": (-180, 180)},
                      bins={"q_pol": 150, "ang_pol": 90})
    for mode, method in (("none", ("no", "histogram", "cython")),
                         ("all", ("bbox", "csr", "cython"))):
        ours = Converter(geometry, SampleGeometry.transmission(), [spec],
                         pixel_splitting=mode).convert(data)["img_pol"]
        ref = azimuthal_integrator(geometry).integrate2d(
            data, 150, 90, unit="q_A^-1", radial_range=(0.0, 3.0),
            azimuth_range=(-180, 180), correctSolidAngle=False, polarization_factor=None,
            mask=geometry.detector_mask, method=method)
        report(f"img_pol, splitting {mode} vs pyFAI {method[0]}", ours, ref)
    geometry = pilatus300k()
    incidence = 0.2
    sample = SampleGeometry.grazing(incidence)
    data = np.random.default_rng(2).poisson(150, geometry.shape).astype(np.float64)
    coords = pixel_coordinates(geometry, sample)
    ip = (float(coords.q_xy.min()) - 0.01, float(coords.q_xy.max()) + 0.01)
    oop = (float(coords.q_z.min()) - 0.01, float(coords.q_z.max()) + 0.01)
    spec = TargetSpec("img_gid_q", ranges={"q_xy": ip, "q_z": oop},
                      bins={"q_xy": 160, "q_z": 170})
    ours = Converter(geometry, sample, [spec], pixel_splitting="none").convert(data)
    ref = fiber_integrator(geometry).integrate2d_grazing_incidence(
        data, npt_ip=160, unit_ip="qip_A^-1", ip_range=ip, npt_oop=170,
        unit_oop="qoop_A^-1", oop_range=oop, incident_angle=math.radians(incidence),
        tilt_angle=0.0, sample_orientation=1, correctSolidAngle=False,
        polarization_factor=None, mask=geometry.detector_mask,
        method=("no", "histogram", "cython"))
    report("img_gid_q, splitting none vs pyFAI histogram", ours["img_gid_q"], ref)


if __name__ == "__main__":
    main()
