"""Make docs/figures/default-bins.png: the previous default bins against the current
ones on the demo's detector (a Pilatus 2M at 285 mm, beam low on the detector), for a
uniform image, where every empty bin shows.

    python docs/figures/make_bins.py [OUTPUT.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from nxgid.demo.bins_figure import compare_default_bins
from nxgid.demo.conversion import demo_geometry
from nxgid.geometry import SampleGeometry


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name(
        "default-bins.png")
    geometry = demo_geometry(0.95, 285.0, "Pilatus2M")
    frame = np.random.default_rng(0).poisson(1000, geometry.shape).astype(np.float64)
    result = compare_default_bins(geometry, SampleGeometry.grazing(0.15), frame, out,
                                  zoom=((0.4, 0.7), (0.9, 1.1)))
    print(f"{result.path}: before {result.before[0]} with {result.before[1]} empty bins, "
          f"after {result.after[0]} with {result.after[1]}")


if __name__ == "__main__":
    main()
