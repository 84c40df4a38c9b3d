"""Rebuilding the database from the experiment tree: the files are the truth.

``sync`` looks at the scans on disk (optionally only part of the experiment), adds or
updates their rows, and marks scans it looked for but no longer finds as missing. Rows
outside the part it looked at are never touched, and no row is ever deleted, so task
history survives a scan folder that is temporarily unmounted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from nxgid.experiment.layout import ScanRef, Selection
from nxgid.experiment.logbook import scan_extra
from nxgid.workflow.database import WorkflowDB
from nxgid.workflow.models import ScanRow, utcnow

log = logging.getLogger("nxgid.workflow")


@dataclass
class SyncReport:
    added: list[ScanRef] = field(default_factory=list)
    updated: list[ScanRef] = field(default_factory=list)
    unchanged: list[ScanRef] = field(default_factory=list)
    missing: list[ScanRef] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.missing)

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, "
                f"{len(self.unchanged)} unchanged, {len(self.missing)} missing on disk")


def sync(db: WorkflowDB, selection: Selection | None = None) -> SyncReport:
    """Bring the scan rows of the selected part of the experiment in line with the files."""
    selection = selection or Selection()
    experiment = db.experiment
    on_disk = {ref: experiment.entries(ref) for ref in experiment.scans(selection)}
    report = SyncReport()
    with db.session() as session:
        rows = session.scalars(select(ScanRow).where(
            ScanRow.experiment_id == db.experiment_id)).all()
        known = {ScanRef(r.sample, r.label, r.scan): r for r in rows}
        for ref, entries in sorted(on_disk.items()):
            path = experiment.relative(experiment.scan_file(ref))
            row = known.get(ref)
            if row is None:
                session.add(ScanRow(experiment_id=db.experiment_id, sample=ref.sample,
                                    label=ref.label, scan=ref.scan, path=path,
                                    entries=entries, present=True, synced_at=utcnow()))
                report.added.append(ref)
                log.info("registered scan with entries %s", ", ".join(entries) or "(none)",
                         extra=scan_extra(ref))
            elif row.entries != entries or not row.present or row.path != path:
                row.entries, row.present, row.path = entries, True, path
                row.synced_at = utcnow()
                report.updated.append(ref)
                log.info("updated scan: entries %s", ", ".join(entries) or "(none)",
                         extra=scan_extra(ref))
            else:
                report.unchanged.append(ref)
        for ref, row in sorted(known.items()):
            if ref not in on_disk and selection.matches(ref) and row.present:
                row.present = False
                row.synced_at = utcnow()
                report.missing.append(ref)
                log.warning("scan no longer found on disk; row kept", extra=scan_extra(ref))
    return report
