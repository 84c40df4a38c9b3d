"""The task queue: enqueue tasks on scan entries, claim each exactly once, record the end.

Claiming selects the oldest queued task with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL,
MariaDB/MySQL) and marks it running in the same short transaction; on SQLite the
transaction itself starts with ``BEGIN IMMEDIATE`` and so holds the write lock from the
first read. Either way two workers never get the same task.

A task may name a prerequisite (``after_id``): it is only claimed once that task is done,
so ``convert`` waits for ``link`` and ``preview`` for ``convert``. A running task carries
a heartbeat; :func:`requeue_expired` gives a task whose worker went silent (killed,
machine lost) back to the queue, or fails it when it has used all its attempts.
"""

from __future__ import annotations

import os
import re
import socket
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import aliased

from nxgid.errors import NxgidError
from nxgid.experiment.layout import ScanRef
from nxgid.workflow.database import WorkflowDB
from nxgid.workflow.models import (
    ERROR_LENGTH,
    WAITING_FOR_INPUT,
    ScanRow,
    TaskRun,
    TaskStatus,
    utcnow,
)

_TASK_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def check_task_name(task: str) -> str:
    if not _TASK_NAME.fullmatch(task):
        raise NxgidError(f"task name {task!r}: expected lower-case letters, digits and '_', "
                         "starting with a letter")
    return task


@dataclass(frozen=True)
class QueueItem:
    """A task to queue on a scan entry; *after* is the (task, entry) of the same scan
    that must be done first."""

    scan: ScanRef
    task: str
    entry: str = ""
    after: tuple[str, str] | None = None
    overwrite: bool = False


@dataclass(frozen=True)
class ClaimedTask:
    """A task a worker now owns."""

    id: int
    scan: ScanRef
    task: str
    entry: str
    attempts: int
    overwrite: bool = False


def _scan_row(session, db: WorkflowDB, ref: ScanRef) -> ScanRow:
    row = session.scalar(select(ScanRow).where(
        ScanRow.experiment_id == db.experiment_id, ScanRow.sample == ref.sample,
        ScanRow.label == ref.label, ScanRow.scan == ref.scan))
    if row is None:
        raise NxgidError(f"scan {ref} is not in the workflow database: run `nxgid db sync`")
    return row


def _requeue(run: TaskRun, *, overwrite: bool | None = None) -> None:
    run.status, run.queued_at = TaskStatus.QUEUED, utcnow()
    run.started_at = run.ended_at = run.heartbeat_at = None
    run.error = None
    run.stale = False
    if overwrite is not None:
        run.overwrite = overwrite


def enqueue(db: WorkflowDB, items: Iterable[QueueItem | tuple[ScanRef, str, str]], *,
            redo_done: bool = False) -> int:
    """Queue tasks; returns how many were (re)queued.

    A queued or running task is left alone; a failed one is queued again; a done one
    only with *redo_done* (its ``overwrite`` flag then comes from the item).
    Prerequisites must be listed before the tasks that name them.
    """
    queued = 0
    with db.session() as session:
        scan_rows: dict[ScanRef, ScanRow] = {}
        ids: dict[tuple[ScanRef, str, str], int] = {}
        for item in items:
            if not isinstance(item, QueueItem):
                item = QueueItem(*item)
            ref, task, entry = item.scan, check_task_name(item.task), item.entry
            scan = scan_rows.get(ref) or scan_rows.setdefault(ref, _scan_row(session, db, ref))
            after_id = None
            if item.after is not None:
                after_id = ids.get((ref, *item.after)) or session.scalar(
                    select(TaskRun.id).where(TaskRun.scan_id == scan.id,
                                             TaskRun.task == item.after[0],
                                             TaskRun.entry == item.after[1]))
            run = session.scalar(select(TaskRun).where(
                TaskRun.scan_id == scan.id, TaskRun.task == task, TaskRun.entry == entry))
            if run is None:
                run = TaskRun(experiment_id=db.experiment_id, scan_id=scan.id,
                              task=task, entry=entry, status=TaskStatus.QUEUED,
                              queued_at=utcnow(), attempts=0, after_id=after_id,
                              overwrite=item.overwrite, stale=False)
                session.add(run)
                session.flush()
                queued += 1
            elif run.status == TaskStatus.FAILED or (redo_done and run.status == TaskStatus.DONE):
                _requeue(run, overwrite=item.overwrite if run.status == TaskStatus.DONE
                         else (run.overwrite or item.overwrite))
                run.attempts = 0
                queued += 1
            if after_id is not None and run.after_id != after_id:
                run.after_id = after_id
            ids[(ref, task, entry)] = run.id
    return queued


def _claimable(db: WorkflowDB, tasks: Sequence[str] | None, exclude: Sequence[int] = ()):
    """Queued tasks of this experiment whose prerequisite (if any) is done, but for
    *exclude* (tasks this worker found waiting for their inputs)."""
    before = aliased(TaskRun)
    ready = or_(TaskRun.after_id.is_(None),
                exists(select(before.id).where(before.id == TaskRun.after_id,
                                               before.status == TaskStatus.DONE)))
    query = (select(TaskRun.id)
             .where(TaskRun.experiment_id == db.experiment_id,
                    TaskRun.status == TaskStatus.QUEUED, ready))
    if tasks:
        query = query.where(TaskRun.task.in_(list(tasks)))
    if exclude:
        query = query.where(TaskRun.id.not_in(list(exclude)))
    return query


def claim(db: WorkflowDB, *, tasks: Sequence[str] | None = None, host: str | None = None,
          pid: int | None = None, exclude: Sequence[int] = ()) -> ClaimedTask | None:
    """Take the oldest claimable task of this experiment, or None when there is none."""
    host = host or socket.gethostname()
    pid = pid or os.getpid()
    candidate = (_claimable(db, tasks, exclude).order_by(TaskRun.id).limit(1)
                 .with_for_update(skip_locked=True, of=TaskRun))
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
                               task=run.task, entry=run.entry, attempts=run.attempts,
                               overwrite=run.overwrite)


def heartbeat(db: WorkflowDB, task_id: int, *, pid: int | None = None) -> bool:
    """Record that the worker running *task_id* is alive; False when the task is no
    longer running for this worker (requeued after a timeout and claimed again)."""
    pid = pid or os.getpid()
    with db.session() as session:
        changed = session.execute(
            update(TaskRun)
            .where(TaskRun.id == task_id, TaskRun.status == TaskStatus.RUNNING,
                   TaskRun.pid == pid)
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)).rowcount
    return changed == 1


def finish(db: WorkflowDB, task_id: int, *, error: str | None = None,
           signature: str | None = None, detail: str | None = None,
           host: str | None = None, pid: int | None = None,
           inputs: Mapping[str, str] | None = None) -> None:
    """Record the end of a claimed task: done (with its *signature* and the *inputs*
    parts it was made of), or failed with a short *error*. *host* and *pid* record where
    it really ran when that is not the claimer (a Dask worker)."""
    with db.session() as session:
        run = session.get(TaskRun, task_id)
        if run is None:
            raise NxgidError(f"task {task_id} is not in the workflow database")
        if host is not None:
            run.host = host[:255]
        if pid is not None:
            run.pid = pid
        run.ended_at = utcnow()
        run.status = TaskStatus.FAILED if error else TaskStatus.DONE
        run.error = error[:ERROR_LENGTH] if error else None
        if not error:
            run.signature, run.stale, run.overwrite = signature, False, False
            run.inputs = dict(inputs) if inputs else None
        if detail is not None:
            run.detail = detail[:255]


def fail(db: WorkflowDB, task_id: int, error: str, *, max_attempts: int) -> str:
    """Record a failed attempt: queued again while attempts remain, else failed.
    Returns the new status."""
    with db.session() as session:
        run = session.get(TaskRun, task_id)
        if run is None:
            raise NxgidError(f"task {task_id} is not in the workflow database")
        run.ended_at = utcnow()
        run.error = error[:ERROR_LENGTH]
        if run.attempts < max_attempts:
            run.status, run.queued_at = TaskStatus.QUEUED, utcnow()
        else:
            run.status = TaskStatus.FAILED
        return run.status


def defer(db: WorkflowDB, task_id: int, reason: str) -> None:
    """A claimed task found its inputs missing (not there yet): back to the queue to wait
    for them, the attempt not counted, *reason* kept as ``waiting for input: …``."""
    with db.session() as session:
        run = session.get(TaskRun, task_id)
        if run is not None and run.status == TaskStatus.RUNNING:
            _requeue(run)
            run.attempts = max(run.attempts - 1, 0)
            run.error = (WAITING_FOR_INPUT + reason)[:ERROR_LENGTH]


def release(db: WorkflowDB, task_id: int) -> None:
    """Give a claimed task back untouched (a worker stopped by Ctrl-C): the attempt is
    not counted."""
    with db.session() as session:
        run = session.get(TaskRun, task_id)
        if run is not None and run.status == TaskStatus.RUNNING:
            _requeue(run)
            run.attempts = max(run.attempts - 1, 0)


def requeue_expired(db: WorkflowDB, *, timeout_s: float, max_attempts: int) -> list[int]:
    """Running tasks whose heartbeat is older than *timeout_s*: their worker is gone.
    Each goes back to the queue (or fails once it has used *max_attempts*); returns
    their ids."""
    limit = utcnow() - timedelta(seconds=timeout_s)
    changed = []
    with db.session() as session:
        runs = session.scalars(
            select(TaskRun).where(TaskRun.experiment_id == db.experiment_id,
                                  TaskRun.status == TaskStatus.RUNNING,
                                  TaskRun.heartbeat_at < limit)
            .with_for_update(skip_locked=True)).all()
        for run in runs:
            silent = f"worker {run.host}:{run.pid} stopped responding " \
                     f"(no heartbeat for {timeout_s:g} s)"
            run.ended_at = utcnow()
            run.error = silent
            run.status = TaskStatus.QUEUED if run.attempts < max_attempts \
                else TaskStatus.FAILED
            if run.status == TaskStatus.QUEUED:
                run.queued_at = utcnow()
            changed.append(run.id)
    return changed


def retry(db: WorkflowDB, ids: Iterable[int] | None = None) -> int:
    """Queue failed tasks again with fresh attempts (all failed tasks of the experiment,
    or those of *ids*); returns how many."""
    with db.session() as session:
        query = select(TaskRun).where(TaskRun.experiment_id == db.experiment_id,
                                      TaskRun.status == TaskStatus.FAILED)
        if ids is not None:
            query = query.where(TaskRun.id.in_(list(ids)))
        runs = session.scalars(query).all()
        for run in runs:
            _requeue(run)
            run.attempts = 0
        return len(runs)


def adopt(db: WorkflowDB, records: Iterable[tuple[int, str, Mapping[str, str]]]) -> None:
    """Give done tasks recorded before signature parts were kept (``inputs`` NULL) and
    found unchanged their signature and parts in today's form: (task id, signature,
    parts)."""
    with db.session() as session:
        for task_id, signature, inputs in records:
            run = session.get(TaskRun, task_id)
            if run is not None and run.status == TaskStatus.DONE and run.inputs is None:
                run.signature, run.inputs = signature, dict(inputs)


def mark_stale(db: WorkflowDB, ids: Iterable[int], *, unchanged: Iterable[int] = ()) -> None:
    """Mark done tasks stale (their inputs changed), and clear the mark of *unchanged*
    ones (their inputs are as recorded again, e.g. a recipe change undone)."""
    with db.session() as session:
        for chosen, value in ((list(ids), True), (list(unchanged), False)):
            if chosen:
                session.execute(update(TaskRun).where(TaskRun.id.in_(chosen),
                                                      TaskRun.stale == (not value))
                                .values(stale=value)
                                .execution_options(synchronize_session=False))


@dataclass(frozen=True)
class QueueState:
    """How much work is left: tasks claimable now, running, and queued but waiting for
    a prerequisite that is not done."""

    claimable: int
    running: int
    waiting: int

    @property
    def idle(self) -> bool:
        """Nothing will become claimable without new work: none claimable or running."""
        return self.claimable == 0 and self.running == 0


def queue_state(db: WorkflowDB, tasks: Sequence[str] | None = None,
                exclude: Sequence[int] = ()) -> QueueState:
    with db.session() as session:
        claimable = session.scalar(select(func.count()).select_from(
            _claimable(db, tasks, exclude).subquery()))
        query = select(TaskRun.status, func.count()).where(
            TaskRun.experiment_id == db.experiment_id).group_by(TaskRun.status)
        if tasks:
            query = query.where(TaskRun.task.in_(list(tasks)))
        counts = dict(session.execute(query).all())
    queued = counts.get(TaskStatus.QUEUED, 0)
    return QueueState(claimable=claimable or 0, running=counts.get(TaskStatus.RUNNING, 0),
                      waiting=queued - (claimable or 0))


def status_counts(db: WorkflowDB) -> Counter[str]:
    """How many tasks of this experiment are in each state."""
    with db.session() as session:
        rows = session.execute(
            select(TaskRun.status, func.count())
            .where(TaskRun.experiment_id == db.experiment_id)
            .group_by(TaskRun.status)).all()
    return Counter({status: count for status, count in rows})


def record_done(db: WorkflowDB, ref: ScanRef, task: str, entry: str, *, signature: str,
                detail: str = "", host: str | None = None, pid: int | None = None,
                inputs: Mapping[str, str] | None = None) -> None:
    """Record a task done outside the queue (live mode converts as frames land), so
    that ``nxgid reduce`` sees it up to date; creates the row if needed."""
    now = utcnow()
    with db.session() as session:
        scan = _scan_row(session, db, ref)
        run = session.scalar(select(TaskRun).where(
            TaskRun.scan_id == scan.id, TaskRun.task == check_task_name(task),
            TaskRun.entry == entry))
        if run is None:
            run = TaskRun(experiment_id=db.experiment_id, scan_id=scan.id, task=task,
                          entry=entry, queued_at=now, attempts=0)
            session.add(run)
        if run.status == TaskStatus.RUNNING:
            return  # a worker has it: its own record wins
        run.status, run.ended_at, run.heartbeat_at = TaskStatus.DONE, now, None
        run.started_at = run.started_at or now
        run.attempts = max(run.attempts, 1)
        run.signature, run.stale, run.overwrite = signature, False, False
        run.inputs = dict(inputs) if inputs else None
        run.detail = detail[:255] or None
        run.error = None
        run.host = (host or socket.gethostname())[:255]
        run.pid = pid or os.getpid()
