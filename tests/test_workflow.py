"""The reduction workflow: recipes → tasks → queue → workers, with skip/stale logic,
retries, failure records, prerequisites, and a worker killed with SIGKILL mid-task."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from beamtime import (
    INCIDENCE_DEG,
    add_scan,
    data_arrays,
    make_beamtime,
    set_server,
    simulated_frames,
    write_stack,
)
from nxgid.experiment.layout import REDUCED_LINK, ScanRef, Selection
from nxgid.nexus.reader import NexusFile
from nxgid.workflow.queue import status_counts
from nxgid.workflow.reduce import queue_reduction
from nxgid.workflow.status import scan_status
from nxgid.workflow.tasks import TaskContext
from nxgid.workflow.worker import start_workers, work
from nxgid.workflow.workspace import effective_settings, open_database


def _context(beamtime) -> TaskContext:
    return TaskContext(beamtime.experiment,
                       effective_settings(beamtime.experiment, site_path=beamtime.site_file))


def _reduce(beamtime, **options):
    from nxgid.experiment.logbook import attach

    attach(beamtime.experiment)  # as the CLI does: the log goes to tasks/nxlogger.log
    ctx = _context(beamtime)
    with open_database(beamtime.experiment, site_path=beamtime.site_file) as db:
        plan = queue_reduction(db, ctx, [Selection()], **options)
        report = work(db, ctx)
        tasks = {(str(row.scan), t.task, t.entry): t for row in scan_status(db)
                 for t in row.tasks}
    return plan, report, tasks


def _spot_centroid(result, q_xy: float, q_z: float, half_width: float = 0.1):
    from nxgid.plot.results import frame_mean

    image = frame_mean(result.intensity)
    qx, qz = result.x_axis.centres, result.y_axis.centres
    gx, gz = np.meshgrid(qx, qz)
    window = (np.abs(gx - q_xy) < half_width) & (np.abs(gz - q_z) < half_width)
    weights = np.clip(np.nan_to_num(image[window] - np.nanmedian(image[window])), 0, None)
    return (float((gx[window] * weights).sum() / weights.sum()),
            float((gz[window] * weights).sum() / weights.sum()), result.x_axis.step,
            result.y_axis.step)


def test_reduce_makes_reduced_files_linked_from_the_scan_with_previews(site_file):
    beamtime = make_beamtime(site_file)
    plan, report, tasks = _reduce(beamtime)
    assert len(plan.queued) == 2 * 3 and report.done == 6 and report.failed == 0
    assert {t.status for t in tasks.values()} == {"done"}
    assert all(t.attempts == 1 and t.duration_s >= 0 and t.host for t in tasks.values())
    exp = beamtime.experiment
    from nxgid.experiment.recipe import effective_recipe

    for ref in beamtime.scans:
        reduced = NexusFile(exp.reduced_file(ref, "f1"))
        assert sorted(reduced.results()) == ["img_gid_q", "vert_cut_gid"]
        result = reduced.load("img_gid_q")
        assert result.intensity.shape == (3, 80, 120)  # frames × q_z × q_xy bins of RECIPE
        # the spot of the simulated film is where the physics put it
        x, z, step_x, step_z = _spot_centroid(result, 1.30, 0.40)
        assert abs(x - 1.30) < step_x and abs(z - 0.40) < step_z
        # the recipe and its hash are recorded in the output
        recipe, digest = reduced.recipe()
        expected = effective_recipe(exp, effective_settings(exp, site_path=site_file), ref)
        assert digest == expected.sha256 and recipe["img_gid_q"] == expected.as_dict()[
            "img_gid_q"]
        # one file reaches everything: the scan links its reduced file
        # one file reaches everything: the scan links the reduced data (not the file's
        # root: entries in an entry), one NXdata group per result
        with h5py.File(exp.scan_file(ref), "r") as root:
            reduced = root["f1"][REDUCED_LINK]
            assert reduced.attrs["NX_class"] == "NXcollection"
            assert reduced["img_gid_q"].attrs["NX_class"] == "NXdata"
            link = reduced["img_gid_q"].get("img_gid_q", getlink=True)
            assert isinstance(link, h5py.ExternalLink)
            assert link.filename == f"{ref.scan}/f1_reduced.nxs"
            linked = reduced["img_gid_q/img_gid_q"][()]
        with h5py.File(exp.reduced_file(ref, "f1"), "r") as root:
            np.testing.assert_array_equal(linked, root["img_gid_q/data/img_gid_q"][()])
            mask = root["img_gid_q/instrument/detector/mask"][()]
        assert not (mask & (1 << 8)).any()  # the configuration has no user mask
        preview = exp.preview_file(ref, "f1", "img_gid_q")
        assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert not exp.preview_file(ref, "f1", "vert_cut_gid").exists()  # profiles: none
    detail = tasks[(str(beamtime.scans[0]), "convert", "f1")].detail
    assert "3 frames" in detail and "f1_reduced.nxs" in detail


def test_done_tasks_are_skipped_and_changes_make_them_stale(site_file):
    beamtime = make_beamtime(site_file, {"s001": 2})
    exp, ref = beamtime.experiment, beamtime.scans[0]
    _reduce(beamtime)
    output = exp.reduced_file(ref, "f1")
    stamp = output.stat().st_mtime_ns

    plan, report, _ = _reduce(beamtime)
    assert plan.queued == [] and len(plan.skipped) == 3 and report.done == 0

    # a new recipe: convert is stale (not redone unasked); its preview follows it
    from nxgid.experiment.recipe import set_recipe

    set_recipe(exp, effective_settings(exp, site_path=site_file), "",
               [("img_gid_q", "q_xy=-0.5:2.2:60, q_z=-0.1:1.6:40")])
    plan, report, tasks = _reduce(beamtime)
    assert sorted(task for _, task, _ in plan.stale) == ["convert"]
    assert plan.queued == [] and report.done == 0
    assert tasks[(str(ref), "convert", "f1")].shown_status == "stale"
    assert output.stat().st_mtime_ns == stamp  # nothing replaced without a request
    assert NexusFile(output).load("img_gid_q").intensity.shape[1:] == (80, 120)

    plan, report, tasks = _reduce(beamtime, stale=True)
    assert sorted(task for _, task, _ in plan.queued) == ["convert", "preview"]
    assert report.done == 2
    assert NexusFile(output).load("img_gid_q").intensity.shape[1:] == (40, 60)
    assert {t.shown_status for t in tasks.values()} == {"done"}

    # new raw data: link and convert are stale; all three are redone
    write_stack(exp.raw_stack(ref, "f1"), simulated_frames(exp, 4, seed=9))
    plan, report, _ = _reduce(beamtime, stale=True)
    assert sorted(task for _, task, _ in plan.stale) == ["convert", "link"]
    assert sorted(task for _, task, _ in plan.queued) == ["convert", "link", "preview"]
    assert NexusFile(output).load("img_gid_q").intensity.shape[0] == 4

    # --overwrite redoes everything, even what is up to date
    plan, report, _ = _reduce(beamtime, overwrite=True)
    assert len(plan.queued) == 3 and report.done == 3


def test_an_output_not_made_by_the_task_is_not_replaced_without_overwrite(site_file):
    set_server(site_file, max_attempts=1)
    beamtime = make_beamtime(site_file, {"s001": 2})
    exp, ref = beamtime.experiment, beamtime.scans[0]
    output = exp.reduced_file(ref, "f1")
    output.write_bytes(b"a file the user made by hand")
    _, _, tasks = _reduce(beamtime)
    convert = tasks[(str(ref), "convert", "f1")]
    assert convert.status == "failed" and "outside the workflow" in convert.error
    assert "--overwrite" in convert.error
    assert output.read_bytes() == b"a file the user made by hand"
    assert tasks[(str(ref), "preview", "f1")].shown_status == "waiting (convert failed)"
    _, _report, tasks = _reduce(beamtime, overwrite=True)
    assert {t.status for t in tasks.values()} == {"done"}
    assert NexusFile(output).load("img_gid_q").frames == 2


def test_a_failure_from_the_inputs_is_recorded_at_once_and_requeued_by_retry(site_file,
                                                                             nxgid):
    """An unreadable raw stack fails its task at the first attempt: another would read
    the same bytes (the issue's "deterministic failures are not retried")."""
    set_server(site_file, max_attempts=3)
    beamtime = make_beamtime(site_file, {"s001": 2, "s002": 2})
    exp = beamtime.experiment
    broken = beamtime.scans[1]
    stack = exp.raw_stack(broken, "f1")
    good = stack.read_bytes()
    stack.write_bytes(b"not an HDF5 file")
    _, report, tasks = _reduce(beamtime)
    link = tasks[(str(broken), "link", "f1")]
    assert (link.status, link.attempts) == ("failed", 1)
    assert link.error and "f1.h5" in link.error
    assert report.failed == 1 and report.retried == 0
    assert tasks[(str(broken), "convert", "f1")].waiting_for == "link failed"
    assert {tasks[(str(beamtime.scans[0]), t, "f1")].status
            for t in ("link", "convert", "preview")} == {"done"}
    log = exp.log_file.read_text()
    assert f"{broken}:f1" in log and "link failed (attempt 1)" in log
    assert "attempt 2" not in log

    shown = nxgid(["-E", str(exp.root), "status", "--tasks"])
    assert shown.exit_code == 0 and "failed" in shown.stdout and "f1.h5" in shown.stdout

    stack.write_bytes(good)
    again = nxgid(["-E", str(exp.root), "retry"])
    assert again.exit_code == 0 and "1 failed task(s) queued again" in again.stdout
    _, report, tasks = _reduce(beamtime)
    assert report.done == 3 and {t.status for t in tasks.values()} == {"done"}


def test_a_failure_that_may_pass_is_retried_up_to_max_attempts(site_file, monkeypatch):
    """What is not an expected error from the inputs — an OSError of a file system, a
    file busy in another process — is tried again: here it passes at the third try."""
    from nxgid.errors import BusyError
    from nxgid.workflow import worker

    set_server(site_file, max_attempts=3)
    beamtime = make_beamtime(site_file, {"s001": 2})
    (ref,) = beamtime.scans
    real = worker.run_task
    failures = iter([OSError("Input/output error (NFS went away)"),
                     BusyError("f1.h5 is open in another process; try again")])

    def flaky(ctx, scan, task, entry, **options):
        if task == "link":
            failure = next(failures, None)
            if failure is not None:
                raise failure
        return real(ctx, scan, task, entry, **options)
    monkeypatch.setattr(worker, "run_task", flaky)
    _, report, tasks = _reduce(beamtime)
    link = tasks[(str(ref), "link", "f1")]
    assert (link.status, link.attempts) == ("done", 3)
    assert report.retried == 2 and report.failed == 0 and report.done == 3
    log = beamtime.experiment.log_file.read_text()
    assert "link failed (attempt 1): OSError: Input/output error" in log
    assert "link failed (attempt 2): f1.h5 is open in another process" in log


def test_workers_in_processes_claim_each_task_once_and_respect_prerequisites(site_file,
                                                                             nxgid):
    beamtime = make_beamtime(site_file, {f"s{i:03d}": 2 for i in range(1, 5)})
    exp = beamtime.experiment
    queued = nxgid(["-E", str(exp.root), "reduce", "--all"])
    assert queued.exit_code == 0 and "12 task(s) queued on 4 scan(s)" in queued.stdout
    ran = nxgid(["-E", str(exp.root), "workers", "-n", "2"])
    assert ran.exit_code == 0, ran.output
    with open_database(exp) as db:
        rows = scan_status(db)
        assert status_counts(db) == {"done": 12}
    for row in rows:
        runs = {t.task: t for t in row.tasks}
        assert all(t.attempts == 1 for t in runs.values())  # each claimed exactly once
        assert runs["link"].started_at <= runs["convert"].started_at
        assert runs["convert"].started_at <= runs["preview"].started_at
    log = exp.log_file.read_text()
    for row in rows:
        assert log.count(f"{row.scan}:f1  convert started") == 1
    # `show` on a scan file lists what it links: the raw frames and the reduced results
    shown = nxgid(["show", str(exp.scan_file(rows[0].scan))])
    assert shown.exit_code == 0, shown.output
    scan = rows[0].scan.scan
    assert f"frames   {scan}/f1.h5:/entry/data/data (2 × " in shown.stdout, shown.stdout
    assert f"reduced  img_gid_q: {scan}/f1_reduced.nxs:/img_gid_q/data/img_gid_q (2 × " \
        in shown.stdout, shown.stdout


def test_a_worker_killed_mid_task_is_requeued_and_the_redo_is_clean(site_file):
    set_server(site_file, heartbeat_s=0.2, heartbeat_timeout_s=3.0, max_attempts=3)
    beamtime = make_beamtime(site_file, {}, recipe={"block_frames": "1", "errors": "true"})
    exp = beamtime.experiment
    ref = add_scan(beamtime, "s001", 1)
    frames = np.repeat(simulated_frames(exp, 4), 60, axis=0)  # 240 frames
    write_stack(exp.raw_stack(ref, "f1"), frames)
    ctx = _context(beamtime)
    with open_database(exp) as db:
        queue_reduction(db, ctx, [Selection()], tasks=["link", "convert"])
    output = exp.reduced_file(ref, "f1")
    (process,) = start_workers(exp, 1, site_path=site_file, tasks=["link", "convert"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.is_alive():
        if output.exists() and _committed(output) >= 3:
            break
        time.sleep(0.02)
    assert process.is_alive(), "the worker finished or died before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert process.exitcode == -signal.SIGKILL
    # the output written so far is not corrupt: every committed frame reads back
    committed = _committed(output)
    assert 3 <= committed < 240
    early = NexusFile(output).load("img_gid_q")
    assert early.frames == committed and np.isfinite(early.intensity).any()
    with open_database(exp) as db:
        (row,) = [t for r in scan_status(db) for t in r.tasks if t.task == "convert"]
        assert (row.status, row.attempts) == ("running", 1)
        report = work(db, ctx, tasks=["link", "convert"])  # waits out the heartbeat
        (row,) = [t for r in scan_status(db) for t in r.tasks if t.task == "convert"]
    assert report.requeued == 1 and report.done == 1
    assert (row.status, row.attempts) == ("done", 2)
    assert exp.partial_files(output) == []
    redone = NexusFile(output).load("img_gid_q")
    assert redone.frames == 240
    np.testing.assert_array_equal(redone.intensity[:committed], early.intensity)
    # the redo equals a reduction that was never interrupted
    clean = make_clean_copy(beamtime, frames)
    assert data_arrays(output).keys() == data_arrays(clean).keys()
    for key, values in data_arrays(clean).items():
        if key.endswith("/filename"):
            continue  # the raw file's path differs between the two experiments
        np.testing.assert_array_equal(data_arrays(output)[key], values, err_msg=key)


def _committed(path: Path) -> int:
    try:
        with h5py.File(path, "r", locking=False) as handle:
            return int(handle["img_gid_q/data/frame_ind"].shape[0])
    except (OSError, KeyError):  # not written yet
        return 0


def make_clean_copy(beamtime, frames) -> Path:
    """The same scan reduced without interruption in a second experiment."""
    from nxgid.settings.store import SettingsFile, set_values

    other = beamtime.site_file.parent.parent / "clean-site" / "settings.ini"
    other.parent.mkdir()
    other.write_text(beamtime.site_file.read_text())
    set_values(SettingsFile.read(other), [
        ("instrument", "analysis_home", str(other.parent.parent / "clean"))])
    copy = make_beamtime(other, {}, recipe={"block_frames": "1", "errors": "true"})
    ref = add_scan(copy, "s001", 1)
    write_stack(copy.experiment.raw_stack(ref, "f1"), frames)
    _reduce(copy, tasks=["link", "convert"])
    return copy.experiment.reduced_file(ref, "f1")


def test_summed_scans_are_summed_then_reduced_and_follow_their_sources(site_file):
    from nxgid.experiment.scans import sum_scans

    beamtime = make_beamtime(site_file, {"s001": 2, "s002": 2})
    exp = beamtime.experiment
    sum_scans(exp, "film", "rt", ["s001", "s002"], "s001-s002")
    summed = ScanRef("film", "rt", "s001-s002")
    plan, _, tasks = _reduce(beamtime)
    assert (str(summed), "sum", "") in [(str(r), t, e) for r, t, e in plan.queued]
    assert tasks[(str(summed), "sum", "")].detail.startswith("summed stacks of 2 scans")
    assert tasks[(str(summed), "preview", "f1")].status == "done"

    # a source changes: the sum is stale, and redoing it redoes what follows
    source = exp.raw_stack(beamtime.scans[0], "f1")
    new = simulated_frames(exp, 2, seed=5)
    write_stack(source, new)
    plan, _report, tasks = _reduce(beamtime, stale=True)
    redone = sorted((t, e) for r, t, e in plan.queued if r == summed)
    assert redone == [("convert", "f1"), ("link", "f1"), ("preview", "f1"), ("sum", "")]
    with h5py.File(exp.raw_stack(summed, "f1"), "r") as handle:
        total = handle["entry/data/data"][()]
    with h5py.File(exp.raw_stack(beamtime.scans[1], "f1"), "r") as handle:
        other = handle["entry/data/data"][()]
    np.testing.assert_array_equal(total, new.astype(np.int64) + other)


def test_cli_reduce_now_status_and_errors(site_file, nxgid):
    beamtime = make_beamtime(site_file, {"s001": 2})
    root = str(beamtime.experiment.root)
    missing = nxgid(["-E", root, "reduce"])
    assert missing.exit_code == 2 and "--all" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    bad = nxgid(["-E", root, "reduce", "--all", "--tasks", "convert,fly"])
    assert bad.exit_code == 2 and "fly" in bad.stderr
    done = nxgid(["-v", "-E", root, "reduce", "film/rt", "--now"])
    assert done.exit_code == 0, done.output
    assert "3 done, 0 failed" in done.stdout
    shown = nxgid(["-E", root, "status", "--tasks", "--watch", "--interval", "0.05",
                   "--times", "2"])
    assert shown.exit_code == 0 and shown.stdout.count("convert") >= 1
    again = nxgid(["-E", root, "reduce", "--all"])
    assert "0 task(s) queued" in again.stdout and "3 up to date" in again.stdout


def test_incidence_angle_source_follows_the_recipe(site_file):
    """auto: the configured angle when nothing was logged; a number: that angle for every
    frame; log: refused when there is no log. The angle used is recorded per frame."""
    beamtime = make_beamtime(site_file, {"s001": 2})
    exp, ref = beamtime.experiment, beamtime.scans[0]
    _reduce(beamtime)
    output = exp.reduced_file(ref, "f1")
    with h5py.File(output, "r") as handle:
        assert handle["img_gid_q/data/incidence_angle"][()] == pytest.approx(
            [INCIDENCE_DEG] * 2)
    from nxgid.experiment.recipe import set_recipe

    effective = effective_settings(exp, site_path=site_file)
    set_recipe(exp, effective, "film/rt/s001", [("incidence_angle", "0.5")])
    _reduce(beamtime, stale=True)
    with h5py.File(output, "r") as handle:
        assert handle["img_gid_q/data/incidence_angle"][()] == pytest.approx([0.5, 0.5])
    set_server(site_file, max_attempts=1)
    set_recipe(exp, effective, "film/rt", [("incidence_angle", "log")])
    set_recipe(exp, effective, "film/rt/s001", [("incidence_angle", "log")])
    _, _, tasks = _reduce(beamtime, stale=True)
    convert = tasks[(str(ref), "convert", "f1")]
    assert convert.status == "failed" and "none was logged" in convert.error


def test_a_task_whose_inputs_are_missing_waits_for_them(site_file, nxgid):
    """Queued before the frames exist: link waits (queued, no attempt counted) instead
    of failing, and runs once the raw stack is there."""
    beamtime = make_beamtime(site_file, {"s001": 2})
    exp, ref = beamtime.experiment, beamtime.scans[0]
    stack = exp.raw_stack(ref, "f1")
    frames = stack.read_bytes()
    stack.unlink()
    _, report, tasks = _reduce(beamtime)
    link = tasks[(str(ref), "link", "f1")]
    assert (link.status, link.attempts, link.shown_status) == ("queued", 0, "waiting (input)")
    assert "f1.h5" in link.error
    assert tasks[(str(ref), "convert", "f1")].shown_status == "waiting (link queued)"
    assert (report.waiting, report.failed, report.done) == (1, 0, 0)
    said = nxgid(["-E", str(exp.root), "reduce", "--all", "--now"])
    assert said.exit_code == 0 and "1 waiting for their inputs" in said.stdout
    stack.write_bytes(frames)
    _, report, tasks = _reduce(beamtime)
    assert report.done == 3 and {t.status for t in tasks.values()} == {"done"}
    assert tasks[(str(ref), "link", "f1")].attempts == 1


def test_workers_give_their_task_back_and_stop_when_their_parent_dies(site_file):
    """SIGKILL the `nxgid workers` parent while its worker converts: the worker notices
    (PR_SET_PDEATHSIG, or its once-a-second look at its parent), gives the running task
    back to the queue with the attempt not counted, and exits."""
    import subprocess
    import sys

    from nxgid.workflow.models import TaskRun

    set_server(site_file, heartbeat_s=0.2, heartbeat_timeout_s=60.0, max_attempts=3)
    beamtime = make_beamtime(site_file, {}, recipe={"block_frames": "1", "errors": "true"})
    exp = beamtime.experiment
    ref = add_scan(beamtime, "s001", 1)
    write_stack(exp.raw_stack(ref, "f1"), np.repeat(simulated_frames(exp, 4), 60, axis=0))
    with open_database(exp) as db:
        queue_reduction(db, _context(beamtime), [Selection()], tasks=["link", "convert"])
    parent = subprocess.Popen(
        [sys.executable, "-c", "from nxgid.cli.main import main; main()", "-E",
         str(exp.root), "workers", "-n", "1", "--tasks", "link,convert"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def convert_run():
        with open_database(exp) as db, db.session() as session:
            return next(r for r in session.query(TaskRun) if r.task == "convert")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and convert_run().status != "running":
        assert parent.poll() is None, parent.stderr.read()
        time.sleep(0.05)
    running = convert_run()
    assert running.status == "running" and running.pid not in (None, parent.pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stderr.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(running.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(running.pid, signal.SIGKILL)
        raise AssertionError("the worker outlived its parent by 15 s")
    given_back = convert_run()
    assert (given_back.status, given_back.attempts) == ("queued", 0)
    assert "convert interrupted; given back to the queue" in exp.log_file.read_text()


def test_workers_tell_waiting_tasks_from_queued_ones(site_file, nxgid, monkeypatch):
    """A scan whose raw stack is not there yet: its link waits for the input and its
    convert and preview for their prerequisite; `workers` says so instead of "queued".
    While they run, a line of task counts shows the queue moving."""
    from nxgid.cli import common
    from nxgid.experiment.scans import new_scan

    monkeypatch.setattr(common, "PROGRESS_LINE_EVERY_S", 0.0)
    beamtime = make_beamtime(site_file, {"s001": 2})
    exp = beamtime.experiment
    new_scan(exp, ScanRef(beamtime.scans[0].sample, beamtime.scans[0].label, "s002"), "gid")
    assert nxgid(["-E", str(exp.root), "db", "sync"]).exit_code == 0
    assert nxgid(["-E", str(exp.root), "reduce", "--all"]).exit_code == 0
    ran = nxgid(["-E", str(exp.root), "workers", "-n", "1"])
    assert ran.exit_code == 0, ran.output
    last = ran.stdout.strip().splitlines()
    counts = next(line for line in last if line.startswith("3 done"))
    assert "waiting (input)" in counts and "waiting (prerequisite)" in counts
    assert "queued" not in counts
    assert "waiting tasks cannot run until" in ran.stdout
    assert "\n  tasks: " in ran.stdout and "queued" in ran.stdout.split("\n  tasks: ")[1]
