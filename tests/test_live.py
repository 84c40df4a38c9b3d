"""Live mode (``nxgid watch``): new scans imported and new frames converted as they land,
appended to the reduced files exactly as a one-shot conversion would write them; half
written files never read; polling; Ctrl-C; the raw tree only read."""

from __future__ import annotations

import hashlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import fabio
import h5py
import numpy as np
import pytest

from beamtime import LABEL, SAMPLE, data_arrays, make_beamtime, simulated_frames
from nxgid.experiment.layout import ScanRef, Selection

TIMEOUT_S = 60.0


#: How soon a damaged, settled frame must be reported: the warning limit (5 s) plus the
#: passes and the settle time of a loaded CI machine.
UNREADABLE_LIMIT_S = 15.0

# --- helpers -----------------------------------------------------------------------------


@pytest.fixture
def live(tmp_path, site_file):
    """An experiment ``exp`` (configuration gid, film/rt) whose raw tree is
    ``tmp_path/raw/exp`` and whose beamline is ``images``; its log is attached."""
    from nxgid.experiment.logbook import attach
    from nxgid.settings.store import SettingsFile, set_values

    raw = tmp_path / "raw" / "exp"
    raw.mkdir(parents=True)
    set_values(SettingsFile.read(site_file), [("instrument", "raw_home", str(raw.parent)),
                                              ("instrument", "instrument", "images")])
    beamtime = make_beamtime(site_file, scans={})
    attach(beamtime.experiment)
    return beamtime, raw


def _cbf_bytes(frame: np.ndarray, scratch: Path) -> bytes:
    scratch.parent.mkdir(parents=True, exist_ok=True)
    fabio.cbfimage.CbfImage(data=frame).write(str(scratch))
    return scratch.read_bytes()


class RawTree:
    """Writes CBF frames into the raw tree and remembers what each file must stay."""

    def __init__(self, root: Path, scratch: Path):
        self.root, self.scratch = root, scratch
        self.written: dict[str, tuple[int, int, str]] = {}

    def folder(self, scan: str) -> Path:
        folder = self.root / SAMPLE / LABEL / scan
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def write(self, scan: str, index: int, frame: np.ndarray, *, pause: float = 0.0) -> Path:
        """Frame *index* (1-based) of *scan*; with *pause*, half the bytes first."""
        data = _cbf_bytes(frame, self.scratch / f"{scan}_{index}.cbf")
        path = self.folder(scan) / f"img_{index:04d}.cbf"
        with open(path, "wb") as stream:
            if pause:
                stream.write(data[:len(data) // 2])
                stream.flush()
                os.fsync(stream.fileno())
                time.sleep(pause)
                stream.write(data[len(data) // 2:])
            else:
                stream.write(data)
        self.remember(path)
        return path

    def remember(self, path: Path) -> None:
        info = path.stat()
        self.written[str(path)] = (info.st_size, info.st_mtime_ns,
                                   hashlib.sha256(path.read_bytes()).hexdigest())

    def snapshot(self) -> dict[str, tuple[int, int, str]]:
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns,
                         hashlib.sha256(p.read_bytes()).hexdigest())
                for p in sorted(self.root.rglob("*")) if p.is_file()}

    def directories(self) -> set[str]:
        return {str(p) for p in self.root.rglob("*") if p.is_dir()}


def _committed(path: Path) -> int:
    from nxgid.workflow.live import _reduced_frames

    try:
        return _reduced_frames(path)[0]
    except Exception:
        return 0


def _wait_for(condition, what: str, timeout: float = TIMEOUT_S, thread=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if thread is not None and not thread.is_alive():
            raise AssertionError(f"live mode stopped before {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Runner:
    """live.watch in a background thread, stopped by an event."""

    def __init__(self, beamtime, **options):
        from nxgid.workflow.live import watch
        from nxgid.workflow.workspace import effective_settings

        self.events = []
        self.stop = threading.Event()
        self.result = {}
        effective = effective_settings(beamtime.experiment, site_path=beamtime.site_file)

        def run():
            try:
                self.result["summary"] = watch(
                    beamtime.experiment, effective, configuration="gid", stop=self.stop,
                    on_event=self.events.append, site_path=beamtime.site_file, **options)
            except BaseException as exc:  # reported by finish()
                self.result["error"] = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=TIMEOUT_S)
        assert not self.thread.is_alive(), "live mode did not stop"
        if "error" in self.result:
            raise self.result["error"]
        return self.result["summary"]

    def errors(self):
        return [e for e in self.events if e.kind == "error"]


def _one_shot(beamtime, ref: ScanRef, output: Path) -> Path:
    """The reference: the complete raw stack converted in one run under the recipe."""
    from nxgid.nexus.convert import run_convert
    from nxgid.workflow.tasks import TaskContext, convert_job
    from nxgid.workflow.workspace import effective_settings

    ctx = TaskContext(beamtime.experiment,
                      effective_settings(beamtime.experiment, site_path=beamtime.site_file))
    job = convert_job(ctx, ref, "f1", output)
    job.mode = "create"
    run_convert(job)
    return output


def _assert_same_data(live_file: Path, reference: Path) -> None:
    got, expected = data_arrays(live_file), data_arrays(reference)
    assert sorted(got) == sorted(expected)
    for name, values in expected.items():
        assert got[name].shape == values.shape, name
        assert np.array_equal(got[name], values, equal_nan=values.dtype.kind == "f"), name


def _stack_frames(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as handle:
        return handle["entry/data/data"][()]


def _log_errors(beamtime) -> list[str]:
    text = beamtime.experiment.log_file.read_text()
    return [line for line in text.splitlines() if " ERROR " in line]


# --- stacking: appending to a raw stack ------------------------------------------------


def test_append_images_adds_whole_frames_and_rolls_back_an_interrupted_block(tmp_path,
                                                                             monkeypatch):
    from nxgid.errors import NxgidError
    from nxgid.experiment import stack as stack_module
    from nxgid.experiment.stack import append_images, stack_images

    rng = np.random.default_rng(3)
    frames = rng.integers(0, 1000, (6, 9, 11)).astype(np.int32)
    folder = tmp_path / "src"
    folder.mkdir()
    files = []
    for index, frame in enumerate(frames):
        files.append(folder / f"img_{index:02d}.cbf")
        fabio.cbfimage.CbfImage(data=frame).write(str(files[-1]))
    output = tmp_path / "f1.h5"
    stack_images([str(f) for f in files[:2]], output)
    summary = append_images([str(f) for f in files[2:4]], output, block_frames=1)
    assert (summary.frames, summary.resumed_from) == (4, 2)
    assert np.array_equal(_stack_frames(output), frames[:4])
    with pytest.raises(NxgidError, match="already in"):
        append_images([str(files[3]), str(files[4])], output)
    odd = folder / "odd.cbf"
    fabio.cbfimage.CbfImage(data=frames[0].astype(np.uint16)).write(str(odd))
    with pytest.raises(NxgidError, match="raw data type"):
        append_images([str(odd)], output)

    real_grow = stack_module._grow

    def grow(dataset, values):  # dies inside the second block, before its commit
        if dataset.name.endswith("source_file") and dataset.shape[0] == 5:
            raise KeyboardInterrupt
        real_grow(dataset, values)

    monkeypatch.setattr(stack_module, "_grow", grow)
    with pytest.raises(KeyboardInterrupt):
        append_images([str(f) for f in files[4:]], output, block_frames=1)
    monkeypatch.undo()
    with h5py.File(output, "r") as handle:  # whole frames only: the first block is kept
        data = handle["entry/data"]
        assert {data[n].shape[0] for n in ("data", "frame_ind", "frame_number",
                                           "source_file")} == {5}
    assert np.array_equal(_stack_frames(output), frames[:5])
    append_images([str(files[5])], output)
    assert np.array_equal(_stack_frames(output), frames)
    with h5py.File(output, "r") as handle:
        names = [bytes(n).decode() for n in handle["entry/data/source_file"][()]]
        note = handle["entry/nxgid_stack_inputs/data"][()].decode()
    assert names == [os.path.abspath(f) for f in files]
    assert all(os.path.abspath(f) in note for f in files)


# --- the observer ------------------------------------------------------------------------


def test_the_observer_falls_back_to_polling_when_the_native_one_cannot_start(tmp_path,
                                                                             monkeypatch):
    import watchdog.observers

    from nxgid.workflow.live import RawWatcher

    class Broken(watchdog.observers.Observer):
        def start(self):
            raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(watchdog.observers, "Observer", Broken)
    watcher = RawWatcher(tmp_path, poll_interval=0.1)
    try:
        assert watcher.start().startswith("polling")
        (tmp_path / "new.cbf").write_bytes(b"x")
        assert watcher.changed.wait(10)
    finally:
        watcher.stop()


# --- live mode ---------------------------------------------------------------------------


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
def test_live_mode_imports_a_new_scan_and_appends_frames_as_they_land(live, tmp_path, poll):
    from nxgid.workflow.reduce import queue_reduction
    from nxgid.workflow.tasks import TaskContext
    from nxgid.workflow.workspace import effective_settings, open_database

    beamtime, root = live
    exp = beamtime.experiment
    ref = ScanRef(SAMPLE, LABEL, "s001")
    frames = simulated_frames(exp, 4, seed=11)
    raw = RawTree(root, tmp_path / "scratch")
    runner = Runner(beamtime, poll=poll, interval=1.0, settle=0.3)
    output = exp.reduced_file(ref, "f1")
    try:
        for index in (1, 2):
            raw.write("s001", index, frames[index - 1])
        _wait_for(lambda: _committed(output) == 2, "the first two frames",
                  thread=runner.thread)
        for index in (3, 4):
            raw.write("s001", index, frames[index - 1])
        _wait_for(lambda: _committed(output) == 4, "frames 3 and 4", thread=runner.thread)
    finally:
        summary = runner.finish()
    assert runner.errors() == [] and _log_errors(beamtime) == []
    assert summary.observer.startswith("polling") == poll
    assert summary.scans_imported == 1 and summary.frames_converted == 4
    kinds = [e.kind for e in runner.events]
    assert kinds[0] == "import" and "stack" in kinds and "convert" in kinds
    # the raw stack holds exactly the frames written, in order
    assert np.array_equal(_stack_frames(exp.raw_stack(ref, "f1")), frames)
    # the appended reduced file equals a one-shot conversion of the same frames
    reference = _one_shot(beamtime, ref, tmp_path / "one_shot.nxs")
    _assert_same_data(output, reference)
    from nxgid.nexus.reader import NexusFile

    reduced = NexusFile(output)
    assert sorted(reduced.results()) == ["img_gid_q", "vert_cut_gid"]
    assert reduced.load("img_gid_q").intensity.shape == (4, 80, 120)
    # the database: link and convert done and up to date, as `nxgid reduce` sees them
    ctx = TaskContext(exp, effective_settings(exp, site_path=beamtime.site_file))
    with open_database(exp, site_path=beamtime.site_file) as db:
        plan = queue_reduction(db, ctx, [Selection()], tasks=["link", "convert"])
    assert plan.queued == [] and plan.stale == []
    assert {(r, t, e) for r, t, e in plan.skipped} == {(ref, "link", "f1"),
                                                       (ref, "convert", "f1")}
    # the import record follows the appends: `nxgid import` finds the scan unchanged
    from nxgid.beamlines.images import ImageFolderBeamLine
    from nxgid.beamlines.importer import import_scans

    actions = import_scans(exp, ImageFolderBeamLine(root, ctx.settings), SAMPLE, LABEL,
                           "gid", dry_run=True)
    assert [(a.scan, a.action) for a in actions] == [("s001", "unchanged")]
    # the raw tree was only read: every file as written, nothing added
    assert raw.snapshot() == raw.written
    log = exp.log_file.read_text()
    assert "imported with configuration gid" in log
    assert re.search(r"appended [12] frame\(s\) to f1\.h5 \([34] in all\)", log)
    assert "→ f1_reduced.nxs (4 of 4" in log


def test_a_frame_written_slowly_is_never_read_half_finished(live, tmp_path):
    beamtime, root = live
    exp = beamtime.experiment
    ref = ScanRef(SAMPLE, LABEL, "s002")
    frames = simulated_frames(exp, 2, seed=5)
    raw = RawTree(root, tmp_path / "scratch")
    raw.write("s002", 1, frames[0])
    runner = Runner(beamtime, interval=0.2, settle=0.3, debounce=0.1)
    output = exp.reduced_file(ref, "f1")
    try:
        _wait_for(lambda: any(e.kind == "convert" for e in runner.events), "the first frame",
                  thread=runner.thread)
        started = len(runner.events)
        # half the file, then a pause of several passes (longer than the settle time)
        raw.write("s002", 2, frames[1], pause=2.0)
        _wait_for(lambda: _committed(output) == 2, "the slow frame", thread=runner.thread)
    finally:
        summary = runner.finish()
    assert summary.passes >= 5  # it did look while the file was half written
    assert runner.errors() == [] and _log_errors(beamtime) == []
    assert [e.kind for e in runner.events[started:]] == ["stack", "convert"]
    # it did find the half-written file settled, and left it for later
    assert "img_0002.cbf is not readable yet" in exp.log_file.read_text()
    assert np.array_equal(_stack_frames(exp.raw_stack(ref, "f1")), frames)
    reference = _one_shot(beamtime, ref, tmp_path / "one_shot.nxs")
    _assert_same_data(output, reference)
    assert raw.snapshot() == raw.written


def test_logs_shorter_than_the_frames_hold_back_that_scan_only(live, tmp_path, monkeypatch):
    """A beamline whose log has fewer points than there are images: an error for that
    scan (once), the others go on, and the scan catches up when its log does."""
    from nxgid.beamlines import base
    from nxgid.beamlines.base import ScanLogs
    from nxgid.beamlines.images import ImageFolderBeamLine
    from nxgid.experiment.scans import entry_logs

    class Logged(ImageFolderBeamLine):
        def logs(self, scan):  # one monitor value per line of points.txt
            points = Path(scan.source["folder"]) / "points.txt"
            values = [float(v) for v in points.read_text().split()] if points.exists() \
                else []
            return ScanLogs(monitor=values or None, table={"mon": values} if values else {})

    real = base.get_beamline
    monkeypatch.setattr(base, "get_beamline",
                        lambda name: Logged if name == "images" else real(name))
    beamtime, root = live
    exp = beamtime.experiment
    slow, other = ScanRef(SAMPLE, LABEL, "s010"), ScanRef(SAMPLE, LABEL, "s011")
    frames = simulated_frames(exp, 3, seed=2)
    raw = RawTree(root, tmp_path / "scratch")
    points = raw.folder("s010") / "points.txt"
    points.write_text("100\n200\n")
    raw.remember(points)
    for index in (1, 2):
        raw.write("s010", index, frames[index - 1])
    runner = Runner(beamtime, interval=0.3, settle=0.2, debounce=0.1)
    try:
        _wait_for(lambda: _committed(exp.reduced_file(slow, "f1")) == 2, "two frames",
                  thread=runner.thread)
        raw.write("s010", 3, frames[2])  # a third image, but no third point yet
        _wait_for(lambda: runner.errors(), "the error", thread=runner.thread)
        raw.write("s011", 1, frames[0])  # another scan goes on meanwhile
        _wait_for(lambda: _committed(exp.reduced_file(other, "f1")) == 1, "the other scan",
                  thread=runner.thread)
        assert _committed(exp.reduced_file(slow, "f1")) == 2
        time.sleep(1.0)  # several passes: the error is reported once
        points.write_text("100\n200\n300\n")
        raw.remember(points)
        _wait_for(lambda: _committed(exp.reduced_file(slow, "f1")) == 3, "the third frame",
                  thread=runner.thread)
    finally:
        runner.finish()
    errors = runner.errors()
    assert len(errors) == 1 and errors[0].scan == slow
    assert "2 monitor value(s) for 3 stacked frame(s)" in errors[0].message
    assert entry_logs(exp, slow, "f1").monitor == [100.0, 200.0, 300.0]
    assert raw.snapshot() == raw.written


def test_nxgid_watch_stops_cleanly_on_ctrl_c(live, tmp_path):
    from nxgid.nexus.reader import NexusFile
    from nxgid.workflow.status import scan_status
    from nxgid.workflow.workspace import open_database

    beamtime, root = live
    exp = beamtime.experiment
    ref = ScanRef(SAMPLE, LABEL, "s003")
    frames = simulated_frames(exp, 3, seed=9)
    raw = RawTree(root, tmp_path / "scratch")
    raw.write("s003", 1, frames[0])
    nxgid = Path(sys.executable).parent / "nxgid"
    process = subprocess.Popen(
        [str(nxgid), "-E", str(exp.root), "watch", "--config", "gid", "--poll",
         "--interval", "1", "--settle", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                              daemon=True)
    reader.start()
    seen: list[str] = []

    def converted(text: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(": converted frames" in line and text in line for line in seen)

    try:
        _wait_for(lambda: converted("(1 of 1;") or process.poll() is not None, "a conversion")
        raw.write("s003", 2, frames[1])
        raw.write("s003", 3, frames[2])
        _wait_for(lambda: converted("(3 of 3;") or process.poll() is not None, "more frames")
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        stderr = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    converted("")
    output = "".join(seen)
    assert status == 0, output + stderr
    assert output.startswith("watching ") and "(polling every 1 s)" in output
    assert "film/rt/s003: imported with configuration gid" in output
    assert "stopped: 1 scan(s) imported" in output
    assert "error" not in stderr.lower()
    reduced = NexusFile(exp.reduced_file(ref, "f1"))
    result = reduced.load("img_gid_q")  # every committed frame reads back
    assert result.intensity.shape[0] == 3 and np.isfinite(result.intensity).any()
    with open_database(exp, site_path=beamtime.site_file) as db:
        rows = {str(row.scan): {t.task: t for t in row.tasks} for row in scan_status(db)}
    convert = rows[str(ref)]["convert"]
    assert convert.status == "done" and "live" in (convert.detail or "")
    assert "3 frames" in convert.detail
    assert raw.snapshot() == raw.written


def test_nxgid_watch_errors_and_until_idle(live, tmp_path, nxgid):
    beamtime, root = live
    exp = beamtime.experiment
    E = ["-E", str(exp.root)]
    missing = nxgid([*E, "watch", "--config", "nope", "--max-passes", "1"])
    assert missing.exit_code == 2 and "configuration nope does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    unknown = nxgid([*E, "watch", "film/dark", "--config", "gid", "--max-passes", "1"])
    assert unknown.exit_code == 2 and "film/dark does not exist" in unknown.stderr
    beamline = nxgid([*E, "watch", "--config", "gid", "--beamline", "nope"])
    assert beamline.exit_code == 2 and "beamline 'nope' is not installed" in beamline.stderr
    raw = RawTree(root, tmp_path / "scratch")
    for index, frame in enumerate(simulated_frames(exp, 2, seed=4), start=1):
        raw.write("s004", index, frame)
    done = nxgid([*E, "watch", "film/rt", "--config", "gid", "--settle", "0.2",
                  "--interval", "0.5", "--until-idle", "1"])
    assert done.exit_code == 0, done.output
    assert "film/rt/s004: imported with configuration gid" in done.stdout
    assert "film/rt/s004 f1: converted frames 0–1" in done.stdout, done.stdout
    assert "done: 1 scan(s) imported" in done.stdout
    assert _committed(exp.reduced_file(ScanRef(SAMPLE, LABEL, "s004"), "f1")) == 2
    again = nxgid([*E, "watch", "--config", "gid", "--max-passes", "2", "--settle", "0",
                   "--interval", "0.2"])
    assert again.exit_code == 0 and "done: 0 scan(s) imported" in again.stdout
    assert "converted frames" not in again.stdout and "0 frame(s) converted" in again.stdout
    assert raw.snapshot() == raw.written


def test_hdf5_detector_files_are_imported_by_link_once_stable(live, tmp_path):
    """Eiger-like master files: imported by link when stable, converted; frames added to
    them later are reported (live mode does not append inside HDF5 files)."""
    import hdf5plugin

    from nxgid.workflow.live import watch
    from nxgid.workflow.workspace import effective_settings

    beamtime, root = live
    exp = beamtime.experiment
    folder = root / SAMPLE / LABEL
    folder.mkdir(parents=True)
    frames = simulated_frames(exp, 3, seed=8).astype(np.uint32)
    parts = [frames[:2], frames[2:]]
    for index, part in enumerate(parts, start=1):
        with h5py.File(folder / f"s020_data_{index:06d}.h5", "w") as handle:
            handle.create_dataset("entry/data/data", data=part, **hdf5plugin.Bitshuffle())

    def master(count: int) -> None:
        with h5py.File(folder / "s020_master.h5", "w") as handle:
            group = handle.create_group("entry/data")
            for index in range(1, count + 1):
                group[f"data_{index:06d}"] = h5py.ExternalLink(f"s020_data_{index:06d}.h5",
                                                               "/entry/data/data")

    master(1)
    before = RawTree(root, tmp_path / "scratch").snapshot()
    effective = effective_settings(exp, site_path=beamtime.site_file)
    events = []
    summary = watch(exp, effective, configuration="gid", beamline="hdf5", settle=0.2,
                    interval=0.3, until_idle=0.5, on_event=events.append,
                    site_path=beamtime.site_file)
    ref = ScanRef(SAMPLE, LABEL, "s020")
    assert summary.scans_imported == 1 and summary.frames_converted == 2, events
    assert exp.raw_stack(ref, "f1").stat().st_size < 20_000  # a link, not a copy
    assert _committed(exp.reduced_file(ref, "f1")) == 2
    assert RawTree(root, tmp_path / "scratch").snapshot() == before
    master(2)  # the detector wrote more frames: not appended, but said so once
    events.clear()
    summary = watch(exp, effective, configuration="gid", beamline="hdf5", settle=0.0,
                    interval=0.2, max_passes=3, on_event=events.append,
                    site_path=beamtime.site_file)
    warnings = [e for e in events if e.kind == "warning"]
    assert len(warnings) == 1 and "HDF5" in warnings[0].message
    assert summary.frames_converted == 0 and summary.errors == 0
    assert _committed(exp.reduced_file(ref, "f1")) == 2


def test_a_damaged_frame_is_reported_within_seconds_and_the_other_scans_go_on(live,
                                                                             tmp_path):
    """A CBF cut inside its binary header (fabio loops forever on it): watch never blocks
    on it, warns about it within seconds of it settling, keeps the frames after it in its
    scan waiting, and reduces the other scan meanwhile."""
    beamtime, root = live
    exp = beamtime.experiment
    damaged, other = ScanRef(SAMPLE, LABEL, "s020"), ScanRef(SAMPLE, LABEL, "s021")
    frames = simulated_frames(exp, 2, seed=8)
    raw = RawTree(root, tmp_path / "scratch")
    raw.write("s020", 1, frames[0])
    data = _cbf_bytes(frames[1], tmp_path / "scratch" / "cut.cbf")
    cut = raw.folder("s020") / "img_0002.cbf"
    cut.write_bytes(data[:data.find(b"--CIF-BINARY-FORMAT-SECTION--") + 100])
    raw.remember(cut)
    runner = Runner(beamtime, interval=0.2, settle=0.2, debounce=0.1)
    started = time.monotonic()
    try:
        _wait_for(lambda: any(e.kind == "warning" and "img_0002.cbf" in e.message
                              for e in runner.events), "the warning about the cut frame",
                  timeout=30, thread=runner.thread)
        warned_after_s = time.monotonic() - started
        for index in (1, 2):
            raw.write("s021", index, frames[index - 1])
        _wait_for(lambda: _committed(exp.reduced_file(other, "f1")) == 2,
                  "the other scan", thread=runner.thread)
    finally:
        runner.finish()
    assert warned_after_s < UNREADABLE_LIMIT_S
    assert _committed(exp.reduced_file(damaged, "f1")) == 1  # the frame before it
    (warning,) = [e for e in runner.events if e.kind == "warning"]
    assert "s020" in warning.message and "other scans go on" in warning.message
    assert raw.snapshot() == raw.written


def test_nxgid_watch_prints_each_warning_once(live, tmp_path, nxgid):
    """A damaged frame is reported once, on stdout — not again on stderr by the log, and
    not again in later passes."""
    beamtime, root = live
    exp = beamtime.experiment
    raw = RawTree(root, tmp_path / "scratch")
    frames = simulated_frames(exp, 2, seed=9)
    raw.write("s030", 1, frames[0])
    data = _cbf_bytes(frames[1], tmp_path / "scratch" / "cut.cbf")
    cut = raw.folder("s030") / "img_0002.cbf"
    cut.write_bytes(data[:data.find(b"--CIF-BINARY-FORMAT-SECTION--") + 100])
    raw.remember(cut)
    passes = int((UNREADABLE_LIMIT_S + 4) / 0.3)
    done = nxgid(["-E", str(exp.root), "watch", "film/rt", "--config", "gid", "--poll",
                  "--settle", "0.2", "--interval", "0.3", "--max-passes", str(passes)])
    assert done.exit_code == 0, done.output
    assert done.output.count("img_0002.cbf") == 1, done.output
    assert "warning: " in done.stdout and "img_0002.cbf" not in done.stderr
    assert raw.snapshot() == raw.written
