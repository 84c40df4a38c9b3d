"""The task queue: enqueue tasks on scan entries, claim each exactly once, record the end.

Claiming selects the oldest queued task with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL,
MariaDB/MySQL) and marks it running in the same short transaction; on SQLite the
transaction itself starts with ``BEGIN IMMEDIATE`` and so holds the write lock from the
first read. Either way two workers never get the same task.
"""

from __future__ import annotations

import os
import re
import socket
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update

from nxgid.errors import NxgidError
from nxgid.experiment.layout import ScanRef
from nxgid.workflow.database import WorkflowDB
from nxgid.workflow.models import ERROR_LENGTH, ScanRow, TaskRun, TaskStatus, utcnow

_TASK_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def check_task_name(task: str) -> str:
    if not _TASK_NAME.fullmatch(task):
        raise NxgidError(f"task name {task!r}: expected lower-case letters, digits and '_', "
                         "starting with a letter")
    return task


@dataclass(frozen=True)
class ClaimedTask:
    """A task a worker now owns."""

    id: int
    scan: ScanRef
    task: str
    entry: str
    attempts: int


def _scan_row(session, db: WorkflowDB, ref: ScanRef) -> ScanRow:
    row = session.scalar(select(ScanRow).where(
        ScanRow.experiment_id == db.experiment_id, ScanRow.sample == ref.sample,
        ScanRow.label == ref.label, ScanRow.scan == ref.scan))
    if row is None:
        raise NxgidError(f"scan {ref} is not in the workflow database: run `nxgid db sync`")
    return row


def enqueue(db: WorkflowDB, items: Iterable[tuple[ScanRef, str, str]], *,
            redo_done: bool = False) -> int:
    """Queue ``(scan, task, entry)`` items; returns how many were (re)queued.

    A queued or running task is left alone; a failed one is queued again; a done one
    only with *redo_done*.
    """
    queued = 0
    with db.session() as session:
        scan_rows: dict[ScanRef, ScanRow] = {}
        for ref, task, entry in items:
            check_task_name(task)
            scan = scan_rows.get(ref) or scan_rows.setdefault(ref, _scan_row(session, db, ref))
            run = session.scalar(select(TaskRun).where(
                TaskRun.scan_id == scan.id, TaskRun.task == task, TaskRun.entry == entry))
            if run is None:
                session.add(TaskRun(experiment_id=db.experiment_id, scan_id=scan.id,
                                    task=task, entry=entry,
                                    status=TaskStatus.QUEUED, queued_at=utcnow(), attempts=0))
                queued += 1
            elif run.status == TaskStatus.FAILED or (redo_done and run.status == TaskStatus.DONE):
                run.status, run.queued_at = TaskStatus.QUEUED, utcnow()
                run.started_at = run.ended_at = run.heartbeat_at = None
                run.error = None
                queued += 1
    return queued


def claim(db: WorkflowDB, *, tasks: Sequence[str] | None = None, host: str | None = None,
          pid: int | None = None) -> ClaimedTask | None:
    """Take the oldest queued task of this experiment, or None when the queue is empty."""
    host = host or socket.gethostname()
    pid = pid or os.getpid()
    candidate = (select(TaskRun.id)
                 .where(TaskRun.experiment_id == db.experiment_id,
                        TaskRun.status == TaskStatus.QUEUED)
                 .order_by(TaskRun.id).limit(1)
                 .with_for_update(skip_locked=True))
    if tasks:
        candidate = candidate.where(TaskRun.task.in_(list(tasks)))
    while True:
        with db.session() as session:
            task_id = session.scalar(candidate)
            if task_id is None:
                return None
            now = utcnow()
            changed = session.execute(
                update(TaskRun)
                .where(TaskRun.id == task_id, TaskRun.status == TaskStatus.QUEUED)
                .values(status=TaskStatus.RUNNING, started_at=now, heartbeat_at=now,
                        ended_at=None, attempts=TaskRun.attempts + 1, host=host[:255],
                        pid=pid, error=None)
                .execution_options(synchronize_session=False)).rowcount
            if changed != 1:  # taken between select and update: cannot happen under the
                continue      # locks above, but never hand out a task we did not get
            run = session.get(TaskRun, task_id)
            assert run is not None
            scan = run.scan
            return ClaimedTask(id=run.id, scan=ScanRef(scan.sample, scan.label, scan.scan),
                               task=run.task, entry=run.entry, attempts=run.attempts)


def finish(db: WorkflowDB, task_id: int, *, error: str | None = None) -> None:
    """Record the end of a claimed task: done, or failed with a short *error*."""
    with db.session() as session:
        run = session.get(TaskRun, task_id)
        if run is None:
            raise NxgidError(f"task {task_id} is not in the workflow database")
        run.ended_at = utcnow()
        run.status = TaskStatus.FAILED if error else TaskStatus.DONE
        run.error = error[:ERROR_LENGTH] if error else None


def status_counts(db: WorkflowDB) -> Counter[str]:
    """How many tasks of this experiment are in each state."""
    with db.session() as session:
        rows = session.execute(
            select(TaskRun.status, func.count())
            .where(TaskRun.experiment_id == db.experiment_id)
            .group_by(TaskRun.status)).all()
    return Counter({status: count for status, count in rows})
