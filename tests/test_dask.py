"""Reduction on a Dask cluster: a LocalCluster of worker processes gives the same reduced
files as a serial worker, failures are recorded (a failure from the inputs at once), the
CLI runs it, an
unreachable scheduler is a one-line error, and an external scheduler is used by address."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from beamtime import data_arrays, make_beamtime, set_server
from nxgid.experiment.layout import Selection
from nxgid.workflow.dask_executor import run_dask
from nxgid.workflow.reduce import queue_reduction
from nxgid.workflow.status import scan_status
from nxgid.workflow.tasks import TaskContext
from nxgid.workflow.worker import work
from nxgid.workflow.workspace import effective_settings, open_database

SCANS = {"s001": 3, "s002": 3, "s003": 2}
RAN_ON = re.compile(r"\[dask worker (?P<host>[^\]:]+):(?P<pid>\d+)\]$")


def _context(beamtime) -> TaskContext:
    return TaskContext(beamtime.experiment,
                       effective_settings(beamtime.experiment, site_path=beamtime.site_file))


def _reduce(beamtime, run):
    """Queue every task of the beamtime, run them with *run(db, ctx)*; returns the report
    and the task rows by (scan, task, entry)."""
    ctx = _context(beamtime)
    with open_database(beamtime.experiment, site_path=beamtime.site_file) as db:
        queue_reduction(db, ctx, [Selection()])
        report = run(db, ctx)
        tasks = {(str(row.scan), t.task, t.entry): t for row in scan_status(db)
                 for t in row.tasks}
    return report, tasks


def _second_site(tmp_path: Path) -> Path:
    """A site file like conftest's, with its own analysis home."""
    from nxgid.settings.store import create_site_file

    path = tmp_path / "site2" / "settings.ini"
    create_site_file(path, {"instrument": {"analysis_home": str(tmp_path / "analysis2"),
                                           "source": "Test Synchrotron"}})
    return path


def test_a_local_cluster_reduces_like_a_serial_worker(site_file, tmp_path):
    on_dask = make_beamtime(site_file, SCANS)
    report, tasks = _reduce(on_dask, lambda db, ctx: run_dask(db, ctx, "dask-local",
                                                              workers=2))
    assert {t.status for t in tasks.values()} == {"done"}
    assert report.done == len(tasks) == 3 * len(SCANS) and report.failed == 0

    serial = make_beamtime(_second_site(tmp_path), SCANS)
    assert serial.experiment.root != on_dask.experiment.root
    _, serial_tasks = _reduce(serial, lambda db, ctx: work(db, ctx))
    assert {t.status for t in serial_tasks.values()} == {"done"}
    assert serial_tasks.keys() == tasks.keys()

    for ref_dask, ref_serial in zip(on_dask.scans, serial.scans, strict=True):
        mine = data_arrays(on_dask.experiment.reduced_file(ref_dask, "f1"))
        theirs = data_arrays(serial.experiment.reduced_file(ref_serial, "f1"))
        assert mine and mine.keys() == theirs.keys()
        for name in mine:
            assert mine[name].dtype == theirs[name].dtype, name
            assert np.array_equal(mine[name], theirs[name], equal_nan=True), name
        preview = on_dask.experiment.preview_file(ref_dask, "f1", "img_gid_q")
        assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # every task ran in a Dask worker process, not here; the row names that worker
    pids = set()
    for task in tasks.values():
        ran = RAN_ON.search(task.detail or "")
        assert ran, task.detail
        assert task.host == ran["host"]
        pids.add(int(ran["pid"]))
    assert os.getpid() not in pids
    assert "f1_reduced.nxs" in tasks[(str(on_dask.scans[0]), "convert", "f1")].detail


@pytest.fixture(scope="module")
def external_scheduler():
    """A scheduler with one worker process, reached by its tcp:// address (shared by the
    tests of this module: its worker has compiled the conversion once)."""
    from distributed import LocalCluster

    from nxgid.workflow.dask_executor import LOCAL_SCHEDULER

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None, scheduler_kwargs=LOCAL_SCHEDULER) as cluster:
        yield cluster.scheduler_address


def test_an_external_scheduler_records_a_failing_task_and_runs_the_rest(
        site_file, external_scheduler):
    assert external_scheduler.startswith("tcp://")
    set_server(site_file, max_attempts=2)
    beamtime = make_beamtime(site_file, {"s001": 2, "s002": 2})
    exp = beamtime.experiment
    good, broken = beamtime.scans
    events = []

    def run(db, ctx):
        # queued, then its raw stack is overwritten by something that is not HDF5
        exp.raw_stack(broken, "f1").write_bytes(b"not an HDF5 file")
        return run_dask(db, ctx, external_scheduler,
                        on_event=lambda claimed, status, _: events.append(
                            (claimed.scan.scan, claimed.task, status)))
    report, tasks = _reduce(beamtime, run)

    link = tasks[(str(broken), "link", "f1")]
    assert (link.status, link.attempts) == ("failed", 1)  # from its input: not retried
    assert link.error and "f1.h5" in link.error and "unreadable" in link.error
    assert "\n" not in link.error
    assert tasks[(str(broken), "convert", "f1")].status == "queued"  # waits for link
    assert {tasks[(str(good), t, "f1")].status
            for t in ("link", "convert", "preview")} == {"done"}
    assert (report.done, report.failed, report.retried) == (3, 1, 0)
    assert report.errors and "f1.h5" in report.errors[0]
    assert (broken.scan, "link", "failed") in events
    assert (broken.scan, "link", "queued") not in events
    assert RAN_ON.search(tasks[(str(good), "convert", "f1")].detail)


def test_on_dask_a_task_whose_inputs_are_missing_waits(site_file, external_scheduler):
    beamtime = make_beamtime(site_file, {"s001": 2})
    exp, (ref,) = beamtime.experiment, beamtime.scans
    stack = exp.raw_stack(ref, "f1")
    frames = stack.read_bytes()
    stack.unlink()
    report, tasks = _reduce(beamtime, lambda db, ctx: run_dask(db, ctx, external_scheduler))
    link = tasks[(str(ref), "link", "f1")]
    assert (link.shown_status, link.attempts, report.waiting) == ("waiting (input)", 0, 1)
    stack.write_bytes(frames)
    report, tasks = _reduce(beamtime, lambda db, ctx: run_dask(db, ctx, external_scheduler))
    assert report.done == 3 and {t.status for t in tasks.values()} == {"done"}


def test_cli_reduce_on_a_dask_local_cluster_and_an_unreachable_scheduler(
        site_file, nxgid, monkeypatch):
    beamtime = make_beamtime(site_file, {"s001": 2})
    root = str(beamtime.experiment.root)
    done = nxgid(["-E", root, "reduce", "--all", "--now", "--executor", "dask",
                  "--scheduler", "dask-local", "-n", "2"])
    assert done.exit_code == 0, done.output
    assert "3 done, 0 failed" in done.stdout

    from nxgid.workflow import dask_executor

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 1.0)
    unreachable = nxgid(["-E", root, "reduce", "--all", "--overwrite", "--now",
                         "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"])
    assert unreachable.exit_code == 2, unreachable.output
    lines = unreachable.stderr.strip().splitlines()
    assert len(lines) == 1 and "tcp://127.0.0.1:1" in lines[0], unreachable.stderr
    # nothing was taken: the queued tasks wait for the next run
    with open_database(beamtime.experiment, site_path=site_file) as db:
        states = {t.status for row in scan_status(db) for t in row.tasks}
    assert states == {"queued"}


def test_stopping_gives_the_tasks_in_flight_back(site_file, external_scheduler):
    beamtime = make_beamtime(site_file, {"s001": 2, "s002": 40})
    slow = (str(beamtime.scans[1]), "convert", "f1")  # 40 frames: takes a while
    stop = threading.Event()

    def stop_while_running(db) -> None:  # as Ctrl-C would, while a task is on the cluster
        while not stop.is_set():
            if any(t.status == "running" for row in scan_status(db) for t in row.tasks
                   if (str(row.scan), t.task, t.entry) == slow):
                stop.set()
            time.sleep(0.02)

    def run(db, ctx):
        watcher = threading.Thread(target=stop_while_running, args=(db,), daemon=True)
        watcher.start()
        try:
            return run_dask(db, ctx, external_scheduler, stop=stop)
        finally:
            stop.set()
            watcher.join()
    report, tasks = _reduce(beamtime, run)
    states = Counter(t.status for t in tasks.values())
    assert "running" not in states and states["queued"] >= 1 and report.done >= 1
    assert report.done == states["done"] < len(tasks)
    assert (tasks[slow].status, tasks[slow].attempts) == ("queued", 0)  # not counted

    report, tasks = _reduce(beamtime, lambda db, ctx: run_dask(db, ctx, external_scheduler))
    assert {t.status for t in tasks.values()} == {"done"}
    assert all(t.attempts == 1 for t in tasks.values())
