"""Conversion speed and memory: nxgid against pygid and pyFAI's FiberIntegrator.

    python benchmarks/bench_conversion.py [--frames 100] [--repeat 5] [--quick]

Every tool gets the same synthetic Pilatus 2M stack (1679 × 1475 uint32 frames of
``nxgid.images.simulate``; geometry ``benchmarks/pilatus2m_gid.poni``, α_i = 0.15°) and the same
output grids:

* ``img_gid_q``: 1277 q_xy × 1450 q_z bins of 0.0036 Å⁻¹ (≈ one pixel at the PONI),
* ``img_gid_pol``: 1328 |q| bins over 0 … 4.8 Å⁻¹ × 1200 χ bins over 0 … 180°.

nxgid and pyFAI bin pixel centres into these bins (identical bin edges: pyFAI's
histogram convention); pygid interpolates (OpenCV ``remap``) at the bin centres. No
intensity corrections in any tool; the detector's module-gap mask in all three.

Times are medians over ``--repeat`` runs (per frame where a stack is converted); the
"min" column is the fastest run. Memory is the peak RSS increase of the phase
(``/proc/self/status`` VmHWM after resetting it through ``/proc/self/clear_refs``);
the file conversion runs in a fresh subprocess per measurement. pygid needs its own
virtual environment (it pins pytest < 9): see docs/performance.md. Without pygid, or
pyFAI, those rows are skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PONI = HERE / "pilatus2m_gid.poni"
INCIDENCE_DEG = 0.15

#: q_xy / q_z grid: one step for both axes (pygid has a single dq).
DQ = 0.0036
Q_BINS = {"q_xy": 1277, "q_z": 1450}
Q_RANGES = {"q_xy": (-Q_BINS["q_xy"] * DQ / 2, Q_BINS["q_xy"] * DQ / 2),
            "q_z": (-0.41, -0.41 + Q_BINS["q_z"] * DQ)}
#: Polar grid: |q| and χ (0° along +q_xy, 90° along +q_z).
POL_BINS = {"q_gid_pol": 1328, "ang_gid_pol": 1200}
POL_RANGES = {"q_gid_pol": (0.0, 4.8), "ang_gid_pol": (0.0, 180.0)}

#: The issue's targets on this 2-core machine.
TARGET_STACK_MS = 3.0
TARGET_STACK_ERRORS_MS = 5.0
TARGET_COLD_S = 0.5
TARGET_CACHED_S = 0.1
TARGET_FILE_MEMORY_BLOCKS = 1.5

MB = 1024 * 1024


# --- memory --------------------------------------------------------------------------

def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


#: Highest VmHWM seen before any reset: the whole run's peak RSS.
RUN_PEAK_MB = [0.0]


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0), remembering the run's peak."""
    RUN_PEAK_MB[0] = max(RUN_PEAK_MB[0], _status_mb("VmHWM") or 0.0)
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _trim() -> None:
    """Collect garbage and give freed heap memory back to the OS, so that a later peak is
    not hidden by reusing pages that are already resident."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRss:
    """Peak RSS increase (MiB) over a block of code: VmHWM − VmRSS at the start."""

    def __enter__(self) -> PeakRss:
        _trim()
        self.start = _status_mb("VmRSS")
        self.ok = _reset_peak() and self.start is not None
        self.increase: float | None = None
        return self

    def __exit__(self, *exc) -> None:
        peak = _status_mb("VmHWM")
        if self.ok and peak is not None:
            self.increase = peak - self.start


# --- results ---------------------------------------------------------------------------

@dataclass
class Row:
    tool: str
    task: str
    times: list[float]          # seconds per unit (per frame, or per call)
    unit: str = "ms/frame"      # "ms/frame", "ms", or "s"
    group: str = ""             # rows of a group are compared with its nxgid row
    memory_mb: float | None = None
    note: str = ""

    @property
    def scale(self) -> float:
        return 1.0 if self.unit == "s" else 1e3

    @property
    def median(self) -> float:
        return float(np.median(self.times)) * self.scale

    @property
    def best(self) -> float:
        return float(np.min(self.times)) * self.scale


ROWS: list[Row] = []
INFO: dict[str, object] = {}


def add(row: Row) -> Row:
    ROWS.append(row)
    print(f"  {row.tool:6} {row.task:52} {row.median:9.2f} {row.unit}"
          + (f"  (+{row.memory_mb:.0f} MiB)" if row.memory_mb is not None else ""),
          flush=True)
    return row


def timed(fn: Callable[[], object], repeat: int, per: int = 1) -> list[float]:
    """Run *fn* *repeat* times; seconds per unit of every run."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) / per)
    return times


# --- set-up ----------------------------------------------------------------------------

def machine() -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, object] = {
        "cpu": model, "nproc": os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__,
        "memory_GiB": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    try:
        import numba

        info["numba"] = f"{numba.__version__} ({numba.get_num_threads()} threads)"
    except ImportError:  # pragma: no cover
        pass
    return info


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--",
                                "../src"], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (src/ modified)" if dirty else "")


def cpu_ticks() -> list[int]:
    try:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return []


def pattern():
    """A textured film with a little powder: Bragg-rod spots, rings, diffuse background."""
    from nxgid.images.simulate import Pattern, Ring, Spot

    spots = [Spot(0.45, 0.90, 1500, 0.02), Spot(0.90, 0.45, 2000, 0.02),
             Spot(1.35, 1.80, 800, 0.03), Spot(1.80, 0.35, 1200, 0.025),
             Spot(0.50, 2.60, 400, 0.03), Spot(2.00, 2.20, 300, 0.04),
             Spot(1.10, 3.40, 200, 0.04)]
    rings = [Ring(2 * math.pi / q, h, 0.012)
             for q, h in ((1.00, 300), (1.45, 150), (2.10, 120), (2.90, 80), (3.60, 60))]
    return Pattern(rings=rings, spots=spots, background=40.0)


def make_stack(geometry, sample, frames: int, chunk: int = 10) -> np.ndarray:
    """uint32 Poisson frames, exposure varying ±5 %, simulated *chunk* frames at a time
    into one preallocated array (frame i is seeded with i)."""
    from nxgid.images.simulate import simulate_stack

    stack = np.empty((frames, *geometry.shape), dtype=np.uint32)
    exposures = 1.0 + 0.05 * np.sin(np.arange(frames))
    for start in range(0, frames, chunk):
        stop = min(frames, start + chunk)
        stack[start:stop] = simulate_stack(
            geometry, sample, pattern(), exposure=list(exposures[start:stop]), seed=start,
            polarization_factor=0.99, critical_angle_deg=0.12, dtype=np.uint32)
    return stack


def q_spec():
    from nxgid.conversion.converter import TargetSpec

    return TargetSpec("img_gid_q", bins=dict(Q_BINS), ranges=dict(Q_RANGES))


def pol_spec():
    from nxgid.conversion.converter import TargetSpec

    return TargetSpec("img_gid_pol", bins=dict(POL_BINS), ranges=dict(POL_RANGES))


def nxgid_objects():
    from nxgid.geometry.coordinates import SampleGeometry
    from nxgid.geometry.detector import DetectorGeometry

    return DetectorGeometry.from_poni(PONI), SampleGeometry.grazing(INCIDENCE_DEG)


# --- subprocess workers ------------------------------------------------------------------

def cache_supported() -> bool:
    import inspect

    from nxgid.conversion.converter import Converter

    return "cache_dir" in inspect.signature(Converter).parameters


def reuse_supported() -> bool:
    import inspect

    from nxgid.conversion.converter import Converter

    return "out" in inspect.signature(Converter.convert).parameters


def worker_cold(frame_path: str, cache_dir: str | None = None) -> dict:
    """Fresh process: geometry, Converter, maps and first conversion of one frame (maps
    from *cache_dir* when given and filled)."""
    t0 = time.perf_counter()
    import pyFAI.geometry  # noqa: F401 - nxgid imports it on first use; counted as import

    from nxgid.conversion.converter import Converter

    t_import = time.perf_counter() - t0
    frame = np.load(frame_path)
    t0 = time.perf_counter()
    geometry, sample = nxgid_objects()
    extra = {"cache_dir": cache_dir} if cache_dir else {}
    converter = Converter(geometry, sample, [q_spec()], errors=True, **extra)
    t_init = time.perf_counter()
    converter.binmaps()
    t_maps = time.perf_counter()
    converter.convert(frame)
    t_end = time.perf_counter()
    return {"import_s": t_import, "total_s": t_end - t0, "init_s": t_init - t0,
            "maps_s": t_maps - t_init, "first_convert_s": t_end - t_maps}


def worker_file(h5_path: str, errors: bool, block_frames: int, reuse: bool = False) -> dict:
    """Fresh process: convert an HDF5 stack block by block; wall time and peak RSS."""
    import h5py

    from nxgid.conversion.converter import Converter

    rss_start = _status_mb("VmRSS")
    geometry, sample = nxgid_objects()
    converter = Converter(geometry, sample, [q_spec()], errors=errors)
    maps = converter.binmaps()
    with h5py.File(h5_path, "r") as h5:
        converter.convert(h5["data"][0])  # loads the compiled kernels
    _trim()
    rss_before = _status_mb("VmRSS")
    reset = _reset_peak()
    frames = 0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    with h5py.File(h5_path, "r") as h5:
        dataset = h5["data"]
        shape, itemsize = dataset.shape, dataset.dtype.itemsize
        extra = {"reuse_outputs": True} if reuse else {}
        for block in converter.convert_blocks(dataset, block_frames=block_frames, **extra):
            frames += block["img_gid_q"].frames
            del block
    wall = time.perf_counter() - t0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    peak = _status_mb("VmHWM")
    bins = Q_BINS["q_xy"] * Q_BINS["q_z"]
    return {
        "frames": frames, "wall_s": wall, "errors": errors, "block_frames": block_frames,
        "minor_page_faults_per_frame": faults / max(1, frames),
        "peak_increase_mb": (peak - rss_before) if reset and peak and rss_before else None,
        "rss_before_loop_mb": rss_before, "rss_start_mb": rss_start,
        "maps_mb": sum(m.nbytes for m in maps.values()) / MB,
        "block_in_mb": block_frames * shape[1] * shape[2] * itemsize / MB,
        "block_out_mb": block_frames * bins * 4 * (2 if errors else 1) / MB,
    }


def run_worker(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker {args[:2]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- nxgid ---------------------------------------------------------------------------------

def bench_nxgid(stack: np.ndarray, workdir: Path, repeat: int, cold_repeat: int) -> dict:
    from nxgid.conversion.converter import Converter

    geometry, sample = nxgid_objects()
    n = stack.shape[0]
    frame_path = workdir / "frame0.npy"
    np.save(frame_path, stack[0])

    print("nxgid: first conversion in a fresh process (numba's disk cache warmed by one "
          "discarded run)", flush=True)
    run_worker(["--worker", "cold", str(frame_path)])
    cold = [run_worker(["--worker", "cold", str(frame_path)]) for _ in range(cold_repeat)]
    add(Row("nxgid", "first conversion, fresh process (maps built)",
            [c["total_s"] for c in cold], "s", "cold",
            note="after import; geometry + Converter + maps + convert(1 frame)"))
    INFO["nxgid_cold_parts_s"] = parts(cold)
    if cache_supported():
        cache_dir = workdir / "map-cache"
        run_worker(["--worker", "cold", str(frame_path), str(cache_dir)])  # fills the cache
        cached = [run_worker(["--worker", "cold", str(frame_path), str(cache_dir)])
                  for _ in range(cold_repeat)]
        add(Row("nxgid", "first conversion, fresh process (maps from disk cache)",
                [c["total_s"] for c in cached], "s", "cached"))
        INFO["nxgid_cached_parts_s"] = parts(cached)
        INFO["nxgid_cache_mb"] = sum(f.stat().st_size for f in cache_dir.iterdir()) / MB
    else:
        INFO["nxgid_cached_parts_s"] = "Converter has no cache_dir: not measured"

    def cold_in_process(**extra):
        geometry, sample = nxgid_objects()  # new objects: pyFAI positions not cached
        Converter(geometry, sample, [q_spec()], errors=True, **extra).convert(stack[0])

    add(Row("nxgid", "first conversion, in process (maps built)",
            timed(cold_in_process, cold_repeat), "s", "cold_inproc"))
    if cache_supported():
        add(Row("nxgid", "first conversion, in process (maps from disk cache)",
                timed(lambda: cold_in_process(cache_dir=cache_dir), cold_repeat), "s"))

    converter = Converter(geometry, sample, [q_spec()], errors=True)
    t0 = time.perf_counter()
    converter.binmaps()
    INFO["nxgid_maps_build_s"] = time.perf_counter() - t0
    maps_mb = converter.binmaps()["img_gid_q"].nbytes / MB
    INFO["nxgid_q_maps_mb"] = maps_mb
    converter.convert(stack[0])

    single = max(10, 3 * repeat)
    picks = iter(np.arange(10**6) % n)
    add(Row("nxgid", "q map, warm, single frame (errors)",
            timed(lambda: converter.convert(stack[next(picks)]), single), "ms", "single"))
    converter.errors = False
    add(Row("nxgid", "q map, warm, single frame (no errors)",
            timed(lambda: converter.convert(stack[next(picks)]), single), "ms"))

    for errors in (False, True):
        converter.errors = errors
        converter.convert(stack[:2])
        with PeakRss() as mem:
            times = timed(lambda: converter.convert(stack), repeat, n)
        label = "errors" if errors else "no errors"
        add(Row("nxgid", f"q map, warm, {n}-frame stack ({label})", times,
                group="stack" if not errors else "stack_errors", memory_mb=mem.increase))
        if reuse_supported():  # a writer streaming results reuses its output arrays
            previous = converter.convert(stack)
            add(Row("nxgid", f"q map, warm, {n}-frame stack, outputs reused ({label})",
                    timed(lambda previous=previous: converter.convert(stack, out=previous),
                          repeat, n)))
            del previous
    gc.collect()

    polar = Converter(geometry, sample, [pol_spec()], errors=False)
    polar.convert(stack[:2])
    INFO["nxgid_pol_maps_mb"] = polar.binmaps()["img_gid_pol"].nbytes / MB
    add(Row("nxgid", f"polar map, warm, {n}-frame stack (no errors)",
            timed(lambda: polar.convert(stack), repeat, n), group="polar"))
    polar.errors = True
    add(Row("nxgid", f"polar map, warm, {n}-frame stack (errors)",
            timed(lambda: polar.convert(stack), repeat, n)))
    polar.errors = False
    gc.collect()

    breakdown(converter, stack, repeat)
    # the default splits the pixels wider than a bin (pixel_splitting "auto"); whole
    # pixels are what pyFAI's "no"-split csr computes: timed, and compared with it
    whole = Converter(geometry, sample, [q_spec()], errors=False, pixel_splitting="none")
    whole.convert(stack[:2])
    INFO["nxgid_map_entries_whole_pixels"] = int(whole.binmaps()["img_gid_q"].pixels.size)
    add(Row("nxgid", f"q map, warm, {n}-frame stack (no errors, whole pixels)",
            timed(lambda: whole.convert(stack), repeat, n)))
    whole_polar = Converter(geometry, sample, [pol_spec()], errors=False,
                            pixel_splitting="none")
    return {"q": whole.convert(stack[0])["img_gid_q"],
            "pol": whole_polar.convert(stack[0])["img_gid_pol"]}


def parts(runs: list[dict]) -> dict:
    return {k: round(float(np.median([c[k] for c in runs])), 4)
            for k in ("import_s", "init_s", "maps_s", "first_convert_s")}


def breakdown(converter, stack: np.ndarray, repeat: int) -> None:
    """Where a stack conversion spends its time (nxgid internals; skipped if they moved)."""
    try:
        from nxgid.conversion import kernels

        binmap = converter.binmaps()["img_gid_q"]
        block = min(kernels.BLOCK, stack.shape[0])
        flat = np.ascontiguousarray(stack[:block]).reshape(block, -1)
        values = kernels.transpose_block(flat)
        parts = {"transpose": timed(lambda: kernels.transpose_block(flat, values), repeat,
                                    block)}
        for errors in (False, True):
            converter.errors = errors
            out = kernels.Outputs(block, binmap.bins, errors=errors, keep_sums=False)

            def run(out=out):
                kernels.convert_block(values, None, binmap, out, slice(0, block),
                                      lo=-math.inf, hi=math.inf, monitor=np.ones(block))

            run()
            parts[f"kernel errors={errors}"] = timed(run, repeat, block)
            parts[f"convert errors={errors}"] = timed(
                lambda: converter.convert(stack[:block]), repeat, block)
        INFO["nxgid_breakdown_ms_per_frame"] = {k: round(float(np.median(v)) * 1e3, 2)
                                                for k, v in parts.items()}
        INFO["nxgid_breakdown_block"] = block
        INFO["nxgid_map_entries"] = int(binmap.pixels.size)
    except Exception as exc:  # internals may change under us
        INFO["nxgid_breakdown_ms_per_frame"] = f"unavailable: {type(exc).__name__}: {exc}"


def bench_file(stack: np.ndarray, workdir: Path, block_frames: int, repeat: int) -> None:
    import h5py

    path = workdir / "stack.h5"
    t0 = time.perf_counter()
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", data=stack, chunks=(1, *stack.shape[1:]))
    INFO["h5_write_s"] = time.perf_counter() - t0
    INFO["h5_mb"] = path.stat().st_size / MB

    def read_all():
        with h5py.File(path, "r") as h5:
            for _ in h5["data"]:
                pass

    add(Row("h5py", f"read {stack.shape[0]} frames, no conversion (page cache)",
            timed(read_all, max(1, min(repeat, 3)), stack.shape[0])))
    print(f"nxgid: {stack.shape[0]} frames from {path.name} ({INFO['h5_mb']:.0f} MiB, "
          f"chunked per frame, read from the page cache), convert_blocks(block_frames="
          f"{block_frames}), one fresh process per run", flush=True)
    runs = max(1, min(repeat, 3))
    variants = [(True, False), (False, False)]
    if reuse_supported():
        variants += [(True, True), (False, True)]
    for errors, reuse in variants:
        outs = [run_worker(["--worker", "file", str(path), "1" if errors else "0",
                            str(block_frames), "1" if reuse else "0"]) for _ in range(runs)]
        label = ("errors" if errors else "no errors") + (", outputs reused" if reuse else "")
        peaks = [o["peak_increase_mb"] for o in outs if o["peak_increase_mb"] is not None]
        add(Row("nxgid", f"q map, {outs[0]['frames']} frames from HDF5, blocks ({label})",
                [o["wall_s"] / o["frames"] for o in outs],
                group="file" if errors and not reuse else "",
                memory_mb=max(peaks) if peaks else None))
        INFO[f"file_{'errors' if errors else 'noerrors'}{'_reuse' if reuse else ''}"] = \
            outs[-1] | {
            "peak_increase_mb_all": peaks}
    path.unlink()


# --- pyFAI -------------------------------------------------------------------------------------

def bench_pyfai(stack: np.ndarray, repeat: int, quick: bool, nx: dict) -> None:
    try:
        import pyFAI
    except ImportError:
        print("pyFAI not installed: skipped")
        return
    INFO["pyFAI"] = pyFAI.version
    n = stack.shape[0]
    common = {"incident_angle": INCIDENCE_DEG, "angle_unit": "deg", "sample_orientation": 1,
              "correctSolidAngle": False, "dummy": np.nan}
    q_args = {"npt_ip": Q_BINS["q_xy"], "ip_range": Q_RANGES["q_xy"], "unit_ip": "qip_A^-1",
              "npt_oop": Q_BINS["q_z"], "oop_range": Q_RANGES["q_z"], "unit_oop": "qoop_A^-1"}
    # pyFAI's chigi is measured from q_z (0° = +q_z, +90° = +q_ip): χ_nxgid = 90° − chigi.
    pol_args = {"npt_ip": POL_BINS["q_gid_pol"], "ip_range": POL_RANGES["q_gid_pol"],
                "npt_oop": POL_BINS["ang_gid_pol"],
                "oop_range": (90.0 - POL_RANGES["ang_gid_pol"][1],
                              90.0 - POL_RANGES["ang_gid_pol"][0]),
                "radial_unit": "A^-1"}
    picks = iter(np.arange(10**6) % n)

    def new_and_first(method):
        fi = pyFAI.load(str(PONI), type_="FiberIntegrator")
        fi.integrate2d_grazing_incidence(stack[0], method=method, **q_args, **common)
        return fi

    csr = ("no", "csr", "cython")
    cold_runs = max(1, min(repeat, 3))
    add(Row("pyFAI", "first conversion, in process (csr engine built)",
            timed(lambda: new_and_first(csr), cold_runs), "s", "cold_inproc"))
    methods = [csr] if quick else [csr, ("no", "histogram", "cython")]
    for method in methods:
        fi = new_and_first(method)
        calls = max(5, 2 * repeat) if method == csr else max(3, repeat)
        times = timed(lambda fi=fi, method=method: fi.integrate2d_grazing_incidence(
            stack[next(picks)], method=method, **q_args, **common), calls)
        add(Row("pyFAI", f"q map, warm, per frame ({method[1]})", times, group="stack",
                note="no stack API: one call per frame"))
        if method == csr:
            res = fi.integrate2d_grazing_incidence(stack[0], method=method, **q_args, **common)
            INFO["agreement_pyfai_q"] = agreement(nx["q"].intensity[0], res.intensity)
    fi = pyFAI.load(str(PONI), type_="FiberIntegrator")
    fi.integrate2d_polar(data=stack[0], method=csr, **pol_args, **common)
    add(Row("pyFAI", "polar map, warm, per frame (csr)",
            timed(lambda: fi.integrate2d_polar(data=stack[next(picks)], method=csr,
                                               **pol_args, **common), max(3, repeat)),
            group="polar"))
    res = fi.integrate2d_polar(data=stack[0], method=csr, **pol_args, **common)
    # χ runs the other way in pyFAI: flip its rows onto nxgid's.
    INFO["agreement_pyfai_pol"] = agreement(nx["pol"].intensity[0], res.intensity[::-1])


def agreement(nx: np.ndarray, other: np.ndarray) -> dict:
    """Bin-by-bin comparison where both have a value."""
    nx = np.asarray(nx, dtype=float)
    other = np.asarray(other, dtype=float)
    both = np.isfinite(nx) & np.isfinite(other) & (other != 0)
    rel = np.abs(nx[both] - other[both]) / np.abs(other[both])
    return {"shape": list(other.shape), "bins_compared": int(both.sum()),
            "median_rel_diff": float(np.median(rel)) if rel.size else None,
            "p99_rel_diff": float(np.percentile(rel, 99)) if rel.size else None}


# --- pygid ---------------------------------------------------------------------------------

def pygid_axis(axis: str, bins: dict, ranges: dict) -> tuple[tuple[float, float], float]:
    """pygid samples ``linspace(lo, hi, round((hi − lo) / step))``: give it nxgid's first and
    last bin centre and a step that rounds to the same count."""
    lo, hi = ranges[axis]
    n = bins[axis]
    step = (hi - lo) / n
    return (lo + step / 2, hi - step / 2), step * (n - 1) / n


def bench_pygid(stack: np.ndarray, repeat: int, mask: np.ndarray | None) -> None:
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cv2
            import pygid
    except ImportError:
        print("pygid not installed in this environment: skipped (use .venv-bench, see "
              "docs/performance.md)")
        INFO["pygid"] = "not installed"
        return
    INFO["pygid_import_s"] = time.perf_counter() - t0
    INFO["pygid"] = f"{pygid.__version__} (OpenCV {cv2.__version__}, "\
                    f"{cv2.getNumThreads()} threads)"
    logging.disable(logging.INFO)  # pygid configures INFO logging on import
    n = stack.shape[0]
    xr, dq = pygid_axis("q_xy", Q_BINS, Q_RANGES)
    zr, _ = pygid_axis("q_z", Q_BINS, Q_RANGES)

    def new_maps():
        params = pygid.ExpParams(poni_path=str(PONI), ai=INCIDENCE_DEG, mask=mask)
        return pygid.CoordMaps(params, q_xy_range=xr, q_z_range=zr, dq=dq)

    def cold():
        pygid.Conversion(matrix=new_maps(), img_raw=stack[0]).det2q_gid(return_result=True)

    add(Row("pygid", "first conversion, in process (maps built)",
            timed(cold, max(1, min(repeat, 3))), "s", "cold_inproc"))
    maps = new_maps()
    x, y, img = pygid.Conversion(matrix=maps, img_raw=stack[0]).det2q_gid(return_result=True)
    INFO["pygid_q_grid"] = {"shape": list(np.shape(img[0])),
                            "max_axis_offset_vs_nxgid_centres": float(max(
                                np.abs(x - centres("q_xy", Q_BINS, Q_RANGES)).max(),
                                np.abs(y - centres("q_z", Q_BINS, Q_RANGES)).max()))}

    def loop():
        for frame in stack:
            pygid.Conversion(matrix=maps, img_raw=frame).det2q_gid(return_result=True)

    add(Row("pygid", "q map, warm, loop over frames (maps cached)",
            timed(loop, repeat, n), group="stack", note="new Conversion per frame"))
    frame = stack[0].astype(np.float32)
    add(Row("pygid", "q map, cv2.remap only, single frame",
            timed(lambda: cv2.remap(frame, maps.p_y_gid, maps.p_x_gid, cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan),
                  max(10, 3 * repeat)), "ms", "single"))
    for mp in (False, True):
        def whole(mp=mp):
            pygid.Conversion(matrix=maps, img_raw=stack,
                             multiprocessing=mp).det2q_gid(return_result=True)

        gc.collect()
        with PeakRss() as mem:
            times = timed(whole, repeat, n)
        add(Row("pygid", f"q map, warm, {n}-frame stack"
                + (" (multiprocessing=True)" if mp else ""), times, group="stack",
                memory_mb=mem.increase))
        gc.collect()

    qr, dqp = pygid_axis("q_gid_pol", POL_BINS, POL_RANGES)
    ar, dang = pygid_axis("ang_gid_pol", POL_BINS, POL_RANGES)
    params = pygid.ExpParams(poni_path=str(PONI), ai=INCIDENCE_DEG, mask=mask)
    pol = pygid.CoordMaps(params, radial_range=qr, angular_range=ar, dq=dqp, dang=dang)
    x, y, img = pygid.Conversion(matrix=pol, img_raw=stack[0]).det2pol_gid(return_result=True)
    INFO["pygid_pol_grid"] = {"shape": list(np.shape(img[0]))}

    def pol_loop():
        for frame in stack:
            pygid.Conversion(matrix=pol, img_raw=frame).det2pol_gid(return_result=True)

    add(Row("pygid", "polar map, warm, loop over frames (maps cached)",
            timed(pol_loop, repeat, n), group="polar"))


def centres(axis: str, bins: dict, ranges: dict) -> np.ndarray:
    lo, hi = ranges[axis]
    step = (hi - lo) / bins[axis]
    return lo + (np.arange(bins[axis]) + 0.5) * step


# --- report --------------------------------------------------------------------------------

def report(frames: int, block_frames: int) -> list[str]:
    refs = {r.group: r for r in ROWS if r.tool == "nxgid" and r.group}
    lines = ["| tool | task | median | min | unit | vs nxgid | peak ΔRSS MiB |",
             "|---|---|---:|---:|---|---:|---:|"]
    for r in ROWS:
        ref = refs.get(r.group) if r.group else None
        ratio = ("1" if ref is r else f"{r.median / ref.median:.2f}×"
                 if ref is not None and ref.unit == r.unit else "")
        mem = f"{r.memory_mb:.0f}" if r.memory_mb is not None else ""
        fmt = ".3f" if r.unit == "s" else ".2f"
        lines.append(f"| {r.tool} | {r.task} | {r.median:{fmt}} | {r.best:{fmt}} | {r.unit} "
                     f"| {ratio} | {mem} |")
    lines.append("")
    lines.append("vs nxgid = median / nxgid's median for the same task (> 1: nxgid is "
                 "faster); reference rows show 1.")
    lines.append("")

    def find(task_start: str) -> Row | None:
        return next((r for r in ROWS if r.tool == "nxgid" and r.task.startswith(task_start)),
                    None)

    targets = []
    stack = find(f"q map, warm, {frames}-frame stack (no errors)")
    stack_e = find(f"q map, warm, {frames}-frame stack (errors)")
    cold = find("first conversion, fresh process (maps built)")
    cached = find("first conversion, fresh process (maps from disk cache)")
    cold_in = find("first conversion, in process (maps built)")
    cached_in = find("first conversion, in process (maps from disk cache)")
    for label, row, limit in (
            (f"warm q_xy/q_z stack ≤ {TARGET_STACK_MS} ms/frame", stack, TARGET_STACK_MS),
            (f"… with errors ≤ {TARGET_STACK_ERRORS_MS} ms/frame", stack_e,
             TARGET_STACK_ERRORS_MS),
            (f"first conversion incl. maps ≤ {TARGET_COLD_S} s (fresh process)", cold,
             TARGET_COLD_S),
            ("… (in a process that has converted before)", cold_in, TARGET_COLD_S),
            (f"first conversion from the disk cache ≤ {TARGET_CACHED_S} s (fresh process)",
             cached, TARGET_CACHED_S),
            ("… (in a process that has converted before)", cached_in, TARGET_CACHED_S)):
        if row is None:
            continue
        value = row.median
        targets.append(f"| {label} | {value:.3g} {row.unit} | "
                       + ("met" if value <= limit else f"missed ({value / limit:.1f}× the "
                                                       "target)") + " |")
    if cached is None:
        targets.append(f"| first conversion from the disk cache ≤ {TARGET_CACHED_S} s | — | "
                       "not measurable: this nxgid has no map disk cache |")
    file = INFO.get("file_errors")
    if isinstance(file, dict) and file.get("peak_increase_mb") is not None:
        peak = max(file["peak_increase_mb_all"])
        limit = TARGET_FILE_MEMORY_BLOCKS * file["block_in_mb"]
        targets.append(
            f"| file of {file['frames']} frames: peak RSS increase ≤ "
            f"{TARGET_FILE_MEMORY_BLOCKS} × one block ({file['block_in_mb']:.0f} MiB input) "
            f"plus the maps ({file['maps_mb']:.0f} MiB, resident before the loop) "
            f"| {peak:.0f} MiB = {peak / file['block_in_mb']:.2f} blocks | "
            + ("met" if peak <= limit else f"missed ({peak / limit:.1f}× the target)") + " |")
    lines += ["| target | nxgid | verdict |", "|---|---|---|", *targets]
    return lines


#: The keys of ``ratios`` in the JSON file, stable across versions: "> 1: nxgid faster"
#: for the first ones, costs for the last four (docs/performance.md).
RATIO_KEYS = ("stack_vs_pygid", "single_vs_pygid", "single_vs_pygid_remap", "errors_cost",
              "polar_vs_q", "file_to_nexus_vs_pygid", "read_frame_vs_h5py",
              "bilinear_vs_pygid", "stack_vs_pyfai_csr", "memory_blocks", "cold_cached_s")


def ratios(frames: int, block_frames: int, frame_mb: float) -> dict[str, float | None]:
    """The issue's ratios from this run's rows; None for what this benchmark does not
    measure (file → NeXus and reading back: bench_nexus_write.py; bilinear: not yet)."""
    def median(tool: str, task: str) -> float | None:
        row = next((r for r in ROWS if r.tool == tool and r.task.startswith(task)), None)
        return row.median if row is not None else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    stack = median("nxgid", f"q map, warm, {frames}-frame stack (no errors)")
    pygid_stack = [r.median for r in ROWS if r.tool == "pygid" and r.group == "stack"]
    single = median("nxgid", "q map, warm, single frame (no errors)")
    pygid_loop = median("pygid", "q map, warm, loop over frames")
    peak = INFO.get("file_errors", {}).get("peak_increase_mb") \
        if isinstance(INFO.get("file_errors"), dict) else None
    cold = median("nxgid", "first conversion, fresh process (maps from disk cache)")
    found = {
        "stack_vs_pygid": ratio(min(pygid_stack), stack) if pygid_stack else None,
        "single_vs_pygid": ratio(pygid_loop, single),  # its per-frame path, ms/frame
        "single_vs_pygid_remap": ratio(median("pygid", "q map, cv2.remap only"), single),
        "errors_cost": ratio(median("nxgid", f"q map, warm, {frames}-frame stack (errors)"),
                             stack),
        "polar_vs_q": ratio(median("nxgid", f"polar map, warm, {frames}-frame stack "
                                            "(no errors)"), stack),
        "file_to_nexus_vs_pygid": None,
        "read_frame_vs_h5py": None,
        "bilinear_vs_pygid": None,
        "stack_vs_pyfai_csr": ratio(median("pyFAI", "q map, warm, per frame (csr)"), stack),
        "memory_blocks": round(peak / (block_frames * frame_mb), 2) if peak else None,
        "cold_cached_s": round(cold, 3) if cold is not None else None,
    }
    return {key: found[key] for key in RATIO_KEYS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="frames in the stack (100)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (5)")
    parser.add_argument("--quick", action="store_true",
                        help="16 frames, 2 repeats, fewer pyFAI methods: a smoke test")
    parser.add_argument("--block-frames", type=int, default=16,
                        help="frames per block for the file conversion (16)")
    parser.add_argument("--no-pyfai", action="store_true")
    parser.add_argument("--no-pygid", action="store_true")
    parser.add_argument("--workdir", help="where the temporary HDF5 file goes (default: a "
                        "new temporary directory, removed afterwards)")
    parser.add_argument("--json", help="also write all figures to this JSON file")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        warnings.simplefilter("ignore")
        kind, *rest = args.worker
        if kind == "cold":
            out = worker_cold(rest[0], rest[1] if len(rest) > 1 else None)
        else:
            out = worker_file(rest[0], rest[1] == "1", int(rest[2]),
                              len(rest) > 3 and rest[3] == "1")
        print(json.dumps(out))
        return 0

    if args.quick:
        args.frames, args.repeat = min(args.frames, 16), min(args.repeat, 2)
    warnings.filterwarnings("ignore", message=".*pyopencl.*")
    INFO.update(machine())
    INFO["nxgid_commit"] = git_commit()
    INFO["loadavg_start"] = os.getloadavg()
    ticks0, times0 = cpu_ticks(), os.times()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in INFO.items()), flush=True)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="nxgid-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t_run = time.perf_counter()
    try:
        geometry, sample = nxgid_objects()
        t0 = time.perf_counter()
        stack = make_stack(geometry, sample, args.frames)
        INFO["simulate_s"] = time.perf_counter() - t0
        INFO["stack_mb"] = stack.nbytes / MB
        print(f"stack: {stack.shape} {stack.dtype}, {stack.nbytes / MB:.0f} MiB, mean "
              f"{stack.mean():.1f} counts/pixel, simulated in {INFO['simulate_s']:.1f} s",
              flush=True)
        nx = bench_nxgid(stack, workdir, args.repeat, max(3, args.repeat))
        bench_file(stack, workdir, args.block_frames, args.repeat)
        if not args.no_pyfai:
            bench_pyfai(stack, args.repeat, args.quick, nx)
        if not args.no_pygid:
            bench_pygid(stack, args.repeat, geometry.detector_mask)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    ticks1 = cpu_ticks()
    if ticks0 and ticks1:
        delta = [b - a for a, b in zip(ticks0, ticks1, strict=False)]
        total = max(1, sum(delta))
        busy = sum(delta[i] for i in (0, 1, 2, 5, 6, 7)) / os.sysconf("SC_CLK_TCK")
        wall = sum(delta) / os.sysconf("SC_CLK_TCK")  # CPU-seconds available, all CPUs
        # this process and its finished subprocesses
        ours = sum(os.times()[:4]) - sum(times0[:4])
        INFO["cpu_steal_pct"] = round(100 * delta[7] / total, 2)
        INFO["other_processes_cpu_pct"] = round(100 * max(0.0, busy - ours) / wall, 1)
    INFO["loadavg_end"] = os.getloadavg()
    INFO["run_s"] = round(time.perf_counter() - t_run, 1)
    INFO["peak_rss_mb"] = round(max(RUN_PEAK_MB[0], _status_mb("VmHWM") or 0.0))

    print()
    print(f"Pilatus 2M ({geometry.shape[0]}×{geometry.shape[1]}), {args.frames} frames, "
          f"q map {Q_BINS['q_xy']}×{Q_BINS['q_z']} (q_xy × q_z), polar "
          f"{POL_BINS['q_gid_pol']}×{POL_BINS['ang_gid_pol']} (|q| × χ), "
          f"median of {args.repeat} runs")
    print()
    lines = report(args.frames, args.block_frames)
    print("\n".join(lines))
    print()
    for key, value in INFO.items():
        print(f"{key}: {value}")
    found = ratios(args.frames, args.block_frames, INFO["stack_mb"] / args.frames)
    print("\nratios (> 1: nxgid faster, except errors_cost, polar_vs_q, memory_blocks and "
          "cold_cached_s, which are costs; none: not measured by this benchmark):")
    for key, value in found.items():
        print(f"  {key:24} {'not measured' if value is None else value}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"ratios": found,
             "rows": [{"tool": r.tool, "task": r.task, "median": r.median, "min": r.best,
                       "unit": r.unit, "memory_mb": r.memory_mb} for r in ROWS],
             "info": INFO}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
