"""What `nxgid status` shows: every scan with its entries, raw data and tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from nxgid.experiment.layout import ScanRef, Selection, entry_sort_key
from nxgid.workflow.database import WorkflowDB
from nxgid.workflow.models import ScanRow


@dataclass(frozen=True)
class TaskState:
    task: str
    entry: str
    status: str
    attempts: int
    started_at: datetime | None
    duration_s: float | None
    host: str | None
    error: str | None


@dataclass
class ScanStatus:
    scan: ScanRef
    entries: list[str]
    present: bool
    #: Entries whose raw stack ``<scan>/fN.h5`` exists on disk now.
    raw_entries: list[str]
    tasks: list[TaskState] = field(default_factory=list)


def scan_status(db: WorkflowDB, selection: Selection | None = None) -> list[ScanStatus]:
    selection = selection or Selection()
    with db.session() as session:
        rows = session.scalars(
            select(ScanRow).where(ScanRow.experiment_id == db.experiment_id)
            .options(selectinload(ScanRow.tasks))
            .order_by(ScanRow.sample, ScanRow.label, ScanRow.scan)).all()
        result = []
        for row in rows:
            ref = ScanRef(row.sample, row.label, row.scan)
            if not selection.matches(ref):
                continue
            raw = [e for e in row.entries if db.experiment.raw_stack(ref, e).exists()]
            tasks = sorted(
                (TaskState(t.task, t.entry, t.status, t.attempts, t.started_at,
                           t.duration_s, t.host, t.error) for t in row.tasks),
                key=lambda t: (t.task, entry_sort_key(t.entry)))
            result.append(ScanStatus(ref, list(row.entries), row.present, raw, tasks))
    return result
