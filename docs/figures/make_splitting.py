"""Make docs/figures/splitting.png and print the figures behind nxgid's choice of pixel
splitting: the missing wedge at bins four times finer than a pixel with each splitting
mode and with pyFAI's bounding-box splitting (with and without its experimental
missing-wedge mask), the share of wedge bins that receive intensity, the empty bins of
the covered region, and map entries per pixel with the default bins.

    python docs/figures/make_splitting.py [OUTPUT.png]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from nxgid.conversion import Converter, TargetSpec
from nxgid.conversion.coverage import covered_bins
from nxgid.demo.conversion import demo_geometry
from nxgid.geometry import SampleGeometry

RANGES = {"q_xy": (-0.2, 0.2), "q_z": (0.2, 1.4)}
BINS = {"q_xy": 400, "q_z": 300}


def wedge_mask(q_xy, q_z, k, incidence_deg, margin):
    alpha_i = math.radians(incidence_deg)
    alpha_f = np.arcsin(q_z / k - math.sin(alpha_i))
    half = k * np.abs(np.cos(alpha_f) - math.cos(alpha_i)) - margin
    return np.abs(q_xy)[np.newaxis, :] < half[:, np.newaxis]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pyFAI.integrator.fiber import FiberIntegrator

    from nxgid.plot.results import save_figure

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name(
        "splitting.png")
    geometry = demo_geometry(0.95, 285.0, "Pilatus2M")
    incidence = 0.15
    sample = SampleGeometry.grazing(incidence)
    frame = np.random.default_rng(1).poisson(1000, geometry.shape).astype(np.float64)
    spec = TargetSpec("img_gid_q", ranges=RANGES, bins=BINS)
    k = 2 * math.pi / geometry.wavelength_A
    maps, lines = {}, []
    for mode in ("none", "auto", "all"):
        converter = Converter(geometry, sample, [spec], pixel_splitting=mode)
        result = converter.convert(frame)["img_gid_q"]
        covered = covered_bins(converter.targets[0], converter.footprints(corners=True),
                               ~converter.mask)
        default = Converter(geometry, sample, ["img_gid_q"], pixel_splitting=mode)
        entries = default.binmaps()["img_gid_q"].pixels.size / (~default.mask).sum()
        maps[f"nxgid, pixel splitting {mode}"] = (result.intensity[0], result.counts > 0)
        lines.append((mode, entries))
    cfg = geometry.pyfai
    fiber = FiberIntegrator(dist=cfg.dist, poni1=cfg.poni1, poni2=cfg.poni2, rot1=cfg.rot1,
                            rot2=cfg.rot2, rot3=cfg.rot3, detector=geometry.detector,
                            wavelength=cfg.wavelength)
    for name, extra in (("pyFAI 2026.9, bounding-box splitting", {}),
                        ("pyFAI, bounding box + use_missing_wedge", {"use_missing_wedge": True})):
        reference = fiber.integrate2d_grazing_incidence(
            frame, npt_ip=BINS["q_xy"], unit_ip="qip_A^-1", ip_range=RANGES["q_xy"],
            npt_oop=BINS["q_z"], unit_oop="qoop_A^-1", oop_range=RANGES["q_z"],
            incident_angle=math.radians(incidence), correctSolidAngle=False,
            polarization_factor=None, mask=geometry.detector_mask,
            method=("bbox", "csr", "cython"), **extra)
        counts = np.asarray(reference.count)
        maps[name] = (np.where(counts > 0, np.asarray(reference.intensity), np.nan),
                      counts > 0)
    axis = converter.targets[0].axes
    q_xy, q_z = axis[0].centres, axis[1].centres
    pixel = k * 172e-6 / 0.285
    wedge = wedge_mask(q_xy, q_z, k, incidence, pixel)
    fig, axes = plt.subplots(1, len(maps), figsize=(20, 5.4), dpi=100, sharey=True)
    for ax, (name, (values, filled)) in zip(axes, maps.items(), strict=True):
        ax.imshow(values, origin="lower", aspect="auto", cmap="viridis", vmin=900,
                  vmax=1100, interpolation="nearest",
                  extent=(*RANGES["q_xy"], *RANGES["q_z"]))
        leak = (filled & wedge).sum() / wedge.sum()
        holes = (covered & ~filled).sum()
        ax.set_title(f"{name}\n{100 * leak:.0f} % of the wedge filled\n"
                     f"{holes} empty bins in the covered region", fontsize=9)
        ax.set_xlabel("q_xy (Å⁻¹)")
        print(f"{name}: wedge bins with intensity {100 * leak:.1f} %, empty bins of the "
              f"covered region {holes} of {covered.sum()}")
    axes[0].set_ylabel("q_z (Å⁻¹)")
    fig.suptitle("Pilatus 2M at 285 mm, uniform image (1000 counts), bins of 0.001 Å⁻¹: "
                 "a pixel is 0.0038 Å⁻¹ wide", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    print(f"{out}")
    for mode, entries in lines:
        print(f"default bins, pixel splitting {mode}: {entries:.2f} map entries per "
              "valid pixel")

if __name__ == "__main__":
    main()
