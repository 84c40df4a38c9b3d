"""One pass of live mode (:class:`LiveReduction`): ready files, import and stacking,
database records and conversion of the new frames."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from nxgid.beamlines.base import BeamLine, RawScan
from nxgid.errors import NxgidError
from nxgid.experiment.layout import Experiment, ScanRef, Selection
from nxgid.experiment.logbook import scan_extra
from nxgid.workflow.live.events import LiveEvent, PassReport, _one_line
from nxgid.workflow.live.files import (
    _Busy,
    _locked,
    _reduced_frames,
    _stack_frames,
    _stacked_files,
    _stat_key,
    select_frames,
)
from nxgid.workflow.live.importing import (
    _fingerprint_or_none,
    _fitted_logs,
    _grown_since_import,
    _import_record,
    _ReadyBeamLine,
    _remove_created,
)
from nxgid.workflow.live.interrupts import _interrupts_deferred
from nxgid.workflow.live.raw_files import _frame_count
from nxgid.workflow.live.readiness import Readiness

log = logging.getLogger("nxgid.live")
#: Attribute of the log records that are also live events (see ``_event``).
LIVE_EVENT = "nxgid_live_event"

#: Frames converted per entry in one pass at most, so that one long backlog does not
#: hold up the other scans (the next pass follows at once).
CHUNK_FRAMES = 256
#: A raw stack held open by another program this long (seconds, at least) is reported.
BUSY_WARNING_S = 60.0


class LiveReduction(Readiness):
    """The state of live mode between passes; :meth:`run_pass` does one pass."""

    def __init__(self, experiment: Experiment, effective, db, *, beamline: str,
                 configuration: str, raw_directory: Path,
                 selections: Sequence[tuple[str, str | None]] = (), settle: float = 1.0,
                 site_path: Path | None = None,
                 on_event: Callable[[LiveEvent], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.experiment = experiment
        self.effective = effective
        self.db = db
        self.beamline = beamline
        self.configuration = configuration
        self.raw_directory = Path(raw_directory)
        self.selections = list(selections)
        self.settle = max(0.0, float(settle))
        self.site_path = site_path
        self.on_event = on_event
        self.clock = clock
        self.passes = 0
        #: path → ((size, mtime_ns), monotonic time first seen so)
        self._seen: dict[str, tuple[tuple[int, int], float]] = {}
        #: path → (size, mtime_ns) when it was read completely
        self._verified: dict[str, tuple[int, int]] = {}
        #: path → ((size, mtime_ns), reason, since, warned)
        self._unreadable: dict[str, list] = {}
        #: (scan, entry, topic) → the last message reported (problems are logged once)
        self._reported: dict[tuple[ScanRef | None, str, str], str] = {}
        #: (scan, entry) → the stat key of stack, reduced and scan file when up to date
        self._up_to_date: dict[tuple[ScanRef, str], tuple] = {}
        #: scans whose logs must be compared with their stacks (first look, or changed)
        self._logs_checked: set[ScanRef] = set()
        self._held: set[ScanRef] = set()
        self._summed: dict[ScanRef, bool] = {}
        self._synced: set[tuple[str, str]] = set()
        #: our files found open in another program: path → since when
        self._busy_since: dict[str, float] = {}
        #: (scan, entry) → (link, convert) (signature, detail, parts) not yet in the
        #: database
        self._unrecorded: dict[tuple[ScanRef, str],
                               tuple[tuple[str, str, dict[str, str]], ...]] = {}
        #: (path, what) → (stat key of path, value): what was read from our own files
        self._cache: dict[tuple[str, str], tuple[tuple[int, int] | None, object]] = {}
        self._report = PassReport(0)

    def _cached(self, path: Path, what: str, compute: Callable[[], object]):
        """*compute()*, read again only when *path* changed (size or time)."""
        key = (str(path), what)
        stat = _stat_key(path)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == stat and stat is not None:
            return hit[1]
        value = compute()
        self._cache[key] = (stat, value)
        return value

    # --- the pass ------------------------------------------------------------------

    def labels(self) -> list[tuple[str, str]]:
        """The selected sample/label pairs (all of the experiment's by default)."""
        exp = self.experiment
        chosen = self.selections or [(sample, None) for sample in exp.samples()]
        pairs = []
        for sample, label in chosen:
            labels = [label] if label else exp.labels(sample)
            pairs += [(sample, lab) for lab in labels if exp.label_dir(sample, lab).is_dir()]
        return pairs

    def run_pass(self) -> PassReport:
        from nxgid.beamlines.base import get_beamline
        from nxgid.workflow.tasks import TaskContext

        started = self.clock()
        self.passes += 1
        self._report = report = PassReport(self.passes)
        effective = self._current_settings()
        ctx = TaskContext(self.experiment, effective)
        plugin = get_beamline(self.beamline)(self.raw_directory, effective.settings)
        pairs = self.labels()
        changed: set[tuple[str, str]] = set()
        for sample, label in pairs:
            try:
                raws = plugin.raw_scans(sample, label)
            except NxgidError as exc:
                self._problem(None, "", f"list:{sample}/{label}",
                              f"{sample}/{label}: the raw scans cannot be listed: {exc}")
                continue
            self._resolved(None, "", f"list:{sample}/{label}")
            for raw in raws:
                try:
                    ref = ScanRef(sample, label, raw.scan)
                except NxgidError:
                    continue  # a name nxgid cannot use: `nxgid import` reports it
                try:
                    if self._raw_scan(plugin, ref, raw):
                        changed.add((sample, label))
                except NxgidError as exc:
                    self._problem(ref, "", "raw", str(exc))
                except Exception as exc:  # a bug or an unexpected file: keep watching
                    log.exception("unexpected error", extra=scan_extra(ref))
                    self._problem(ref, "", "raw", f"unexpected {type(exc).__name__}: "
                                                  f"{_one_line(exc)}")
        for sample, label in pairs:
            if (sample, label) in changed or (sample, label) not in self._synced:
                self._sync(sample, label)
        for sample, label in pairs:
            for ref in self.experiment.scans(Selection(sample, label)):
                if ref in self._held or not self.experiment.scan_file(ref).is_file():
                    continue
                for entry in self._entries(ref):
                    try:
                        self._convert_entry(ctx, ref, entry)
                    except NxgidError as exc:
                        self._problem(ref, entry, "convert", str(exc))
                    except Exception as exc:
                        log.exception("unexpected error", extra=scan_extra(ref, entry))
                        self._problem(ref, entry, "convert",
                                      f"unexpected {type(exc).__name__}: {_one_line(exc)}")
        self._warn_unreadable()
        report.seconds = self.clock() - started
        return report

    def _current_settings(self):
        """The settings, read again every pass: recipe edits during the beamtime count."""
        from nxgid.workflow.workspace import effective_settings

        if self.site_path is None:
            return self.effective
        try:
            self.effective = effective_settings(self.experiment, site_path=self.site_path)
        except NxgidError as exc:
            self._problem(None, "", "settings", f"the settings cannot be read ({exc}); "
                                                "using the last good ones")
        else:
            self._resolved(None, "", "settings")
        return self.effective

    def _entries(self, ref: ScanRef) -> list[str]:
        from nxgid.workflow.reduce import is_summed
        from nxgid.workflow.tasks import TaskContext

        if ref not in self._summed:
            self._summed[ref] = is_summed(TaskContext(self.experiment, self.effective), ref)
        if self._summed[ref]:
            return []  # stacks made by the sum task: `nxgid reduce` handles them
        return [e for e in self._cached(self.experiment.scan_file(ref), "entries",
                                        lambda: self.experiment.entries(ref))
                if self.experiment.raw_stack(ref, e).is_file()]

    # --- events ----------------------------------------------------------------------

    def _event(self, kind: str, ref: ScanRef | None, entry: str, message: str,
               frames: int = 0, level: int = logging.INFO) -> None:
        event = LiveEvent(kind, ref, entry, message, frames)
        # the record is marked: a caller that prints events drops it from stderr
        log.log(level, message, extra={**scan_extra(ref, entry or None), LIVE_EVENT: True})
        self._report.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _problem(self, ref: ScanRef | None, entry: str, topic: str, message: str, *,
                 level: int = logging.ERROR) -> None:
        """Report a problem once (again only when its message changes)."""
        key = (ref, entry, topic)
        if self._reported.get(key) == message:
            return
        self._reported[key] = message
        self._event("error" if level >= logging.ERROR else "warning", ref, entry, message,
                    level=level)

    def _resolved(self, ref: ScanRef | None, entry: str, topic: str) -> None:
        self._reported.pop((ref, entry, topic), None)

    # --- ready files -------------------------------------------------------------------

    # --- import and stacking ---------------------------------------------------------------

    def _raw_scan(self, plugin: BeamLine, ref: ScanRef, raw: RawScan) -> bool:
        """Import or extend one raw scan; True if the experiment tree changed."""
        exp = self.experiment
        if not raw.entries:
            return False  # skipped by the beamline (no images yet, unreadable, …)
        if not exp.scan_file(ref).exists():
            return self._import(plugin, ref, raw)
        record = self._cached(exp.scan_file(ref), "record",
                              lambda: _import_record(exp.scan_file(ref)))
        if record is None:
            self._problem(ref, "", "raw", "the scan exists but was not imported from the "
                          "raw tree; live mode leaves it alone", level=logging.WARNING)
            return False
        if raw.link:
            current = _fingerprint_or_none(raw)
            if current is not None and current != record:
                self._problem(ref, "", "raw", "its HDF5 detector files changed after the "
                              "import; live mode does not append frames inside HDF5 files "
                              "(`nxgid import --overwrite` re-imports the scan)",
                              level=logging.WARNING)
            return False
        return self._extend(plugin, ref, raw, record)

    def _import(self, plugin: BeamLine, ref: ScanRef, raw: RawScan) -> bool:
        from nxgid.beamlines.importer import import_scans

        exp = self.experiment
        entries = {name: ready for name, files in raw.entries.items()
                   if (ready := self._ready_prefix(files, link=raw.link))}
        if not entries:
            return False
        if raw.link and any(len(ready) < len(raw.entries[name])
                            for name, ready in entries.items()):
            return False
        view = dataclasses.replace(raw, entries=entries, skipped=None)
        frames = {name: _frame_count(files) for name, files in entries.items()}
        logs = _fitted_logs(plugin.logs(view), max(frames.values()))
        proxy = _ReadyBeamLine(plugin, view, logs)
        created = [exp.scan_file(ref), exp.scan_dir(ref),
                   *(exp.raw_stack(ref, name) for name in entries)]
        existed = {path: path.exists() for path in created}
        try:
            actions = import_scans(exp, proxy, ref.sample, ref.label, self.configuration)
        except BaseException:
            _remove_created(exp, ref, entries, existed)
            raise
        action = next((a for a in actions if a.scan == ref.scan), None)
        if action is None or action.action != "create":
            detail = action.detail if action is not None else "not listed"
            self._problem(ref, "", "raw", f"not imported: {detail}", level=logging.WARNING)
            return False
        self._resolved(ref, "", "raw")
        self._held.discard(ref)
        self._logs_checked.add(ref)
        total = sum(frames.values())
        self._event("import", ref, "", f"imported with configuration {self.configuration}: "
                    f"{action.detail}", frames=total)
        for warning in action.warnings:
            # a scan still being measured is incomplete: expected here, not a warning
            measuring = "incomplete:" in warning
            self._event("warning", ref, "", warning,
                        level=logging.INFO if measuring else logging.WARNING)
        return True

    def _extend(self, plugin: BeamLine, ref: ScanRef, raw: RawScan, record: str) -> bool:
        """Append the newly ready files of an imported scan to its stacks and refresh
        its logs; True if anything changed."""
        from nxgid.experiment.scans import scan_detector
        from nxgid.experiment.stack import append_images, stack_images

        exp = self.experiment
        positions = set(self._cached(exp.scan_file(ref), "entries", lambda: exp.entries(ref)))
        stacked_view: dict[str, list[Path]] = {}
        changed = trouble = False
        for entry, files in raw.entries.items():
            stack = exp.raw_stack(ref, entry)
            names = [os.path.abspath(f) for f in files]
            if not stack.exists():
                if entry not in positions:
                    self._problem(ref, entry, "stack", f"the raw scan has entry {entry}, "
                                  "which its scan file does not have (too few positions in "
                                  "its configuration)", level=logging.WARNING)
                    trouble = True
                    continue
                ready = self._ready_prefix(files, link=False)
                if not ready:
                    continue
                summary = stack_images([str(p) for p in ready], stack,
                                       detector=scan_detector(exp, ref))
                stacked_view[entry] = ready
                changed = True
                self._event("stack", ref, entry, f"stacked {summary.frames} frame(s) into "
                            f"{stack.name}", frames=summary.frames)
                continue
            stacked = self._cached(stack, "stacked", lambda: _stacked_files(stack))  # noqa: B023
            if names[:len(stacked)] != stacked:
                self._problem(ref, entry, "stack", f"the raw files of {entry} are not those "
                              f"stacked in {stack.name} (renamed or removed?); live mode "
                              "does not append to it (`nxgid import --overwrite` "
                              "re-imports the scan)", level=logging.WARNING)
                trouble = True
                continue
            grown = _grown_since_import(record, entry, stacked)
            if grown:
                self._problem(ref, entry, "stack", f"{grown} changed after it was stacked; "
                              "live mode takes a file once (`nxgid import --overwrite` "
                              "re-imports the scan)", level=logging.WARNING)
            ready = self._ready_prefix(files[len(stacked):], link=False)
            stacked_view[entry] = [Path(p) for p in stacked] + ready
            if not ready:
                continue
            if self._in_use(ref, entry, stack):
                stacked_view[entry] = [Path(p) for p in stacked]
                continue
            try:
                summary = append_images([str(p) for p in ready], stack)
            except NxgidError:
                if self._in_use(ref, entry, stack):
                    stacked_view[entry] = [Path(p) for p in stacked]
                    continue
                raise
            changed = True
            self._resolved(ref, entry, "stack")
            added = summary.frames - summary.resumed_from
            self._event("stack", ref, entry, f"appended {added} frame(s) to {stack.name} "
                        f"({summary.frames} in all)", frames=added)
        if not trouble and (changed or ref not in self._logs_checked or ref in self._held):
            self._refresh_logs(plugin, ref, raw, stacked_view, record)
        return changed

    def _refresh_logs(self, plugin: BeamLine, ref: ScanRef, raw: RawScan,
                      stacked: dict[str, list[Path]], record: str) -> None:
        """Re-read the beamline logs of the stacked files and write them (with the new
        fingerprint) into the scan file, unless the fingerprint says they are current."""
        from nxgid.beamlines.importer import IMPORT_GROUP, fingerprint, write_logs
        from nxgid.experiment.configuration import rewrite
        from nxgid.experiment.locks import file_lock
        from nxgid.nexus.h5 import nx_field

        entries = {name: files for name, files in stacked.items() if files}
        if not entries:
            return
        view = dataclasses.replace(raw, entries=entries, skipped=None)
        print_ = fingerprint(view)
        self._logs_checked.add(ref)
        if print_ == record:
            self._held.discard(ref)
            return
        frames = max(_stack_frames(self.experiment.raw_stack(ref, name))
                     for name in entries)
        try:
            logs = _fitted_logs(plugin.logs(view), frames)
        except NxgidError as exc:
            self._held.add(ref)
            self._problem(ref, "", "logs", f"{exc}; its new frames are not converted until "
                                           "the logs cover them")
            return
        path = self.experiment.scan_file(ref)
        with _interrupts_deferred(), file_lock(path), rewrite(path) as root:
            group = root["entry"].get(IMPORT_GROUP)
            if group is not None:
                nx_field(group, "fingerprint", print_)
            for name in entries:
                if name in root:
                    write_logs(root[name], logs)
        self._held.discard(ref)
        self._resolved(ref, "", "logs")
        log.info("logs of %d frame(s) read again from beamline %s", frames, plugin.name,
                 extra=scan_extra(ref))

    # --- database --------------------------------------------------------------------------

    def _sync(self, sample: str, label: str) -> None:
        from nxgid.workflow.sync import sync

        with _interrupts_deferred():
            sync(self.db, Selection(sample, label))
        self._synced.add((sample, label))

    def _record_pending(self, ref: ScanRef, entry: str) -> bool:
        """Record link and convert done for an entry whose reduced file is complete;
        False if the database cannot take it now (tried again in the next passes)."""
        link, convert = self._unrecorded[(ref, entry)]
        try:
            self._record(ref, "link", entry, *link)
            self._record(ref, "convert", entry, *convert)
        except NxgidError as exc:
            self._problem(ref, entry, "record", f"converted, but the workflow database "
                          f"cannot record it ({exc}); trying again")
            return False
        del self._unrecorded[(ref, entry)]
        self._resolved(ref, entry, "record")
        return True

    def _in_use(self, ref: ScanRef, entry: str, path: Path) -> bool:
        """Whether another program (or thread) has *path* open, so that HDF5 lets no
        writer in: then it waits for the next pass (a warning if that lasts)."""
        key = str(path)
        if not _locked(path):
            self._busy_since.pop(key, None)
            return False
        now = self.clock()
        since = self._busy_since.setdefault(key, now)
        self._waiting(now + 1.0)
        if now - since > max(BUSY_WARNING_S, 20 * self.settle):
            self._problem(ref, entry, f"busy:{path.name}", f"{path.name} has been open in "
                          f"another program for more than {now - since:.0f} s (HDF5 lets no "
                          "writer in meanwhile); its new frames wait", level=logging.WARNING)
        else:
            log.debug("%s is open in another program; trying again", path,
                      extra=scan_extra(ref, entry))
        return True

    def _busy(self, ref: ScanRef, entry: str) -> bool:
        """Whether the workers have this entry's convert task queued or running."""
        from sqlalchemy import select

        from nxgid.workflow.models import ScanRow, TaskRun, TaskStatus

        with self.db.session() as session:
            status = session.scalar(
                select(TaskRun.status).join(ScanRow, TaskRun.scan_id == ScanRow.id).where(
                    ScanRow.experiment_id == self.db.experiment_id,
                    ScanRow.sample == ref.sample, ScanRow.label == ref.label,
                    ScanRow.scan == ref.scan, TaskRun.task == "convert",
                    TaskRun.entry == entry))
        return status in (TaskStatus.QUEUED, TaskStatus.RUNNING)

    def _record(self, ref: ScanRef, task: str, entry: str, signature: str,
                detail: str, inputs: dict[str, str]) -> None:
        from nxgid.workflow.queue import record_done

        with _interrupts_deferred():
            try:
                record_done(self.db, ref, task, entry, signature=signature, detail=detail,
                            inputs=inputs)
            except NxgidError:  # the scan has no row yet: sync its label and try again
                self._sync(ref.sample, ref.label)
                record_done(self.db, ref, task, entry, signature=signature, detail=detail,
                            inputs=inputs)

    # --- conversion --------------------------------------------------------------------------

    def _convert_entry(self, ctx, ref: ScanRef, entry: str) -> None:
        from nxgid.nexus.convert import run_convert
        from nxgid.workflow.tasks import (
            SIGNATURE_INPUT,
            InputsMissing,
            convert_job,
            link_reduced_data,
            recipe_for,
            run_task,
            signature,
        )

        exp = self.experiment
        stack, output = exp.raw_stack(ref, entry), exp.reduced_file(ref, entry)
        key = (_stat_key(stack), _stat_key(output), _stat_key(exp.scan_file(ref)))
        if self._up_to_date.get((ref, entry)) == key:
            return
        try:
            total = _stack_frames(stack)
            done, recipes = _reduced_frames(output)
        except _Busy:
            return  # another process has the file open for writing: next pass
        if total == 0:
            return
        recipe = recipe_for(ctx, ref)
        if done == total and (ref, entry) in self._unrecorded \
                and not self._record_pending(ref, entry):
            return
        if done == total or (done > total) or (output.exists() and recipes != {recipe.sha256}):
            if done > total:
                self._problem(ref, entry, "convert", f"{output.name} holds {done} frames, "
                              f"more than the {total} of {stack.name}; live mode leaves it "
                              "alone", level=logging.WARNING)
            elif done < total:
                self._problem(ref, entry, "convert", f"{output.name} was made "
                              + ("with another recipe" if any(recipes) else
                                 "outside the workflow")
                              + "; live mode does not append to it (`nxgid reduce --stale` "
                                "or --overwrite redoes it)", level=logging.WARNING)
            self._up_to_date[(ref, entry)] = key
            return
        if self._in_use(ref, entry, output):
            return
        if self._busy(ref, entry):
            log.debug("convert is queued or running for the workers; left to them",
                      extra=scan_extra(ref, entry))
            return
        try:
            linked = run_task(ctx, ref, "link", entry)
            sig = signature(ctx, ref, "convert", entry)
        except InputsMissing as exc:
            log.debug("not ready for conversion: %s", exc, extra=scan_extra(ref, entry))
            return
        stop = min(total, done + CHUNK_FRAMES)
        job = convert_job(ctx, ref, entry, output)
        select_frames(job, done, stop)
        job.mode = "append" if output.exists() else "create"
        job.provenance = {SIGNATURE_INPUT: sig.digest, "scan": str(ref), "entry": entry,
                          "written_by": "nxgid watch (live mode)"}
        try:
            summary = run_convert(job)
        except NxgidError:
            if self._in_use(ref, entry, output):
                return  # opened by a reader between the check and the write
            raise
        if job.mode == "create":  # the scan file reaches the new reduced data
            link_reduced_data(exp, ref, entry)
        entries = ", ".join(sorted(set(summary.entries.values())))
        if stop < total:
            self._report.more = True
        else:
            self._unrecorded[(ref, entry)] = (
                (linked.signature, linked.detail, linked.inputs),
                (sig.digest, f"{total} frames → {output.name} ({entries}; live)",
                 sig.parts))
            if self._record_pending(ref, entry):
                self._up_to_date[(ref, entry)] = (_stat_key(stack), _stat_key(output),
                                                  _stat_key(exp.scan_file(ref)))
        self._resolved(ref, entry, "convert")
        self._event("convert", ref, entry, f"converted frames {done}–{stop - 1} → "
                    f"{output.name} ({stop} of {total}; {entries})", frames=summary.frames)

