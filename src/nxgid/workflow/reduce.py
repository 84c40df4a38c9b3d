"""``nxgid reduce``: decide which tasks of the selected scans to queue.

For every selected scan (after bringing the database in line with the files) the tasks
of :func:`nxgid.workflow.tasks.plan` are compared with their rows:

- no row yet → queued;
- queued or running → left alone;
- failed → left for ``nxgid retry`` (or queued again with ``overwrite``);
- done with the same signature → skipped;
- done, but inputs or recipe changed → marked stale, and queued again (allowed to replace
  its outputs) only with ``stale`` or ``overwrite``.

The signature compared is the one the task would have now with the geometry of the
scan's *configuration* (``expected``): after a recalibration or a new mask every scan of
that configuration is stale here, and its ``link`` task, once redone, refreshes the scan
file. Nothing is redone unasked. :attr:`ReducePlan.reasons` says which parts changed.
A task done before the parts were kept (``inputs`` NULL) whose signature of that time
still matches is given today's signature (:func:`queue.adopt`), not made stale.

A task queued again takes the later tasks of the same entry with it (a new reduced file
needs new previews), so one request brings an entry up to date.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from nxgid.experiment.layout import ScanRef, Selection
from nxgid.experiment.logbook import scan_extra
from nxgid.workflow import queue
from nxgid.workflow.database import WorkflowDB
from nxgid.workflow.fingerprints import stale_reason
from nxgid.workflow.models import ScanRow, TaskRun, TaskStatus
from nxgid.workflow.sync import sync
from nxgid.workflow.tasks import InputsMissing, TaskContext, plan, signature

log = logging.getLogger("nxgid.workflow")


@dataclass
class ReducePlan:
    queued: list[tuple[ScanRef, str, str]] = field(default_factory=list)
    skipped: list[tuple[ScanRef, str, str]] = field(default_factory=list)
    stale: list[tuple[ScanRef, str, str]] = field(default_factory=list)
    failed: list[tuple[ScanRef, str, str]] = field(default_factory=list)
    busy: list[tuple[ScanRef, str, str]] = field(default_factory=list)
    scans: list[ScanRef] = field(default_factory=list)
    #: Why each stale task is stale: the inputs that changed.
    reasons: dict[tuple[ScanRef, str, str], str] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{len(self.queued)} task(s) queued on {len(self.scans)} scan(s)",
                 f"{len(self.skipped)} up to date"]
        if self.busy:
            parts.append(f"{len(self.busy)} already queued or running")
        if self.stale:
            parts.append(f"{len(self.stale)} stale")
        if self.failed:
            parts.append(f"{len(self.failed)} failed (`nxgid retry` queues them again)")
        return ", ".join(parts)


def is_summed(ctx: TaskContext, ref: ScanRef) -> bool:
    from nxgid.experiment.scans import summed_from

    if not ctx.experiment.scan_file(ref).is_file():
        return False
    return bool(summed_from(ctx.experiment, ref))


def queue_reduction(db: WorkflowDB, ctx: TaskContext, selections: Sequence[Selection], *,
                    tasks: Sequence[str] | None = None, overwrite: bool = False,
                    stale: bool = False) -> ReducePlan:
    """Queue the tasks the selected scans need; see the module docstring."""
    result = ReducePlan()
    for selection in selections:
        sync(db, selection)
    refs = sorted({ref for selection in selections
                   for ref in ctx.experiment.scans(selection)
                   if ctx.experiment.scan_file(ref).is_file()})
    with db.session() as session:
        rows = session.scalars(select(ScanRow).where(
            ScanRow.experiment_id == db.experiment_id)).all()
        known = {ScanRef(r.sample, r.label, r.scan): r.id for r in rows}
        runs = session.scalars(select(TaskRun).where(
            TaskRun.experiment_id == db.experiment_id)).all()
        existing = {(r.scan_id, r.task, r.entry): (r.status, r.signature, r.id, r.inputs)
                    for r in runs}
    items: list[queue.QueueItem] = []
    redo_items: list[queue.QueueItem] = []
    stale_ids: list[int] = []
    fresh_ids: list[int] = []
    adopted: list[tuple[int, str, dict[str, str]]] = []
    memo: dict = {}
    for ref in refs:
        result.scans.append(ref)
        entries = ctx.experiment.entries(ref)
        redo_entries: set[str] = set()
        for planned in plan(entries, summed=is_summed(ctx, ref), tasks=tasks):
            key = (ref, planned.task, planned.entry)
            item = queue.QueueItem(ref, planned.task, planned.entry, planned.after)
            status, recorded, run_id, inputs = existing.get(
                (known.get(ref), planned.task, planned.entry), (None, None, None, None))
            downstream = planned.entry in redo_entries or "" in redo_entries
            if status is None:
                items.append(item)
                result.queued.append(key)
            elif status in (TaskStatus.QUEUED, TaskStatus.RUNNING):
                result.busy.append(key)
            elif status == TaskStatus.FAILED:
                if overwrite:
                    items.append(queue.QueueItem(*key, planned.after, overwrite=True))
                    result.queued.append(key)
                    redo_entries.add(planned.entry)
                else:
                    result.failed.append(key)
            else:  # done
                missing = ""
                try:
                    current = signature(ctx, *key, expected=True, memo=memo)
                except InputsMissing as exc:
                    current, missing = None, str(exc)
                if current is not None and inputs is None and recorded is not None \
                        and _unchanged_since_before_parts(ctx, key, recorded):
                    as_run = signature(ctx, *key, memo=memo)
                    recorded, inputs = as_run.digest, as_run.parts
                    adopted.append((run_id, recorded, inputs))
                changed = current is None or current.digest != recorded
                if changed:
                    result.stale.append(key)
                    stale_ids.append(run_id)
                    result.reasons[key] = f"inputs missing ({missing})" if current is None \
                        else stale_reason(inputs, current.parts, current.hints) \
                        or "inputs changed"
                if overwrite or downstream or (changed and stale):
                    redo_items.append(queue.QueueItem(*key, planned.after, overwrite=True))
                    result.queued.append(key)
                    redo_entries.add(planned.entry)
                elif not changed:
                    result.skipped.append(key)
                if not changed:
                    fresh_ids.append(run_id)
    queue.adopt(db, adopted)
    queue.mark_stale(db, stale_ids, unchanged=fresh_ids)
    queue.enqueue(db, items)
    queue.enqueue(db, redo_items, redo_done=True)
    log.info("reduce %s: %s", ", ".join(str(s) for s in selections) or "all",
             result.summary())
    for ref, task, entry in result.queued:
        log.info("%s queued", task, extra=scan_extra(ref, entry or None))
    return result


# --- tasks recorded before signature parts (migration 0004) --------------------------

def _unchanged_since_before_parts(ctx: TaskContext, key: tuple[ScanRef, str, str],
                                  recorded: str) -> bool:
    """Whether a task recorded before signatures had parts still has the signature of
    that time (file names, sizes and modification times, the scan file's geometry hash,
    logged values, recipe): then nothing it read changed since, and it is adopted with
    today's signature instead of being made stale. Used only for such rows."""
    try:
        return _signature_before_parts(ctx, *key) == recorded
    except (InputsMissing, OSError, KeyError, ValueError):
        return False


def _signature_before_parts(ctx: TaskContext, ref: ScanRef, task: str, entry: str) -> str:
    import hashlib
    import json

    import h5py

    from nxgid.experiment.scans import entry_logs, geometry_hash, scan_variables, summed_from
    from nxgid.workflow.tasks import recipe_for

    exp = ctx.experiment

    def stat(path) -> list:
        info = path.stat()
        return [path.name, info.st_size, info.st_mtime_ns]

    def digest(*parts) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True,
                                         default=str).encode()).hexdigest()

    def scan_geometry() -> str:
        with h5py.File(exp.scan_file(ref), "r", locking=False) as root:
            return geometry_hash(root)
    if task == "sum":
        sources = summed_from(exp, ref)
        return digest(task, [str(s) for s in sources],
                      [stat(exp.raw_stack(s, e)) for s in sources for e in exp.entries(ref)])
    if task == "link":
        return digest(task, stat(exp.raw_stack(ref, entry)), scan_geometry())
    if task == "convert":
        return digest(task, recipe_for(ctx, ref).sha256, stat(exp.raw_stack(ref, entry)),
                      scan_geometry(), entry_logs(exp, ref, entry).__dict__,
                      scan_variables(exp, ref),
                      ctx.settings.configuration.polarization_factor)
    return digest(task, recipe_for(ctx, ref).values.preview,
                  stat(exp.reduced_file(ref, entry)))
