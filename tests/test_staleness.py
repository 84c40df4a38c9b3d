"""Staleness that means something: task signatures made of named content fingerprints.

Opening files read-write (as NeXpy does) or touching them makes nothing stale; new frames,
a recalibration or a new mask do, for every scan concerned; `status` and `reduce` name
the inputs that changed; `scan refresh --all` and `reduce --stale` take the new geometry.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

import h5py
import hdf5plugin
import numpy as np
import pytest

from beamtime import add_scan, make_beamtime, simulated_frames
from nxgid.experiment.layout import ScanRef, Selection
from nxgid.nexus.reader import NexusFile
from nxgid.workflow.fingerprints import dataset_fingerprint, stale_reason
from nxgid.workflow.reduce import queue_reduction
from nxgid.workflow.status import scan_status
from nxgid.workflow.tasks import TaskContext, signature
from nxgid.workflow.worker import work
from nxgid.workflow.workspace import effective_settings, open_database

DISTANCE_M = 0.150  # the beamtime's configuration (tests/beamtime.py)
NEW_DISTANCE_M = 0.162


def _context(beamtime) -> TaskContext:
    return TaskContext(beamtime.experiment,
                       effective_settings(beamtime.experiment, site_path=beamtime.site_file))


def _reduce(beamtime, *, run: bool = True, **options):
    ctx = _context(beamtime)
    with open_database(beamtime.experiment, site_path=beamtime.site_file) as db:
        plan = queue_reduction(db, ctx, [Selection()], **options)
        report = work(db, ctx) if run else None
        tasks = {(str(row.scan), t.task, t.entry): t
                 for row in scan_status(db, ctx=ctx) for t in row.tasks}
    return plan, report, tasks


def _keys(items) -> list[tuple[str, str]]:
    return sorted((str(ref), task) for ref, task, _ in items)


def _write_growable_stack(path, frames: np.ndarray) -> None:
    """A raw stack that grows in place, as a live stacker writes it."""
    with h5py.File(path, "w") as handle:
        handle.create_dataset("entry/data/data", data=frames, maxshape=(None, *frames.shape[1:]),
                              chunks=(1, *frames.shape[1:]), **hdf5plugin.Bitshuffle())


def _recalibrate(experiment, distance_m: float) -> None:
    """A new calibration of configuration gid: the same detector, farther away."""
    from nxgid.experiment.configuration import configuration_geometry, set_geometry
    from nxgid.geometry import DetectorGeometry

    path = experiment.configuration_file("gid")
    old = configuration_geometry(path)
    poni1, poni2 = old.poni_m
    rot1, rot2, rot3 = old.rotations_rad
    new = DetectorGeometry.from_parameters(
        detector=old.detector.name, distance_m=distance_m, wavelength_A=old.wavelength_A,
        poni1_m=poni1, poni2_m=poni2, rot1_rad=rot1, rot2_rad=rot2, rot3_rad=rot3)
    set_geometry(path, new)


def _scan_distance_m(experiment, ref) -> float:
    with h5py.File(experiment.scan_file(ref), "r") as root:
        return float(root["entry/instrument/detector/distance"][()])


def _reduced_distance_m(experiment, ref) -> float:
    """The detector distance the conversion used, from process/configuration (JSON)."""
    with h5py.File(experiment.reduced_file(ref, "f1"), "r") as root:
        text = root["img_gid_q/process/configuration/data"][()]
    return float(json.loads(text)["geometry"]["dist"])


def test_opening_files_read_write_or_touching_them_makes_nothing_stale(site_file):
    beamtime = make_beamtime(site_file, {"s001": 2, "s002": 2})
    exp = beamtime.experiment
    _, report, tasks = _reduce(beamtime)
    assert report.done == 6 and {t.status for t in tasks.values()} == {"done"}
    assert all(t.inputs for t in tasks.values())  # every done task keeps its parts
    before = {key: signature(_context(beamtime), ScanRef.parse(key[0]), key[1], key[2])
              for key in tasks}
    stack = exp.raw_stack(beamtime.scans[0], "f1")
    fingerprint = dataset_fingerprint(stack)

    # what NeXpy, silx or h5web do: open every HDF5/NeXus file read-write, close it
    hdf5 = [p for p in exp.root.rglob("*") if p.is_file() and p.suffix in (".h5", ".nxs")]
    assert {p.name for p in hdf5} >= {"f1.h5", "f1_reduced.nxs", "gid.nxs",
                                      "film_s001.nxs"}
    from nexusformat.nexus import nxload
    from nexusformat.nexus.validate import validate_file
    from silx.io import open as silx_open

    for path in hdf5:
        with h5py.File(path, "r+") as handle:
            handle.attrs.get("NX_class")
        nxload(str(path), "rw").close()  # NeXpy's way, read-write
        with silx_open(str(path)) as handle:  # silx view
            list(handle)
    with contextlib.chdir(exp.scan_file(beamtime.scans[0]).parent):
        validate_file(str(exp.scan_file(beamtime.scans[0])))  # nxcheck: opens it r+
    later = time.time() + 3600
    for path in exp.root.rglob("*"):
        if path.is_file() and "nxdatabase" not in path.name:
            os.utime(path, (later, later))

    assert dataset_fingerprint(stack) == fingerprint
    plan, report, tasks = _reduce(beamtime)
    assert plan.stale == [] and plan.queued == [] and len(plan.skipped) == 6
    assert report.done == 0
    assert {key: signature(_context(beamtime), ScanRef.parse(key[0]), key[1], key[2])
            for key in tasks} == before


def test_a_frame_appended_to_the_raw_stack_makes_link_and_convert_stale(site_file, nxgid):
    beamtime = make_beamtime(site_file, {})
    exp = beamtime.experiment
    ref = add_scan(beamtime, "s001", 1)
    frames = simulated_frames(exp, 3, seed=3)
    stack = exp.raw_stack(ref, "f1")
    _write_growable_stack(stack, frames[:2])
    _reduce(beamtime)
    stamp = stack.stat()

    with h5py.File(stack, "r+") as handle:  # one more frame, in place
        data = handle["entry/data/data"]
        data.resize(3, axis=0)
        data[2] = frames[2]
    os.utime(stack, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # same time as before

    plan, _, tasks = _reduce(beamtime, run=False)
    assert _keys(plan.stale) == [(str(ref), "convert"), (str(ref), "link")]
    assert plan.reasons[(ref, "link", "f1")] == "raw stack"
    assert plan.reasons[(ref, "convert", "f1")] == "raw stack"
    assert tasks[(str(ref), "convert", "f1")].stale_reason == "raw stack"
    assert tasks[(str(ref), "preview", "f1")].shown_status == "done"
    said = nxgid(["-E", str(exp.root), "reduce", "--all"])
    assert "stale   link     film/rt/s001 f1: raw stack" in said.stdout
    shown = nxgid(["-E", str(exp.root), "status", "--tasks"])
    assert shown.exit_code == 0 and "stale: raw stack" in shown.stdout

    plan, report, tasks = _reduce(beamtime, stale=True)
    assert _keys(plan.queued) == [(str(ref), t) for t in ("convert", "link", "preview")]
    assert report.done == 3 and {t.shown_status for t in tasks.values()} == {"done"}
    assert NexusFile(exp.reduced_file(ref, "f1")).load("img_gid_q").frames == 3


def test_a_recalibration_reaches_every_scan_of_the_configuration(site_file, nxgid):
    beamtime = make_beamtime(site_file, {"s001": 2, "s002": 2})
    exp = beamtime.experiment
    _reduce(beamtime)
    for ref in beamtime.scans:
        assert _reduced_distance_m(exp, ref) == pytest.approx(DISTANCE_M)

    _recalibrate(exp, NEW_DISTANCE_M)
    plan, report, tasks = _reduce(beamtime, run=False)
    assert _keys(plan.stale) == sorted((str(ref), task) for ref in beamtime.scans
                                       for task in ("convert", "link"))
    assert plan.queued == [] and len(plan.skipped) == 2  # the previews: made from files
    assert set(plan.reasons.values()) == {"geometry (configuration gid changed)"}
    for ref in beamtime.scans:
        for task in ("link", "convert"):
            state = tasks[(str(ref), task, "f1")]
            assert state.shown_status == "stale"
            assert state.stale_reason == "geometry (configuration gid changed)"
        assert _scan_distance_m(exp, ref) == pytest.approx(DISTANCE_M)  # nothing redone
    shown = nxgid(["-E", str(exp.root), "status"])
    assert shown.exit_code == 0 and "stale because" in shown.stdout
    assert "geometry (configuration gid changed)" in " ".join(shown.stdout.split())
    said = nxgid(["-E", str(exp.root), "reduce", "--all"])
    assert "stale   convert  film/rt/s002 f1: geometry (configuration gid changed)" \
        in said.stdout and "`nxgid reduce --stale` redoes the stale tasks" in said.stdout

    plan, report, tasks = _reduce(beamtime, stale=True)
    assert len(plan.queued) == 6 and report.done == 6 and report.failed == 0
    assert {t.shown_status for t in tasks.values()} == {"done"}
    for ref in beamtime.scans:
        assert _scan_distance_m(exp, ref) == pytest.approx(NEW_DISTANCE_M)
        assert _reduced_distance_m(exp, ref) == pytest.approx(NEW_DISTANCE_M)
        assert "refreshed from configuration gid" in tasks[(str(ref), "link", "f1")].detail
    plan, report, _ = _reduce(beamtime)
    assert plan.stale == [] and plan.queued == [] and len(plan.skipped) == 6


def test_a_new_mask_makes_the_scans_stale_and_a_changed_mask_file_names_itself(site_file):
    from nxgid.experiment.configuration import configuration_mask, set_mask
    from nxgid.experiment.recipe import set_recipe

    beamtime = make_beamtime(site_file, {"s001": 2})
    exp, ref = beamtime.experiment, beamtime.scans[0]
    _reduce(beamtime)
    path = exp.configuration_file("gid")
    mask = configuration_mask(path)
    mask[:10, :10] |= 1 << 8  # a beam stop in the user-mask bit
    set_mask(path, mask)
    plan, _, _ = _reduce(beamtime, run=False)
    assert _keys(plan.stale) == [(str(ref), "convert"), (str(ref), "link")]
    assert set(plan.reasons.values()) == {"geometry (configuration gid changed)"}
    _reduce(beamtime, stale=True)
    with h5py.File(exp.reduced_file(ref, "f1"), "r") as root:
        written = root["img_gid_q/instrument/detector/mask"][()]
    assert (written[:10, :10] & (1 << 8)).all() and not (written[10:, 10:] & (1 << 8)).any()

    # a mask image the recipe names: its bytes, not its time, are a part of convert
    image = exp.root / "beamstop.npy"
    np.save(image, np.zeros((195, 487), np.int8))
    set_recipe(exp, effective_settings(exp, site_path=site_file), "",
               [("mask", "beamstop.npy")])
    ctx = _context(beamtime)
    first = signature(ctx, ref, "convert", "f1")
    os.utime(image, (time.time() + 60, time.time() + 60))
    assert signature(ctx, ref, "convert", "f1") == first
    np.save(image, np.ones((195, 487), np.int8))
    second = signature(ctx, ref, "convert", "f1")
    assert second.digest != first.digest
    assert stale_reason(first.parts, second.parts) == "mask file"


def test_scan_refresh_takes_all_and_selections(site_file, nxgid):
    from nxgid.experiment.scans import scan_info

    beamtime = make_beamtime(site_file, {"s001": 2, "s002": 2, "s003": 2})
    exp = beamtime.experiment
    root = str(exp.root)
    _reduce(beamtime, run=False)
    missing = nxgid(["-E", root, "scan", "refresh"])
    assert missing.exit_code == 2 and "--all" in missing.stderr

    _recalibrate(exp, NEW_DISTANCE_M)
    assert all(scan_info(exp, ref).stale for ref in beamtime.scans)
    one = nxgid(["-E", root, "scan", "refresh", "film/rt/s002"])
    assert one.exit_code == 0, one.output
    assert "scan film/rt/s002: refreshed from its configuration" in one.stdout
    every = nxgid(["-E", root, "scan", "refresh", "--all"])
    assert every.exit_code == 0, every.output
    lines = [line for line in every.stdout.splitlines() if line.startswith("scan ")]
    assert lines == ["scan film/rt/s001: refreshed from its configuration",
                     "scan film/rt/s002: already up to date",
                     "scan film/rt/s003: refreshed from its configuration"]
    for ref in beamtime.scans:
        assert scan_info(exp, ref).stale is False
        assert _scan_distance_m(exp, ref) == pytest.approx(NEW_DISTANCE_M)
    again = nxgid(["-E", root, "scan", "refresh", "film"])
    assert again.stdout.count("already up to date") == 3
    nowhere = nxgid(["-E", root, "scan", "refresh", "film/rt/s009"])
    assert nowhere.exit_code == 2 and "s009" in nowhere.stderr


def test_a_refreshed_scan_is_still_stale_until_its_reduction_is_redone(site_file):
    from nxgid.experiment.scans import refresh_scan

    beamtime = make_beamtime(site_file, {"s001": 2})
    exp, ref = beamtime.experiment, beamtime.scans[0]
    _reduce(beamtime)
    _recalibrate(exp, NEW_DISTANCE_M)
    assert refresh_scan(exp, ref) is True
    plan, _, tasks = _reduce(beamtime, run=False)
    assert _keys(plan.stale) == [(str(ref), "convert"), (str(ref), "link")]
    assert tasks[(str(ref), "convert", "f1")].stale_reason == \
        "geometry (configuration gid changed)"
    assert _reduced_distance_m(exp, ref) == pytest.approx(DISTANCE_M)


def test_link_does_not_refresh_under_existing_outputs_unless_it_may_replace_them(site_file):
    """A first link (live mode, an older database) on an entry whose reduced file exists
    keeps the scan's geometry, so one file never mixes two; the tasks stay stale."""
    from nxgid.workflow.tasks import run_task

    beamtime = make_beamtime(site_file, {"s001": 2})
    exp, ref = beamtime.experiment, beamtime.scans[0]
    _reduce(beamtime)
    _recalibrate(exp, NEW_DISTANCE_M)
    ctx = _context(beamtime)
    kept = run_task(ctx, ref, "link", "f1")
    assert "not refreshed" in kept.detail
    assert _scan_distance_m(exp, ref) == pytest.approx(DISTANCE_M)
    expected = signature(ctx, ref, "link", "f1", expected=True)
    assert kept.signature != expected.digest
    assert stale_reason(kept.inputs, expected.parts) == \
        "geometry (configuration gid changed)"
    redone = run_task(ctx, ref, "link", "f1", overwrite=True)
    assert redone.signature == expected.digest
    assert _scan_distance_m(exp, ref) == pytest.approx(NEW_DISTANCE_M)


def test_tasks_recorded_before_parts_are_adopted_or_said_to_have_changed(site_file, nxgid):
    from sqlalchemy import update

    from nxgid.workflow.models import TaskRun
    from nxgid.workflow.reduce import _signature_before_parts

    beamtime = make_beamtime(site_file, {"s001": 2})
    exp, ref = beamtime.experiment, beamtime.scans[0]
    _reduce(beamtime)
    ctx = _context(beamtime)
    with open_database(exp, site_path=site_file) as db, db.session() as session:
        for run in session.query(TaskRun).all():  # as nxgid wrote them before 0004
            old = _signature_before_parts(ctx, ref, run.task, run.entry)
            session.execute(update(TaskRun).where(TaskRun.id == run.id).values(
                signature=old if run.task != "convert" else "0" * 64, inputs=None))
    plan, _, tasks = _reduce(beamtime, run=False)
    assert _keys(plan.skipped) == [(str(ref), "link"), (str(ref), "preview")]
    assert tasks[(str(ref), "link", "f1")].inputs  # adopted with today's parts
    assert _keys(plan.stale) == [(str(ref), "convert")]
    assert plan.reasons[(ref, "convert", "f1")] == "inputs changed"
    assert tasks[(str(ref), "convert", "f1")].stale_reason == "inputs changed"
    shown = nxgid(["-E", str(exp.root), "status", "--tasks"])
    assert "stale: inputs changed" in shown.stdout


def test_the_migration_adds_task_inputs_to_a_database_made_by_0003(database_url, tmp_path):
    from datetime import UTC

    from sqlalchemy import inspect, text
    from sqlalchemy.orm import Session

    from nxgid.workflow.database import current_revision, head_revision, make_engine, upgrade
    from nxgid.workflow.models import TaskRun

    url = database_url or f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    signature_0003 = "ab" * 32
    try:
        assert upgrade(engine, "0003") is None
        with engine.begin() as connection:
            columns = {c["name"] for c in inspect(connection).get_columns("task_runs")}
            assert "inputs" not in columns and "signature" in columns
            connection.execute(text(
                "INSERT INTO experiments (id, uid, name, root, created_at) "
                "VALUES (1, 'abc', 'old', '/data/old', '2025-01-02 03:04:05')"))
            connection.execute(text(
                "INSERT INTO scans (id, experiment_id, sample, label, scan, path, entries, "
                "present, synced_at) VALUES (1, 1, 's', 'l', 'x', 's/l/s_x.nxs', "
                "'[\"f1\"]', :present, '2025-01-02 03:04:05')"), {"present": True})
            connection.execute(text(
                "INSERT INTO task_runs (id, experiment_id, scan_id, task, entry, status, "
                "queued_at, attempts, signature, stale, overwrite, detail) VALUES "
                "(1, 1, 1, 'convert', 'f1', 'done', '2025-01-02 03:04:05', 1, :sig, "
                ":no, :no, '2 frames')"), {"sig": signature_0003, "no": False})
        assert upgrade(engine) == "0003"
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision() == "0004"
            columns = {c["name"] for c in inspect(connection).get_columns("task_runs")}
            assert "inputs" in columns
        with Session(engine) as session:
            run = session.get(TaskRun, 1)
            assert (run.status, run.signature, run.detail, run.inputs) == \
                ("done", signature_0003, "2 frames", None)
            assert run.queued_at.tzinfo is UTC
            run.inputs = {"raw stack": "0123456789abcdef", "geometry": "gid:fedcba9876543210"}
            session.commit()
        with Session(engine) as session:
            assert session.get(TaskRun, 1).inputs == {
                "raw stack": "0123456789abcdef", "geometry": "gid:fedcba9876543210"}
    finally:
        engine.dispose()


def test_fingerprints_follow_links_and_virtual_sources_and_ignore_read_write_opens(tmp_path):
    rng = np.random.default_rng(7)
    frames = rng.poisson(5, (4, 16, 12)).astype(np.int32)

    def source(name, data, **options):
        with h5py.File(tmp_path / name, "w") as handle:
            handle.create_dataset("entry/data/data", data=data, **options)
        return tmp_path / name

    # an external link to a beamline file, chunked and compressed
    beamline = source("beamline.h5", frames, chunks=(1, 16, 12), **hdf5plugin.Bitshuffle())
    with h5py.File(tmp_path / "linked.h5", "w") as handle:
        handle["entry/data/data"] = h5py.ExternalLink("beamline.h5", "/entry/data/data")
    # a virtual dataset over two Eiger-like parts, and a contiguous stack
    parts = [source(f"part{i}.h5", frames[2 * i:2 * i + 2], chunks=(1, 16, 12),
                    compression="gzip") for i in range(2)]
    layout = h5py.VirtualLayout(shape=frames.shape, dtype=frames.dtype)
    for i, part in enumerate(parts):
        layout[2 * i:2 * i + 2] = h5py.VirtualSource(part.name, "/entry/data/data",
                                                     shape=(2, 16, 12))
    with h5py.File(tmp_path / "virtual.h5", "w") as handle:
        handle.create_virtual_dataset("entry/data/data", layout)
    contiguous = source("contiguous.h5", frames)
    stacks = [tmp_path / "linked.h5", tmp_path / "virtual.h5", contiguous]
    first = {p.name: dataset_fingerprint(p) for p in stacks}
    assert len(set(first.values())) == 3

    for path in tmp_path.glob("*.h5"):
        with h5py.File(path, "r+"):
            pass
        os.utime(path, (1e9, 1e9))
    assert {p.name: dataset_fingerprint(p) for p in stacks} == first

    other = rng.poisson(50, (16, 12)).astype(np.int32)
    with h5py.File(beamline, "r+") as handle:  # a frame rewritten in the beamline file
        handle["entry/data/data"][1] = other
    with h5py.File(parts[0], "w") as handle:  # a part written again, its 2nd frame new
        handle.create_dataset("entry/data/data", data=np.stack([frames[0], other]),
                              chunks=(1, 16, 12), compression="gzip")
    with h5py.File(contiguous, "r+") as handle:  # the last frame, in place
        handle["entry/data/data"][3] = other
    now = {p.name: dataset_fingerprint(p) for p in stacks}
    assert all(now[name] != first[name] for name in first)
