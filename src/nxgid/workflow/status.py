"""What `nxgid status` shows: every scan with its entries, raw data and tasks, and why
each stale task is stale."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from nxgid.experiment.layout import ScanRef, Selection, entry_sort_key
from nxgid.workflow.database import WorkflowDB
from nxgid.workflow.models import WAITING_FOR_INPUT, ScanRow

if TYPE_CHECKING:
    from nxgid.workflow.tasks import TaskContext


@dataclass(frozen=True)
class TaskState:
    id: int
    task: str
    entry: str
    status: str
    attempts: int
    started_at: datetime | None
    duration_s: float | None
    host: str | None
    error: str | None
    detail: str | None = None
    stale: bool = False
    #: Queued, but its prerequisite is not done (the prerequisite's state).
    waiting_for: str | None = None
    #: The signature parts it was done with (None: done before parts were kept).
    inputs: dict[str, str] | None = None
    #: Stale: which inputs changed, e.g. "geometry (configuration gid changed)" (given
    #: when :func:`scan_status` is called with a task context).
    stale_reason: str | None = None

    @property
    def shown_status(self) -> str:
        """The state as `nxgid status` shows it: stale and waiting are told apart."""
        if self.status == "done" and self.stale:
            return "stale"
        if self.status == "queued" and self.waiting_for:
            return f"waiting ({self.waiting_for})"
        if self.status == "queued" and (self.error or "").startswith(WAITING_FOR_INPUT):
            return "waiting (input)"
        return self.status


@dataclass
class ScanStatus:
    scan: ScanRef
    entries: list[str]
    present: bool
    #: Entries whose raw stack ``<scan>/fN.h5`` exists on disk now.
    raw_entries: list[str]
    tasks: list[TaskState] = field(default_factory=list)


def scan_status(db: WorkflowDB, selection: Selection | None = None, *,
                ctx: TaskContext | None = None) -> list[ScanStatus]:
    """Every scan of the selection with its tasks; with *ctx*, stale tasks say why
    (their recorded parts against the current ones: metadata reads of their inputs)."""
    selection = selection or Selection()
    with db.session() as session:
        rows = session.scalars(
            select(ScanRow).where(ScanRow.experiment_id == db.experiment_id)
            .options(selectinload(ScanRow.tasks))
            .order_by(ScanRow.sample, ScanRow.label, ScanRow.scan)).all()
        by_id = {t.id: t for row in rows for t in row.tasks}
        result = []
        for row in rows:
            ref = ScanRef(row.sample, row.label, row.scan)
            if not selection.matches(ref):
                continue
            raw = [e for e in row.entries if db.experiment.raw_stack(ref, e).exists()]
            tasks = sorted(
                (TaskState(t.id, t.task, t.entry, t.status, t.attempts, t.started_at,
                           t.duration_s, t.host, t.error, t.detail, t.stale,
                           _waiting_for(t, by_id), t.inputs) for t in row.tasks),
                key=lambda t: (t.task, entry_sort_key(t.entry)))
            result.append(ScanStatus(ref, list(row.entries), row.present, raw, tasks))
    if ctx is not None:
        explain_stale(ctx, result)
    return result


def shown_counts(scans: list[ScanStatus]) -> dict[str, int]:
    """Tasks per shown state, queued and waiting apart: ``{"done": 13, "queued": 1,
    "waiting (input)": 2}`` (waiting: queued, but a prerequisite or the input is not
    there yet, so no worker can take it now)."""
    counts: dict[str, int] = {}
    for scan in scans:
        for task in scan.tasks:
            state = task.shown_status
            if state.startswith("waiting ("):
                state = "waiting (input)" if state == "waiting (input)" else \
                    "waiting (prerequisite)"
            counts[state] = counts.get(state, 0) + 1
    return dict(sorted(counts.items()))


def explain_stale(ctx: TaskContext, scans: list[ScanStatus]) -> list[ScanStatus]:
    """Give every stale task of *scans* its :attr:`TaskState.stale_reason` (in place;
    returns *scans*). Each input is read once, metadata and two frames at most."""
    memo: dict = {}
    for scan in scans:
        scan.tasks = [dataclasses.replace(t, stale_reason=stale_reason_of(
            ctx, scan.scan, t, memo)) if t.shown_status == "stale" else t
            for t in scan.tasks]
    return scans


def stale_reason_of(ctx: TaskContext, ref: ScanRef, task: TaskState,
                    memo: dict | None = None) -> str:
    """Why a stale task is stale: the parts of its signature that changed since it was
    done (see :func:`nxgid.workflow.fingerprints.stale_reason`)."""
    from nxgid.workflow.fingerprints import stale_reason
    from nxgid.workflow.tasks import InputsMissing, signature

    try:
        current = signature(ctx, ref, task.task, task.entry, expected=True, memo=memo)
    except InputsMissing as exc:
        return f"inputs missing ({exc})"
    except Exception as exc:  # status must show the rest
        return f"inputs unreadable ({str(exc).splitlines()[0] if str(exc) else exc!r})"
    return stale_reason(task.inputs, current.parts, current.hints) or \
        "inputs as recorded again (`nxgid reduce` clears the mark)"


def _waiting_for(run, by_id) -> str | None:
    if run.status != "queued" or run.after_id is None:
        return None
    before = by_id.get(run.after_id)
    if before is None or before.status == "done":
        return None
    return f"{before.task} {before.status}"
