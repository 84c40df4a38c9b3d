"""Compression of reduced maps: speed, size, and who can read them.

Converts simulated frames of the demo's detector (Pilatus 2M, a textured film with
Poisson noise) with the default bins, then writes the img_gid_q intensity and errors
(float32 with NaN in the empty bins, one frame per chunk, as nxgid writes them) with
every candidate filter, and measures the write time, the size and the read time.
Readability is checked by really reading: plain h5py in a fresh process without
hdf5plugin (what pygid and the mlgid tools have unless something else imports it),
h5py with hdf5plugin, and h5wasm (the HDF5 library under H5Web) when Node.js and the npm
package are available (``npm install h5wasm`` in a folder given as --h5wasm DIR; the
reading script is copied there).

    .venv/bin/python benchmarks/bench_compression.py [--frames 16] [--h5wasm DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CANDIDATES = {
    "none": {},
    "gzip-1": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    "gzip-4": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
    "lzf": {"compression": "lzf", "shuffle": True},
    "bitshuffle-lz4": "bitshuffle-lz4",
    "bitshuffle-zstd": "bitshuffle-zstd",
}

_PLAIN_READ = """
import sys, json, h5py
out = {}
with h5py.File(sys.argv[1], "r") as f:
    for name in f:
        try:
            value = f[name][0]
            out[name] = float(value[value == value].sum())
        except Exception as exc:
            out[name] = "error: " + str(exc).splitlines()[0]
print(json.dumps(out))
"""


def options(candidate) -> dict:
    if isinstance(candidate, str):
        import hdf5plugin

        return dict(hdf5plugin.Bitshuffle(cname=candidate.split("-")[1]))
    return dict(candidate)


def maps(frames: int) -> tuple[np.ndarray, np.ndarray]:
    from nxgid.conversion import Converter
    from nxgid.demo.conversion import demo_geometry, film_pattern
    from nxgid.geometry import SampleGeometry
    from nxgid.images.simulate import simulate_stack

    geometry = demo_geometry(0.95, 285.0, "Pilatus2M")
    sample = SampleGeometry.grazing(0.15)
    raw = simulate_stack(geometry, sample, film_pattern(), frames=frames, seed=4)
    result = Converter(geometry, sample, ["img_gid_q"]).convert(raw)["img_gid_q"]
    return result.intensity.astype(np.float32), result.errors.astype(np.float32)


def measure(folder: Path, intensity: np.ndarray, errors: np.ndarray) -> dict:
    import h5py
    import hdf5plugin  # noqa: F401  (reads the bitshuffle files back)

    rows = {}
    for name, candidate in CANDIDATES.items():
        path = folder / f"{name}.h5"
        start = time.perf_counter()
        with h5py.File(path, "w") as f:
            for label, values in (("intensity", intensity), ("errors", errors)):
                f.create_dataset(label, data=values, chunks=(1, *values.shape[1:]),
                                 **options(candidate))
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        with h5py.File(path, "r") as f:
            back = f["intensity"][()]
            f["errors"][()]
        read_s = time.perf_counter() - start
        assert np.array_equal(back, intensity, equal_nan=True), name
        rows[name] = {"write_ms_per_frame": 1e3 * write_s / len(intensity),
                      "read_ms_per_frame": 1e3 * read_s / len(intensity),
                      "bytes_per_frame": path.stat().st_size / len(intensity)}
    return rows


def _verdict(found, expected: float) -> str:
    if isinstance(found, str):
        return found
    return "ok" if abs(found - expected) <= 1e-4 * abs(expected) else \
        f"wrong values (sum {found:.4g}, expected {expected:.4g})"


def readability(folder: Path, h5wasm: Path | None, expected: float) -> dict:
    plain: dict[str, str] = {}
    for name in CANDIDATES:
        env = {k: v for k, v in os.environ.items() if k != "HDF5_PLUGIN_PATH"}
        done = subprocess.run([sys.executable, "-c", _PLAIN_READ, str(folder / f"{name}.h5")],
                              capture_output=True, text=True, env=env, check=False)
        plain[name] = _verdict(json.loads(done.stdout)["intensity"], expected) \
            if done.returncode == 0 else f"failed: {done.stderr.strip().splitlines()[-1]}"
    wasm: dict[str, str] = {}
    node = shutil.which("node")
    if h5wasm is not None and node and (h5wasm / "node_modules" / "h5wasm").is_dir():
        # an ES module finds its packages from where it lies: copied next to them
        script = h5wasm / "nxgid_h5wasm_read.mjs"
        shutil.copy(Path(__file__).with_name("h5wasm_read.mjs"), script)
        for name in CANDIDATES:
            done = subprocess.run([node, str(script), str(folder / f"{name}.h5"),
                                   "intensity"], capture_output=True, text=True,
                                  cwd=h5wasm, check=False)
            try:
                row = json.loads(done.stdout.strip().splitlines()[-1])
                wasm[name] = _verdict(row["sum"], expected) if row["ok"] else \
                    f"error: {row['error']}"
            except (ValueError, IndexError):
                wasm[name] = f"failed: {done.stderr.strip()[:120]}"
    return {"h5py without hdf5plugin": plain, "h5wasm (H5Web)": wasm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--h5wasm", type=Path, default=None,
                        help="folder where `npm install h5wasm` was run")
    args = parser.parse_args()
    intensity, errors = maps(args.frames)
    print(f"img_gid_q, {args.frames} frames of {intensity.shape[1]} × {intensity.shape[2]} "
          f"bins ({intensity[0].nbytes / 1e6:.1f} MB each, intensity and errors), "
          f"{np.isnan(intensity).mean() * 100:.0f} % empty bins")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = measure(folder, intensity, errors)
        first = intensity[0]
        readers = readability(folder, args.h5wasm, float(first[np.isfinite(first)].sum()))
    raw = rows["none"]["bytes_per_frame"]
    print(f"{'filter':16} {'write ms/frame':>15} {'read ms/frame':>14} {'MB/frame':>9} "
          f"{'ratio':>6}  plain h5py / h5wasm")
    for name, row in rows.items():
        plain = readers["h5py without hdf5plugin"].get(name, "?")
        wasm = readers["h5wasm (H5Web)"].get(name, "not tried")
        print(f"{name:16} {row['write_ms_per_frame']:15.1f} {row['read_ms_per_frame']:14.1f} "
              f"{row['bytes_per_frame'] / 1e6:9.2f} {raw / row['bytes_per_frame']:6.2f}  "
              f"{plain} / {wasm}")


if __name__ == "__main__":
    main()
