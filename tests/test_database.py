"""The workflow database on SQLite, PostgreSQL and MariaDB: schema, sync, queue, migration."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC

import h5py
import pytest
from sqlalchemy import inspect, select, text

from nxgid.errors import NxgidError
from nxgid.experiment import ScanRef, Selection, create_sample
from nxgid.workflow import queue
from nxgid.workflow.database import current_revision, head_revision, make_engine, upgrade
from nxgid.workflow.models import Base, ScanRow, TaskRun
from nxgid.workflow.status import scan_status
from nxgid.workflow.sync import sync
from nxgid.workflow.workspace import open_database


def make_scan(exp, ref: ScanRef, entries: int) -> None:
    exp.label_dir(ref.sample, ref.label).mkdir(parents=True, exist_ok=True)
    with h5py.File(exp.scan_file(ref), "w") as handle:
        for index in range(1, entries + 1):
            handle.create_group(f"f{index}")


def test_sqlite_connection_rules(sqlite_experiment):
    with open_database(sqlite_experiment) as db, db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_schema_matches_models(experiment):
    """The migrations build exactly the tables the models describe."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with open_database(experiment) as db, db.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_sync_adds_updates_and_marks_missing(experiment):
    a, b, c = (ScanRef("s1", "rt", "a"), ScanRef("s1", "rt", "b"), ScanRef("s2", "hot", "c"))
    for ref, n in ((a, 2), (b, 1), (c, 3)):
        make_scan(experiment, ref, n)
    with open_database(experiment) as db:
        report = sync(db)
        assert sorted(report.added) == [a, b, c]
        again = sync(db)
        assert not again.changed and len(again.unchanged) == 3
        make_scan(experiment, a, 4)  # more entries now
        experiment.scan_file(b).unlink()  # b disappeared
        experiment.scan_file(c).unlink()  # c too, but we will not look at s2
        report = sync(db, Selection.parse("s1"))
        assert report.updated == [a] and report.missing == [b]
        rows = {r.scan.scan: r for r in scan_status(db)}
        assert rows["a"].entries == ["f1", "f2", "f3", "f4"]
        assert rows["b"].present is False  # kept, marked missing
        assert rows["c"].present is True  # outside the selection: untouched
        with db.session() as session:
            assert session.scalar(select(ScanRow.synced_at).limit(1)).tzinfo is UTC


def test_enqueue_claim_finish(experiment):
    ref = ScanRef("s1", "rt", "a")
    make_scan(experiment, ref, 2)
    with open_database(experiment) as db:
        sync(db)
        assert queue.enqueue(db, [(ref, "convert", "f1"), (ref, "convert", "f2")]) == 2
        assert queue.enqueue(db, [(ref, "convert", "f1")]) == 0  # already queued
        first = queue.claim(db, host="beamline-pc", pid=4242)
        assert first is not None and (first.entry, first.attempts) == ("f1", 1)
        second = queue.claim(db)
        queue.finish(db, first.id)
        queue.finish(db, second.id, error="x" * 2000)
        assert queue.claim(db) is None
        assert queue.status_counts(db) == {"done": 1, "failed": 1}
        tasks = {t.entry: t for t in scan_status(db)[0].tasks}
        assert tasks["f1"].host == "beamline-pc" and tasks["f1"].duration_s >= 0
        assert len(tasks["f2"].error) == 500
        assert tasks["f1"].started_at.tzinfo is UTC
        # failed tasks are requeued with a fresh round of attempts, done ones only
        # when asked
        assert queue.enqueue(db, [(ref, "convert", "f1"), (ref, "convert", "f2")]) == 1
        retry = queue.claim(db)
        assert (retry.entry, retry.attempts) == ("f2", 1)
        assert queue.enqueue(db, [(ref, "convert", "f1")], redo_done=True) == 1
        with pytest.raises(NxgidError, match="not in the workflow database"):
            queue.enqueue(db, [(ScanRef("x", "y", "z"), "convert", "f1")])
        with pytest.raises(NxgidError, match="task name"):
            queue.enqueue(db, [(ref, "Convert!", "f1")])


@pytest.mark.slow
def test_four_processes_claim_1000_tasks_exactly_once(experiment, site_file):
    ref = ScanRef("s1", "rt", "big")
    make_scan(experiment, ref, 1)
    with open_database(experiment) as db:
        sync(db)
        queue.enqueue(db, [(ref, "convert", f"f{i}") for i in range(1, 1001)])
    start_at = time.time() + 2.0  # every worker is connected before the first claim
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=context) as pool:
        import claimers

        futures = [pool.submit(claimers.claim_until_empty, str(experiment.root),
                               str(site_file), start_at) for _ in range(4)]
        results = [f.result(timeout=300) for f in futures]  # a lock error would raise here
    claimed = [task_id for result in results for task_id in result]
    assert len(claimed) == 1000
    assert len(set(claimed)) == 1000  # nobody got a task twice
    assert sum(1 for result in results if result) >= 2  # they really competed
    with open_database(experiment) as db, db.session() as session:
        runs = session.scalars(select(TaskRun)).all()
        assert len(runs) == 1000
        assert {r.status for r in runs} == {"done"}
        assert {r.attempts for r in runs} == {1}


def test_migration_upgrades_an_older_schema(database_url, tmp_path):
    """A database left at revision 0001 with data is upgraded in place, data intact."""
    url = database_url or f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    try:
        assert upgrade(engine, "0001") is None
        with engine.begin() as connection:
            assert current_revision(connection) == "0001"
            columns = {c["name"] for c in inspect(connection).get_columns("task_runs")}
            assert "heartbeat_at" not in columns
            connection.execute(text(
                "INSERT INTO experiments (id, uid, name, root, created_at) "
                "VALUES (1, 'abc', 'old', '/data/old', '2025-01-02 03:04:05')"))
            connection.execute(text(
                "INSERT INTO scans (id, experiment_id, sample, label, scan, path, entries, "
                "present, synced_at) VALUES (1, 1, 's', 'l', 'x', 's/l/s_x.nxs', "
                "'[\"f1\"]', :present, '2025-01-02 03:04:05')"), {"present": True})
            connection.execute(text(
                "INSERT INTO task_runs (id, experiment_id, scan_id, task, entry, status, "
                "queued_at, attempts) "
                "VALUES (1, 1, 1, 'convert', 'f1', 'failed', '2025-01-02 03:04:05', 3)"))
        assert upgrade(engine) == "0001"
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision() == "0004"
            columns = {c["name"] for c in inspect(connection).get_columns("task_runs")}
            assert {"heartbeat_at", "after_id", "signature", "stale", "overwrite",
                    "detail"} <= columns
            indexes = {i["name"] for i in inspect(connection).get_indexes("task_runs")}
            assert "ix_task_runs_queue" in indexes
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            run = session.get(TaskRun, 1)
            assert (run.task, run.status, run.attempts, run.heartbeat_at) == \
                ("convert", "failed", 3, None)
            assert (run.stale, run.overwrite, run.after_id) == (False, False, None)
            assert run.queued_at.tzinfo is UTC and run.queued_at.year == 2025
            assert run.scan.entries == ["f1"]
    finally:
        engine.dispose()


def test_shared_server_keeps_experiments_apart(server_database_url, tmp_path, site_file):
    """Two experiments in one server database each see only their own scans and tasks."""
    database_url = server_database_url
    from nxgid.settings.store import SettingsFile, load_effective, set_value
    from nxgid.workflow.workspace import new_experiment

    set_value(SettingsFile.read(site_file), "server", "database_url", database_url)
    one = new_experiment("one", load_effective(site_file))
    two = new_experiment("two", load_effective(site_file))
    ref = ScanRef("s", "l", "x")
    for exp in (one, two):
        create_sample(exp, "s", "l")
        make_scan(exp, ref, 1)
    with open_database(one) as db1, open_database(two) as db2:
        sync(db1)
        sync(db2)
        queue.enqueue(db1, [(ref, "convert", "f1")])
        assert queue.claim(db2) is None
        assert queue.claim(db1) is not None
        assert len(scan_status(db2)) == 1 and not scan_status(db2)[0].tasks


def test_unreachable_server_is_a_clear_error(sqlite_experiment, site_file):
    from nxgid.errors import DatabaseError
    from nxgid.settings.store import SettingsFile, set_value

    set_value(SettingsFile.read(site_file), "server", "database_url",
              "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    with pytest.raises(DatabaseError, match=r"workflow database postgresql\+psycopg://"):
        open_database(sqlite_experiment)
