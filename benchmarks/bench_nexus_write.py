"""Writing NeXus files: what compression costs and saves, against pygid's uncompressed file.

    python benchmarks/bench_nexus_write.py [--frames 100] [--repeat 3] [--quick] [--json F]
                                           [--pattern film|dense] [--no-pygid]

One synthetic Pilatus 2M stack (``nxgid.images.simulate.simulate_stack`` of
``nxgid.demo.conversion.film_pattern()``, uint32, geometry ``benchmarks/pilatus2m_gid.poni``,
α_i = 0.15°) is written to an HDF5 file (``/entry/data/data``, one frame per chunk, not
compressed), and every tool converts that same file into a NeXus file on the same grid as
``bench_conversion.py``: ``img_gid_q``, 1277 q_xy × 1450 q_z bins of 0.0036 Å⁻¹, no
intensity corrections, the detector's gap mask.

* nxgid: exactly what ``nxgid convert`` does (``nxgid.nexus.convert.run_convert``, 16-frame
  blocks), for every compression of the writer, with and without errors; the pixel→bin
  map comes from the disk cache, warmed beforehand. A "convert only" row streams the same
  frames through ``Converter.convert_blocks(reuse_outputs=True)`` and writes nothing, so
  end-to-end minus that row is the cost of writing.
* pygid (only where it is installed, i.e. ``.venv-bench``):
  ``Conversion(matrix=maps, path=h5, dataset=...).det2q_gid(save_result=True,
  path_to_save=...)``, which batches the file (``batch_size`` frames at a time, 32 by
  default) and appends each batch to one uncompressed .nxs file; its coordinate maps are
  built beforehand, not timed.

Every run writes a new file; its time ends when the file is closed, i.e. in the page
cache. The file is then fsync'ed outside the timing (reported in its own column), so that
one run's write-back to the disk does not land in the next.
The measurements are interleaved (repeat 1 of every configuration, then repeat 2, …) so
that a slow spell of the machine is spread over all of them; times are medians (and
minima) over ``--repeat``. Read times are for the files just written, so they come from
the page cache: they measure decompression and h5py, not the disk.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Shared with the conversion benchmark: PONI, α_i, the q grid and pygid's axis arguments.
from bench_conversion import (  # noqa: E402
    INCIDENCE_DEG,
    PONI,
    Q_BINS,
    Q_RANGES,
    cpu_ticks,
    git_commit,
    machine,
    pygid_axis,
    q_spec,
)

COMPRESSIONS = ("none", "bitshuffle-lz4", "bitshuffle-zstd", "gzip")
RESULT = "img_gid_q"
DATASET = "/entry/data/data"
MB = 1e6  # file sizes in MB (10⁶ bytes), as in the issue
SEED = 0


@dataclass
class Config:
    tool: str                   # "nxgid", "nxgid (no file)", "pygid"
    compression: str            # writer compression; "—" where nothing is written
    errors: bool
    times: list[float] = field(default_factory=list)   # seconds per frame
    size: int | None = None     # bytes of the output file
    path: Path | None = None
    read_all: list[float] = field(default_factory=list)  # seconds
    read_one: list[float] = field(default_factory=list)  # seconds
    fsync: list[float] = field(default_factory=list)     # seconds, after each run
    storage: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.tool} {self.compression} errors={'yes' if self.errors else 'no'}"

    @property
    def ms(self) -> float:
        return float(np.median(self.times)) * 1e3

    @property
    def ms_min(self) -> float:
        return float(np.min(self.times)) * 1e3


INFO: dict[str, object] = {}


# --- input ---------------------------------------------------------------------------

def make_input(path: Path, frames: int, pattern_name: str = "film", chunk: int = 20) -> None:
    """uint32 frames, *chunk* at a time, into ``/entry/data/data`` (one frame per HDF5
    chunk, uncompressed); frame i is seeded with SEED + i. *pattern_name*: "film" is
    ``nxgid.demo.conversion.film_pattern()`` (sparse: background 3 counts); "dense" is
    bench_conversion.py's pattern (background 40 counts), to see how the sizes depend on
    the counts."""
    import h5py

    from nxgid.demo.conversion import film_pattern
    from nxgid.geometry import DetectorGeometry, SampleGeometry
    from nxgid.images.simulate import simulate_stack

    if pattern_name == "film":
        pattern = film_pattern()
    else:
        from bench_conversion import pattern as dense_pattern

        pattern = dense_pattern()
    geometry = DetectorGeometry.from_poni(PONI)
    sample = SampleGeometry.grazing(INCIDENCE_DEG)
    total = zeros = 0
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(DATASET, shape=(frames, *geometry.shape), dtype=np.uint32,
                              chunks=(1, *geometry.shape))
        for start in range(0, frames, chunk):
            stop = min(frames, start + chunk)
            block = simulate_stack(geometry, sample, pattern, frames=stop - start,
                                   seed=SEED + start, dtype=np.uint32)
            ds[start:stop] = block
            total += int(block.sum(dtype=np.int64))
            zeros += int((block == 0).sum())
    pixels = frames * geometry.shape[0] * geometry.shape[1]
    INFO["input"] = {"pattern": pattern_name, "shape": [frames, *geometry.shape], "dtype": "uint32",
                     "mean_counts_per_pixel": round(total / pixels, 2),
                     "zero_pixels_pct": round(100 * zeros / pixels, 1),
                     "file_MB": round(path.stat().st_size / MB, 1)}


# --- nxgid ---------------------------------------------------------------------------

def nxgid_job(h5: Path, out: Path, compression: str, errors: bool, cache: Path,
              block_frames: int):
    from nxgid.conversion import TargetSpec
    from nxgid.conversion.corrections import Corrections
    from nxgid.nexus.convert import ConvertJob

    spec = q_spec()
    return ConvertJob(inputs=[str(h5)], output=out, poni=PONI,
                      targets=[TargetSpec(RESULT, ranges=dict(spec.ranges),
                                          bins=dict(spec.bins))],
                      incidence_deg=[INCIDENCE_DEG], corrections=Corrections.none(),
                      errors=errors, compression=compression, mode="create",
                      cache_dir=cache, block_frames=block_frames)


def nxgid_convert(h5: Path, out: Path, compression: str, errors: bool, cache: Path,
                  block_frames: int) -> int:
    from nxgid.nexus.convert import run_convert

    out.unlink(missing_ok=True)
    return run_convert(nxgid_job(h5, out, compression, errors, cache, block_frames)).frames


def nxgid_convert_only(h5: Path, errors: bool, cache: Path, block_frames: int) -> int:
    """``run_convert`` without the writer: same geometry, series, Converter (maps from the
    disk cache) and block loop; the blocks are dropped."""
    from nxgid.conversion import Converter
    from nxgid.conversion.corrections import Corrections
    from nxgid.geometry import DetectorGeometry, SampleGeometry
    from nxgid.images.series import open_series

    geometry = DetectorGeometry.from_poni(PONI)
    series = open_series([str(h5)])
    n = len(series)
    sample = SampleGeometry.grazing(INCIDENCE_DEG)
    converter = Converter(geometry, sample, [q_spec()], corrections=Corrections.none(),
                          incidence_angles_deg=[INCIDENCE_DEG], errors=errors,
                          cache_dir=cache)
    blocks = (stack for stack, _ in series.iter_blocks(block_frames))
    done = 0
    for results in converter.convert_blocks(blocks, block_frames=block_frames,
                                            incidence_deg=[INCIDENCE_DEG] * n,
                                            reuse_outputs=True):
        done += next(iter(results.values())).frames
    return done


def nxgid_reads(config: Config, frame: int, repeat: int) -> None:
    from nxgid.nexus.reader import NexusFile

    for _ in range(repeat):
        t0 = time.perf_counter()
        NexusFile(config.path).load(RESULT)
        config.read_all.append(time.perf_counter() - t0)
    for _ in range(max(5, 3 * repeat)):
        t0 = time.perf_counter()
        NexusFile(config.path).result(RESULT)[frame]
        config.read_one.append(time.perf_counter() - t0)


def storage(path: Path, names: list[str]) -> dict:
    """Stored bytes and stored/raw ratio of the named datasets."""
    import h5py
    import hdf5plugin  # noqa: F401

    out = {}
    with h5py.File(path, "r") as f:
        for name in names:
            if name in f:
                ds = f[name]
                raw = ds.size * ds.dtype.itemsize
                stored = ds.id.get_storage_size()
                out[name] = {"stored_MB": round(stored / MB, 1),
                             "ratio": round(stored / raw, 3) if raw else None,
                             "chunks": list(ds.chunks) if ds.chunks else None}
    return out


def map_content(path: Path, frame: int) -> dict:
    """How much of one converted frame is NaN (bins no pixel reaches) or zero."""
    from nxgid.nexus.reader import NexusFile

    intensity = np.asarray(NexusFile(path).result(RESULT)[frame].intensity[0])
    finite = np.isfinite(intensity)
    return {"bins": int(intensity.size),
            "nan_pct": round(100 * (1 - float(finite.mean())), 1),
            "zero_pct_of_finite": round(100 * float((intensity[finite] == 0).mean()), 1)}


def same_values(a: Path, b: Path, frame: int) -> bool:
    """Frame *frame* of two nxgid files identical (NaNs in the same bins)?"""
    from nxgid.nexus.reader import NexusFile

    ra, rb = NexusFile(a).result(RESULT)[frame], NexusFile(b).result(RESULT)[frame]
    same = np.array_equal(ra.intensity, rb.intensity, equal_nan=True)
    if ra.errors is not None or rb.errors is not None:
        same = same and np.array_equal(ra.errors, rb.errors, equal_nan=True)
    return bool(same)


def fsync(path: Path) -> float:
    """Seconds to push the file's dirty pages to the disk (outside the timed run, so
    that one run's write-back does not land in the next)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        os.fsync(fd)
        return time.perf_counter() - t0
    finally:
        os.close(fd)


# --- pygid ---------------------------------------------------------------------------

def pygid_setup(mask: np.ndarray):
    """(pygid module, coordinate maps) or None when pygid is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cv2
            import pygid
    except ImportError:
        return None
    logging.disable(logging.WARNING)  # pygid configures INFO logging on import
    INFO["pygid"] = f"{pygid.__version__} (OpenCV {cv2.__version__}, "\
                    f"{cv2.getNumThreads()} threads)"
    xr, dq = pygid_axis("q_xy", Q_BINS, Q_RANGES)
    zr, _ = pygid_axis("q_z", Q_BINS, Q_RANGES)
    params = pygid.ExpParams(poni_path=str(PONI), ai=INCIDENCE_DEG, mask=mask)
    maps = pygid.CoordMaps(params, q_xy_range=xr, q_z_range=zr, dq=dq)
    return pygid, maps


def pygid_convert(pygid, maps, h5: Path, out: Path, batch_size: int) -> None:
    out.unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conversion = pygid.Conversion(matrix=maps, path=str(h5), dataset=DATASET,
                                      batch_size=batch_size)
        conversion.det2q_gid(save_result=True, path_to_save=str(out), return_result=False)


def pygid_dataset(path: Path) -> str:
    """The stacked map in pygid's file: the largest 3-D dataset."""
    import h5py

    found: list[tuple[int, str]] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.append((obj.size, "/" + name))
                     if isinstance(obj, h5py.Dataset) and obj.ndim == 3 else None)
    if not found:
        raise RuntimeError(f"{path}: no 3-D dataset")
    return max(found)[1]


def pygid_reads(config: Config, frame: int, repeat: int) -> None:
    """pygid has no stacked-file reader of its own in this comparison: plain h5py."""
    import h5py

    name = pygid_dataset(config.path)
    for _ in range(repeat):
        t0 = time.perf_counter()
        with h5py.File(config.path, "r") as f:
            f[name][()]
        config.read_all.append(time.perf_counter() - t0)
    for _ in range(max(5, 3 * repeat)):
        t0 = time.perf_counter()
        with h5py.File(config.path, "r") as f:
            f[name][frame]
        config.read_one.append(time.perf_counter() - t0)


# --- report --------------------------------------------------------------------------

def table(configs: list[Config], frames: int) -> list[str]:
    ref = next((c for c in configs if c.tool == "pygid"), None)
    only = {c.errors: c for c in configs if c.tool == "nxgid (no file)"}
    lines = ["| tool | compression | errors | ms/frame (min) | writing ms/frame | × pygid "
             "| MB per 100 frames | × pygid size | fsync, s | read all, s "
             "| read one frame, ms |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in configs:
        write = ""
        if c.tool == "nxgid" and c.errors in only:
            write = f"{c.ms - only[c.errors].ms:.1f}"
        ratio = f"{c.ms / ref.ms:.2f}" if ref is not None else ""
        size = size_ratio = ""
        if c.size is not None:
            per100 = c.size / MB * 100 / frames
            size = f"{per100:.0f}" if per100 >= 10 else f"{per100:.1f}"
            if ref is not None and ref.size:
                size_ratio = f"{c.size / ref.size:.3f}"
        sync = f"{np.median(c.fsync):.2f}" if c.fsync else ""
        read_all = f"{np.median(c.read_all):.2f}" if c.read_all else ""
        read_one = f"{np.median(c.read_one) * 1e3:.1f}" if c.read_one else ""
        lines.append(f"| {c.tool} | {c.compression} | {'yes' if c.errors else 'no'} "
                     f"| {c.ms:.1f} ({c.ms_min:.1f}) | {write} | {ratio} | {size} "
                     f"| {size_ratio} | {sync} | {read_all} | {read_one} |")
    return lines


def versions() -> dict:
    import h5py
    import hdf5plugin

    import nxgid

    return {"nxgid": getattr(nxgid, "__version__", "?"), "h5py": h5py.__version__,
            "HDF5": h5py.version.hdf5_version, "hdf5plugin": hdf5plugin.version}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="frames in the stack (100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (3)")
    parser.add_argument("--quick", action="store_true", help="10 frames, 1 run: smoke test")
    parser.add_argument("--pattern", choices=("film", "dense"), default="film",
                        help="film: demo_conversion.film_pattern() (default); dense: "
                        "bench_conversion.py's pattern, ~13× the counts")
    parser.add_argument("--block-frames", type=int, default=16,
                        help="nxgid's frames per block (16, as nxgid convert)")
    parser.add_argument("--pygid-batch", type=int, default=32,
                        help="pygid's batch_size (32, its default)")
    parser.add_argument("--no-pygid", action="store_true")
    parser.add_argument("--workdir", help="where the input and output files go (default: a "
                        "new temporary directory, removed afterwards)")
    parser.add_argument("--json", help="also write all figures to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.repeat = min(args.frames, 10), 1
    n = args.frames
    frame = min(50, n - 1)

    INFO.update(machine())
    INFO.update(versions())
    INFO["nxgid_commit"] = git_commit()
    INFO["loadavg_start"] = os.getloadavg()
    ticks0, times0 = cpu_ticks(), os.times()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in INFO.items()), flush=True)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="nxgid-bench-write-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t_run = time.perf_counter()
    try:
        h5 = workdir / "input.h5"
        t0 = time.perf_counter()
        make_input(h5, n, args.pattern)
        INFO["simulate_and_write_input_s"] = round(time.perf_counter() - t0, 1)
        print(f"input: {INFO['input']} in {INFO['simulate_and_write_input_s']} s", flush=True)
        cache = workdir / "cache"

        configs = [Config("nxgid (no file)", "—", e) for e in (False, True)]
        configs += [Config("nxgid", c, e, path=workdir / f"nxgid-{c}-{int(e)}.nxs")
                    for e in (False, True) for c in COMPRESSIONS]
        pg = None
        if args.no_pygid:
            INFO["pygid"] = "skipped (--no-pygid)"
        else:
            from nxgid.geometry import DetectorGeometry

            pg = pygid_setup(DetectorGeometry.from_poni(PONI).detector_mask)
            if pg is None:
                INFO["pygid"] = "not installed: skipped (use .venv-bench)"
            else:
                configs.append(Config("pygid", "none", False, path=workdir / "pygid.nxs"))
        print(f"pygid: {INFO['pygid']}", flush=True)

        def run(c: Config) -> int:
            if c.tool == "nxgid (no file)":
                return nxgid_convert_only(h5, c.errors, cache, args.block_frames)
            if c.tool == "nxgid":
                return nxgid_convert(h5, c.path, c.compression, c.errors, cache,
                                     args.block_frames)
            pygid_convert(*pg, h5, c.path, args.pygid_batch)
            return n

        # Warm-up, not timed: fills the map cache, loads numba's kernels and the HDF5
        # filters, and runs pygid's path once.
        t0 = time.perf_counter()
        for c in configs:
            if c.tool != "nxgid" or c.compression in ("none", "bitshuffle-lz4"):
                run(c)
        INFO["warm_up_s"] = round(time.perf_counter() - t0, 1)
        print(f"warm-up (map cache, kernels, filters, pygid): {INFO['warm_up_s']} s",
              flush=True)
        for rep in range(args.repeat):
            for c in configs:
                t0 = time.perf_counter()
                done = run(c)
                c.times.append((time.perf_counter() - t0) / n)
                if done != n:
                    raise RuntimeError(f"{c.label}: {done} frames converted, expected {n}")
                if c.path is not None:
                    c.size = c.path.stat().st_size
                    c.fsync.append(fsync(c.path))
                print(f"  run {rep + 1}: {c.label:44} {c.times[-1] * 1e3:8.1f} ms/frame"
                      + (f"  {c.size / MB:8.1f} MB" if c.size is not None else ""),
                      flush=True)

        print("reading back", flush=True)
        for c in configs:
            if c.tool == "nxgid":
                nxgid_reads(c, frame, args.repeat)
                c.storage = storage(c.path, [f"{RESULT}/data/{RESULT}",
                                             f"{RESULT}/data/{RESULT}_errors"])
            elif c.tool == "pygid":
                pygid_reads(c, frame, args.repeat)
                c.storage = storage(c.path, [pygid_dataset(c.path)])
            if c.read_all:
                print(f"  {c.label:44} all {np.median(c.read_all):6.2f} s, one frame "
                      f"{np.median(c.read_one) * 1e3:6.1f} ms  {c.storage}", flush=True)
        plain = {e: next(c for c in configs if c.tool == "nxgid" and c.errors == e
                         and c.compression == "none") for e in (False, True)}
        INFO["lossless"] = all(same_values(plain[c.errors].path, c.path, frame)
                               for c in configs if c.tool == "nxgid")
        INFO["map_content_frame"] = {"frame": frame, **map_content(plain[False].path, frame)}
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    ticks1 = cpu_ticks()
    if ticks0 and ticks1:
        delta = [b - a for a, b in zip(ticks0, ticks1, strict=False)]
        total = max(1, sum(delta))
        busy = sum(delta[i] for i in (0, 1, 2, 5, 6, 7)) / os.sysconf("SC_CLK_TCK")
        wall = sum(delta) / os.sysconf("SC_CLK_TCK")
        ours = sum(os.times()[:4]) - sum(times0[:4])
        INFO["cpu_steal_pct"] = round(100 * delta[7] / total, 2)
        INFO["other_processes_cpu_pct"] = round(100 * max(0.0, busy - ours) / wall, 1)
    INFO["loadavg_end"] = os.getloadavg()
    INFO["run_s"] = round(time.perf_counter() - t_run, 1)

    print()
    print(f"Pilatus 2M, {n} frames → {RESULT} {Q_BINS['q_xy']}×{Q_BINS['q_z']} (q_xy × q_z), "
          f"median (min) of {args.repeat} run(s); nxgid blocks of {args.block_frames} frames, "
          f"pygid batch_size {args.pygid_batch}")
    print()
    lines = table(configs, n)
    print("\n".join(lines))
    print()
    print("writing = nxgid end to end − nxgid (no file) with the same errors setting; "
          "× pygid = ms/frame or size / pygid's (< 1: smaller or faster than pygid); "
          "fsync = pushing the finished file to the disk, not in ms/frame; "
          "reads from the page cache (nxgid: NexusFile.load / result()[i]; pygid: h5py)")
    print()
    for key, value in INFO.items():
        print(f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"frames": n, "repeat": args.repeat, "table": lines,
             "rows": [{"tool": c.tool, "compression": c.compression, "errors": c.errors,
                       "ms_per_frame": c.times and [t * 1e3 for t in c.times],
                       "size_bytes": c.size, "fsync_s": c.fsync, "read_all_s": c.read_all,
                       "read_one_s": c.read_one, "storage": c.storage} for c in configs],
             "info": INFO}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
