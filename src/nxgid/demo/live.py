"""The demo's live step: the beamtime goes on while ``nxgid watch`` runs.

A new SPEC scan (``s006``, the film at 360 K) is measured after the reduction: its
header goes into the SPEC file, then frame by frame a CBF file lands in its folder and
the SPEC file gains the point's row — one frame written in two halves, as a slow
network file system would show it. Live mode, started before the scan, imports the scan
through the ``spec`` beamline as soon as its first frame has settled, appends every
further frame to the raw stack and converts only the new frames into the reduced file,
which grows while the scan runs. The step ends once every frame is reduced.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nxgid.experiment.layout import Experiment, ScanRef

LIVE_SCAN = "s006"
LIVE_TEMPERATURE_K = 360.0
LIVE_FRAMES = 4
#: Seconds a file must keep its size and time before live mode reads it.
SETTLE_S = 0.3


@dataclass
class LiveReport:
    scan: ScanRef
    frames: int
    #: Frames in the reduced file each time it grew (it grows while the scan runs).
    growth: list[int]
    summary: str
    seconds: float
    #: What `nxgid reduce` queued for the scan afterwards (nxgid.workflow.reduce.ReducePlan).
    after: object | None = None


def run_live_step(experiment: Experiment, effective, raw: Path, site_file: Path,
                  spec_file: Path, truth, sample: str, label: str,
                  polarization: float, configuration: str) -> LiveReport:
    import fabio

    from nxgid.demo.conversion import INCIDENCE_DEG
    from nxgid.demo.setup import frames_for
    from nxgid.nexus.reader import NexusFile
    from nxgid.workflow.live import watch

    start = time.perf_counter()
    ref = ScanRef(sample, label, LIVE_SCAN)
    number = int(LIVE_SCAN.removeprefix("s"))
    frames = np.concatenate([frames_for(truth, (INCIDENCE_DEG,), seed=100 + i,
                                        polarization=polarization)[:1]
                             for i in range(LIVE_FRAMES)])
    folder = raw / f"{sample}_{number:03d}"
    stop = threading.Event()
    summary: list = []
    failure: list[BaseException] = []

    def live() -> None:
        try:
            summary.append(watch(experiment, effective, configuration=configuration,
                                 beamline="spec", selections=[f"{sample}/{label}"],
                                 poll=False, interval=0.5, settle=SETTLE_S, stop=stop,
                                 site_path=site_file))
        except BaseException as exc:  # reported by the demo
            failure.append(exc)

    thread = threading.Thread(target=live, name="nxgid-watch", daemon=True)
    thread.start()
    with spec_file.open("a") as spec:
        spec.write(f"\n#S {number}  loopscan {LIVE_FRAMES} 1\n#D Mon Nov 23 10:30:00 2026\n"
                   f"#T 1  (Seconds)\n#P0 0.0 0.0 0.0 {INCIDENCE_DEG}\n#N 4\n"
                   "#L Epoch  Seconds  I0  temp\n")
    folder.mkdir(parents=True, exist_ok=True)
    output = experiment.reduced_file(ref, "f1")
    growth: list[int] = []
    rng = np.random.default_rng(5)
    for index, frame in enumerate(frames, start=1):
        path = folder / f"frame_{index:05d}.cbf"
        partial = folder / f".frame_{index:05d}.tmp"
        fabio.cbfimage.CbfImage(data=frame).write(str(partial))
        data = partial.read_bytes()
        partial.unlink()
        with path.open("wb") as handle:  # half now, the rest a little later
            handle.write(data[: len(data) // 2])
            handle.flush()
            time.sleep(SETTLE_S * 2 if index == 2 else 0.05)
            handle.write(data[len(data) // 2:])
        with spec_file.open("a") as spec:
            monitor = int(rng.normal(1.0e5, 500))
            spec.write(f"{index} 1 {monitor} {LIVE_TEMPERATURE_K + 0.1 * (index - 1):.2f}\n")
        _wait_for(lambda i=index: _frames(output) >= i or bool(failure), 30.0)
        growth.append(_frames(output))
    stop.set()
    thread.join(timeout=30)
    if failure:
        raise failure[0]
    reduced = NexusFile(output).load("img_gid_q", errors=False) if output.exists() else None
    return LiveReport(scan=ref, frames=0 if reduced is None else reduced.frames,
                      growth=growth, summary=summary[0].line() if summary else "",
                      seconds=time.perf_counter() - start)


def _frames(path: Path) -> int:
    import h5py

    from nxgid.nexus.writer import committed_frames

    try:
        with h5py.File(path, "r", locking=False) as root:
            return committed_frames(root["img_gid_q"])
    except (OSError, KeyError):
        return 0


def _wait_for(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)
