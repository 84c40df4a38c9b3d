"""Draw docs/figures/gi-conventions.png: nxgid's grazing-incidence conventions.

Run from the repository root: ``.venv/bin/python docs/figures/make_conventions.py``.
Left: a simulated detector frame with lines of constant q_xy and q_z, the horizon and the
beam. Right: the same frame converted to q_xy/q_z, with the directions of χ.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from nxgid.conversion import Converter, TargetSpec
from nxgid.demo.conversion import demo_geometry, film_pattern, frame_mean
from nxgid.geometry import SampleGeometry, pixel_coordinates
from nxgid.images.simulate import simulate

geometry = demo_geometry(0.9537, 285.0, "Pilatus2M")
sample = SampleGeometry.grazing(0.15)
image = simulate(geometry, sample, film_pattern(), seed=1).astype(float)
coords = pixel_coordinates(geometry, sample)

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2), dpi=100)
shown = np.where(image > 0, image, np.nan)
left.imshow(shown, origin="lower", norm=LogNorm(1, 300), cmap="Greys")
cs = left.contour(coords.q_xy, levels=[-2, -1, 0, 1, 2], colors="tab:blue", linewidths=1)
left.clabel(cs, fmt="q_xy=%g", fontsize=8)
cs = left.contour(coords.q_z, levels=[0.5, 1, 2, 3], colors="tab:red", linewidths=1,
                  linestyles="dashed")
left.clabel(cs, fmt="q_z=%g", fontsize=8)
left.contour(np.degrees(coords.alpha_f), levels=[0], colors="k", linewidths=1.5)
left.plot(760, 60, "r+", ms=14, mew=2)
left.annotate("direct beam (PONI)", (760, 60), (900, 250), arrowprops={"arrowstyle": "->"})
left.annotate("sample horizon (α_f = 0)", (300, 75), (80, 330),
              arrowprops={"arrowstyle": "->"})
left.set_xlabel("detector column (pyFAI axis 2, lab x)")
left.set_ylabel("detector row (pyFAI axis 1, lab y: up)")
left.set_title("detector frame, origin lower left")

spec = TargetSpec("img_gid_q", ranges={"q_xy": (-2.4, 2.4), "q_z": (-0.2, 2.6)},
                  bins={"q_xy": 600, "q_z": 350})
result = Converter(geometry, sample, [spec]).convert(image)["img_gid_q"]
y, x = result.axes
right.imshow(frame_mean(result.intensity), origin="lower", aspect="auto",
             extent=(x.start, x.stop, y.start, y.stop), norm=LogNorm(1, 300), cmap="viridis")
origin = (0.0, 0.05)
for angle, label, where in ((0, "χ = 0°: +q_xy", (1.25, 0.12)),
                            (90, "χ = 90°: +q_z", (0.08, 1.7)),
                            (135, "χ = 135°", (-1.55, 1.2))):
    rad = np.radians(angle)
    tip = (origin[0] + 1.2 * np.cos(rad), origin[1] + 1.2 * np.sin(rad))
    right.annotate("", tip, origin,
                   arrowprops={"arrowstyle": "-|>", "color": "orangered", "lw": 2})
    right.text(*where, label, color="orangered", fontweight="bold")
right.text(-0.45, 2.45, "missing wedge", color="k")
right.set_xlabel("q_xy (Å⁻¹), + towards increasing detector column (lab +x)")
right.set_ylabel("q_z (Å⁻¹), + above the sample horizon")
right.set_title("img_gid_q: χ = atan2(q_z, q_xy)")
fig.tight_layout()
out = Path(__file__).with_name("gi-conventions.png")
fig.savefig(out)
print(f"wrote {out}")
