"""Live mode (``nxgid watch``): import scans and reduce frames while they are measured.

One *pass* (:meth:`LiveReduction.run_pass`) does, for every selected ``sample/label``:

1. lists the raw scans with the beamline plugin and keeps, per entry, the image files
   that are *ready*: size and modification time unchanged for ``settle`` seconds (as
   seen by this process, so clock skew on network file systems does not matter), and
   every frame fully readable (decoded once, e.g. a CBF's checksum and size). Files are
   taken in order up to the first that is not ready, so a stack never skips a frame;
2. imports new scans from the configuration (:func:`nxgid.beamlines.importer.
   import_scans`, with only the ready files) and appends the newly ready files of
   imported scans to their raw stacks ``<scan>/fN.h5`` (:func:`nxgid.stack.
   append_images`: whole frames only, crash-safe), then re-reads the beamline logs of
   those scans so that they cover every stacked frame (a beamline that logs fewer
   points than there are frames is an error for that scan only, retried every pass);
3. brings the workflow database in line (:func:`nxgid.workflow.sync.sync`);
4. converts, for every entry whose raw stack holds more frames than its reduced file
   ``<scan>/fN_reduced.nxs`` has committed, only the new frames under the scan's recipe
   (:func:`nxgid.workflow.tasks.convert_job`), appending them to the reduced file
   (NeXus writer mode ``append``; ``create`` the first time), and records ``link`` and
   ``convert`` done (:func:`nxgid.workflow.queue.record_done`) once the file holds every
   frame, so ``nxgid reduce`` and ``nxgid status`` see the entry up to date.

The raw tree is only ever read. Every action is logged to the ``nxgid`` logger with the
scan and entry (the experiment log, ``tasks/nxlogger.log``); a problem with one scan is
logged once (until it changes) and never stops the others.

:func:`watch` runs passes: one at the start, then whenever the file-system observer
(:mod:`watchdog`; inotify, or polling with ``poll`` or when the native observer cannot
start) reports a change in the raw tree (debounced), when a file waiting to settle may
have settled, and every ``interval`` seconds regardless. ``stop`` (a
:class:`threading.Event`) or Ctrl-C ends it; the writers roll an interrupted block
back, so every file stays readable with whole frames, and the database only ever
records what is on disk.

Limits: HDF5 detector files (``hdf5`` beamline, e.g. Eiger masters) are imported once
the master file is stable, by link; frames added inside HDF5 files later are not picked
up (re-import with ``nxgid import --overwrite``). An image file is stacked whole once
ready: a multi-frame file that grows after that is reported, not re-read. Summed scans,
and entries whose ``convert`` task is queued or running for the workers, are left to
``nxgid reduce``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nxgid.beamlines.base import BeamLine, RawScan, ScanLogs
from nxgid.errors import MissingError, NxgidError
from nxgid.experiment.layout import Experiment, ScanRef, Selection
from nxgid.experiment.logbook import scan_extra

log = logging.getLogger("nxgid.live")

#: Watchdog event types that mean the raw tree changed (opening or reading a file does
#: not: our own reads must not wake the loop).
CHANGE_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed"})
#: Frames converted per entry in one pass at most, so that one long backlog does not
#: hold up the other scans (the next pass follows at once).
CHUNK_FRAMES = 256
#: A file that stays unreadable this long (seconds, at least) is reported as a warning.
UNREADABLE_WARNING_S = 60.0


@dataclass(frozen=True)
class LiveEvent:
    """Something live mode did or found: ``kind`` is ``import``, ``stack``, ``convert``,
    ``warning`` or ``error``; ``frames`` the frames imported, stacked or converted."""

    kind: str
    scan: ScanRef | None
    entry: str
    message: str
    frames: int = 0

    def __str__(self) -> str:
        where = f"{self.scan} {self.entry}".strip() if self.scan else ""
        return f"{where}: {self.message}" if where else self.message


@dataclass
class PassReport:
    """One pass: its events, the files still waiting (to settle or to become readable),
    when the earliest of them may be ready (``time.monotonic``), and whether work was
    left for the next pass (a backlog bigger than :data:`CHUNK_FRAMES`)."""

    number: int
    events: list[LiveEvent] = field(default_factory=list)
    waiting: int = 0
    next_check: float | None = None
    more: bool = False
    seconds: float = 0.0

    @property
    def active(self) -> bool:
        return any(e.kind in ("import", "stack", "convert") for e in self.events)


@dataclass
class LiveSummary:
    """What :func:`watch` did, from start to stop."""

    observer: str = ""
    passes: int = 0
    scans_imported: int = 0
    frames_stacked: int = 0
    frames_converted: int = 0
    errors: int = 0
    interrupted: bool = False
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{self.scans_imported} scan(s) imported, {self.frames_stacked} frame(s) "
                f"appended to raw stacks, {self.frames_converted} frame(s) converted, "
                f"{self.errors} error(s) in {self.passes} pass(es), {self.seconds:.0f} s")


# --- the observer ------------------------------------------------------------------------


class RawWatcher:
    """A recursive watchdog observer on the raw tree that only sets :attr:`changed`.

    Native (inotify on Linux) unless ``poll`` is true or the native observer cannot
    start (e.g. the inotify watch limit), then :class:`~watchdog.observers.polling.
    PollingObserver` checking every ``poll_interval`` seconds (network file systems,
    where inotify sees nothing written by other hosts).
    """

    def __init__(self, root: Path, *, poll: bool = False, poll_interval: float = 1.0):
        self.root = Path(root)
        self.poll = poll
        self.poll_interval = poll_interval
        self.changed = threading.Event()
        self.kind = ""
        self._observer = None

    def start(self) -> str:
        """Start observing; returns a description of the observer in use."""
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        changed = self.changed

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                if event.event_type in CHANGE_EVENTS:
                    changed.set()

        handler = Handler()
        if not self.poll:
            observer = Observer()
            try:
                observer.schedule(handler, str(self.root), recursive=True)
                observer.start()
            except Exception as exc:  # inotify limits, an unsupported file system
                with contextlib.suppress(Exception):
                    observer.stop()
                log.warning("the native file-system observer cannot watch %s (%s); "
                            "polling instead", self.root, _one_line(exc))
            else:
                self._observer = observer
                self.kind = type(observer).__name__.removesuffix("Observer").lower() \
                    or "native"
                return self.kind
        observer = PollingObserver(timeout=self.poll_interval)
        observer.schedule(handler, str(self.root), recursive=True)
        observer.start()
        self._observer = observer
        self.kind = f"polling every {self.poll_interval:g} s"
        return self.kind

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is None:
            return
        observer.stop()
        observer.join(timeout=10)


# --- one pass ----------------------------------------------------------------------------


def parse_selections(experiment: Experiment, texts: Sequence[str]) -> list[tuple[str, str | None]]:
    """``SAMPLE`` or ``SAMPLE/LABEL`` → (sample, label or None); each must exist."""
    chosen: list[tuple[str, str | None]] = []
    for text in texts:
        sample, _, label = text.strip().strip("/").partition("/")
        if not sample or "/" in label:
            raise NxgidError(f"{text!r}: expected SAMPLE or SAMPLE/LABEL")
        if not experiment.sample_dir(sample).is_dir():
            raise MissingError(f"sample {sample!r} does not exist: create it with "
                               f"`nxgid sample new {sample} LABEL`")
        if label and not experiment.label_dir(sample, label).is_dir():
            raise MissingError(f"{sample}/{label} does not exist: create it with "
                               f"`nxgid sample new {sample} {label}`")
        chosen.append((sample, label or None))
    return chosen


class LiveReduction:
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
        #: (scan, entry) → (link, convert) (signature, detail) not yet in the database
        self._unrecorded: dict[tuple[ScanRef, str], tuple[tuple[str, str], ...]] = {}
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
        log.log(level, message, extra=scan_extra(ref, entry or None))
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

    def _ready(self, name: str, key: tuple[int, int] | None, now: float, *,
               link: bool) -> bool:
        """Whether file *name*, of (size, mtime_ns) *key* as stat'ed just before *now*,
        has settled and reads completely (see the module docstring)."""
        if key is None:
            return False
        seen = self._seen.get(name)
        if seen is None or seen[0] != key:
            self._seen[name] = seen = (key, now)
            self._verified.pop(name, None)
        if now - seen[1] < self.settle:
            self._waiting(seen[1] + self.settle)
            return False
        if self._verified.get(name) == key:
            return True
        bad = self._unreadable.get(name)
        if bad is not None and bad[0] == key:
            self._waiting(None)
            return False  # read again only once the file changes
        problem = _unreadable(Path(name), link=link)
        if problem is None:
            self._verified[name] = key
            self._unreadable.pop(name, None)
            return True
        self._unreadable[name] = [key, problem, now, False]
        log.info("%s is not readable yet (%s); waiting for it to be completed", name,
                 problem)
        self._waiting(None)
        return False

    def _waiting(self, when: float | None) -> None:
        report = self._report
        report.waiting += 1
        if when is not None and (report.next_check is None or when < report.next_check):
            report.next_check = when

    def _warn_unreadable(self) -> None:
        limit = max(UNREADABLE_WARNING_S, 20 * self.settle)
        now = self.clock()
        for name, record in self._unreadable.items():
            _key, problem, since, warned = record
            if not warned and now - since > limit:
                record[3] = True
                self._event("warning", None, "", f"{name} has not been readable for "
                            f"{now - since:.0f} s ({problem}); the frames after it wait for "
                            "it", level=logging.WARNING)

    def _ready_prefix(self, files: Sequence[Path], *, link: bool) -> list[Path]:
        """The files, in order, up to the first that is not ready. All are stat'ed
        before the clock is read, so the time a file is seen unchanged from is never
        earlier than its stat (and files that appear together settle together)."""
        names = [os.path.abspath(path) for path in files]
        keys = [_stat_key(Path(name)) for name in names]
        now = self.clock()
        ready: list[Path] = []
        blocked = False
        for name, key in zip(names, keys, strict=True):
            if blocked:  # not taken yet, but its settle time starts now
                if key is not None and self._seen.get(name, (None,))[0] != key:
                    self._seen[name] = (key, now)
                    self._verified.pop(name, None)
                continue
            if self._ready(name, key, now, link=link):
                ready.append(Path(name))
            else:
                blocked = True
        return ready

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
            self._event("warning", ref, "", warning, level=logging.WARNING)
        return True

    def _extend(self, plugin: BeamLine, ref: ScanRef, raw: RawScan, record: str) -> bool:
        """Append the newly ready files of an imported scan to its stacks and refresh
        its logs; True if anything changed."""
        from nxgid.stack import append_images, stack_images

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
                summary = stack_images([str(p) for p in ready], stack)
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
        (link_sig, link_detail), (sig, detail) = self._unrecorded[(ref, entry)]
        try:
            self._record(ref, "link", entry, link_sig, link_detail)
            self._record(ref, "convert", entry, sig, detail)
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
        if now - since > max(UNREADABLE_WARNING_S, 20 * self.settle):
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
                detail: str) -> None:
        from nxgid.workflow.queue import record_done

        with _interrupts_deferred():
            try:
                record_done(self.db, ref, task, entry, signature=signature, detail=detail)
            except NxgidError:  # the scan has no row yet: sync its label and try again
                self._sync(ref.sample, ref.label)
                record_done(self.db, ref, task, entry, signature=signature, detail=detail)

    # --- conversion --------------------------------------------------------------------------

    def _convert_entry(self, ctx, ref: ScanRef, entry: str) -> None:
        from nxgid.convert import run_convert
        from nxgid.workflow.tasks import (
            SIGNATURE_INPUT,
            InputsMissing,
            convert_job,
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
        _select_frames(job, done, stop)
        job.mode = "append" if output.exists() else "create"
        job.provenance = {SIGNATURE_INPUT: sig, "scan": str(ref), "entry": entry,
                          "written_by": "nxgid watch (live mode)"}
        try:
            summary = run_convert(job)
        except NxgidError:
            if self._in_use(ref, entry, output):
                return  # opened by a reader between the check and the write
            raise
        entries = ", ".join(sorted(set(summary.entries.values())))
        if stop < total:
            self._report.more = True
        else:
            self._unrecorded[(ref, entry)] = (
                (linked.signature, linked.detail),
                (sig, f"{total} frames → {output.name} ({entries}; live)"))
            if self._record_pending(ref, entry):
                self._up_to_date[(ref, entry)] = (_stat_key(stack), _stat_key(output),
                                                  _stat_key(exp.scan_file(ref)))
        self._resolved(ref, entry, "convert")
        self._event("convert", ref, entry, f"converted frames {done}–{stop - 1} → "
                    f"{output.name} ({stop} of {total}; {entries})", frames=summary.frames)


class _ReadyBeamLine(BeamLine):
    """A beamline that lists one raw scan, cut to its ready files, with its logs."""

    def __init__(self, inner: BeamLine, raw: RawScan, logs: ScanLogs) -> None:
        super().__init__(inner.raw_directory, inner.settings)
        self.name = inner.name
        self._raw, self._logs = raw, logs

    def raw_scans(self, sample: str, label: str) -> list[RawScan]:
        return [self._raw]

    def logs(self, scan: RawScan) -> ScanLogs:
        return self._logs


class _Busy(Exception):
    """A file is open for writing in another process."""


# --- helpers -------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def _quiet_fabio() -> Iterator[None]:
    """fabio logs an error for every half-written file it is asked to read; here that is
    expected (the file is simply read again later), so those records are dropped."""
    names = ("fabio", "fabio.cbfimage", "fabio.edfimage", "fabio.tifimage",
             "fabio.TiffIO", "fabio.fabioimage", "fabio.openimage", "fabio.compression")
    loggers = [logging.getLogger(n) for n in names]
    drop = logging.Filter("nothing")  # matches no record name: drops everything
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


def _unreadable(path: Path, *, link: bool) -> str | None:
    """Why *path* cannot be read completely, or None. Image files: every frame decoded;
    HDF5 detector files: the master and its datasets found (frames are not read)."""
    from nxgid.images import open_series

    try:
        with _quiet_fabio():
            series = open_series([path])
            if not link:
                for _ in series.iter_frames():
                    pass
    except Exception as exc:
        return _one_line(exc)
    return None


def _frame_count(files: Sequence[Path]) -> int:
    from nxgid.images import open_series

    return len(open_series([str(f) for f in files]))


def _fitted_logs(logs: ScanLogs, frames: int) -> ScanLogs:
    """The logs with per-frame values cut to *frames* (a beamline may log points ahead
    of the images); an error if the beamline logged fewer points than frames."""
    lengths = [len(values) for values in logs.table.values()]
    points = min(lengths) if lengths else None
    per_frame: list[tuple[str, list[float] | None]] = [
        ("monitor", logs.monitor), ("counting time", logs.counting_time_s),
        ("temperature", logs.temperature_K),
        *((f"{name} angle", values) for name, values in logs.angles_deg.items()),
        *((name, values) for name, (values, _unit) in logs.variables.items())]
    for name, values in per_frame:
        if values is not None and 1 < len(values) < frames:
            raise NxgidError(f"the beamline logs {len(values)} {name} value(s) for {frames} "
                             "stacked frame(s)")
    if points is not None and points < frames:
        raise NxgidError(f"the beamline logs {points} point(s) for {frames} stacked "
                         "frame(s)")

    def cut(values):
        return None if values is None else list(values)[:frames]

    return dataclasses.replace(
        logs, monitor=cut(logs.monitor), counting_time_s=cut(logs.counting_time_s),
        temperature_K=cut(logs.temperature_K),
        angles_deg={name: cut(values) for name, values in logs.angles_deg.items()},
        variables={name: (cut(values), unit)
                   for name, (values, unit) in logs.variables.items()})


def _import_record(scan_file: Path) -> str | None:
    """The raw-file fingerprint the import recorded in the scan file (None: not
    imported by a beamline)."""
    from nxgid.beamlines.importer import _recorded

    try:
        return _recorded(scan_file)
    except OSError as exc:
        raise NxgidError(f"{scan_file} cannot be read: {_one_line(exc)}") from None


def _fingerprint_or_none(raw: RawScan) -> str | None:
    from nxgid.beamlines.importer import fingerprint

    try:
        return fingerprint(raw)
    except OSError:
        return None


def _grown_since_import(record: str, entry: str, stacked: Sequence[str]) -> str | None:
    """The last stacked file of *entry*, if its size or time differ from the recorded
    fingerprint (a multi-frame file still written after it was stacked)."""
    if not stacked:
        return None
    try:
        files = json.loads(record).get(entry, [])
    except ValueError:
        return None
    known = {path: (size, mtime) for path, size, mtime in files}
    last = stacked[-1]
    if last not in known:
        return None
    try:
        info = os.stat(last)
    except OSError:
        return None
    return last if (info.st_size, info.st_mtime_ns) != tuple(known[last]) else None


def _remove_created(exp: Experiment, ref: ScanRef, entries, existed: dict[Path, bool]) -> None:
    """Undo an interrupted or failed import of a new scan: remove what it created."""
    from nxgid.stack import partial_path

    for name in entries:
        stack = exp.raw_stack(ref, name)
        if not existed.get(stack, True):
            stack.unlink(missing_ok=True)
            partial_path(stack).unlink(missing_ok=True)
    scan_file = exp.scan_file(ref)
    if not existed.get(scan_file, True):
        scan_file.unlink(missing_ok=True)
        scan_file.with_name(f".{scan_file.name}.lock").unlink(missing_ok=True)
    if not existed.get(exp.scan_dir(ref), True):
        with contextlib.suppress(OSError):
            exp.scan_dir(ref).rmdir()


def _stacked_files(stack: Path) -> list[str]:
    """The source files of the committed frames of a stack, in order, each once."""
    import h5py

    from nxgid.nexus.writer import committed_frames
    from nxgid.stack import SOURCE_FILE

    try:
        with h5py.File(stack, "r") as handle:
            data = handle.get("entry/data")
            if data is None or SOURCE_FILE not in data:
                raise NxgidError(f"{stack}: not a stack made by nxgid (no source_file)")
            names = data[SOURCE_FILE][:committed_frames(handle["entry"])]
    except BlockingIOError:
        raise _Busy() from None
    except OSError as exc:
        raise NxgidError(f"{stack} cannot be read: {_one_line(exc)}") from None
    found = [bytes(n).rstrip(b"\0").decode() for n in names]
    return list(dict.fromkeys(found))


def _stack_frames(stack: Path) -> int:
    """Committed frames of a raw stack (an interrupted append is cut back first), or the
    frames of a linked one."""
    import h5py

    from nxgid import nexus_names as nx
    from nxgid.nexus.writer import committed_frames, frame_datasets, hold_metadata_until_flush
    from nxgid.stack import DATA_PATH

    if not stack.is_file():
        return 0
    try:
        with h5py.File(stack, "r") as handle:
            data = handle.get(DATA_PATH)
            if data is None:
                raise NxgidError(f"{stack}: no {DATA_PATH}")
            if nx.FRAME_AXIS not in handle["entry/data"]:
                return int(data.shape[0])  # linked detector files
            committed = committed_frames(handle["entry"])
            rows = int(data.shape[0])
        if rows > committed:  # an append killed mid-block: cut it back
            with h5py.File(stack, "r+") as handle:
                hold_metadata_until_flush(handle)
                for item in frame_datasets(handle["entry"]):
                    if item.shape[0] > committed:
                        item.resize(committed, axis=0)
                handle.flush()
        return committed
    except BlockingIOError:
        raise _Busy() from None
    except OSError as exc:
        raise NxgidError(f"{stack} cannot be read: {_one_line(exc)}") from None


def _reduced_frames(output: Path) -> tuple[int, set[str | None]]:
    """(frames committed in every nxgid entry of a reduced file, the recipe hashes they
    were made with); (0, set()) when there is no file."""
    import h5py

    from nxgid import nexus_names as nx
    from nxgid.nexus.writer import committed_frames

    if not output.exists():
        return 0, set()
    counts: dict[str, int] = {}
    recipes: set[str | None] = set()
    try:
        with h5py.File(output, "r") as root:
            for name in root:
                entry = root[name]
                if not isinstance(entry, h5py.Group) or _text(entry.get("definition")) \
                        != nx.DEFINITION:
                    continue
                counts[name] = committed_frames(entry)
                recipes.add(_text(entry.get(f"{nx.PROCESS}/{nx.PROCESS_RECIPE_HASH}")))
    except BlockingIOError:
        raise _Busy() from None
    except OSError as exc:
        raise NxgidError(f"{output} cannot be read: {_one_line(exc)}") from None
    if len(set(counts.values())) > 1:
        raise NxgidError(f"{output}: its entries hold different numbers of frames "
                         f"({', '.join(f'{k} {v}' for k, v in counts.items())}); "
                         "`nxgid reduce --overwrite` makes it again")
    return (next(iter(counts.values())) if counts else 0), recipes


def _text(item) -> str | None:
    if item is None:
        return None
    value = item[()]
    return value.decode() if isinstance(value, bytes) else str(value)


def _locked(path: Path) -> bool:
    """Whether some program holds an HDF5 file lock on *path* (readers hold a shared
    one): tested with a non-blocking exclusive ``flock``, which changes nothing."""
    import fcntl

    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no flock on this file system: HDF5 does not lock there either
        return False
    finally:
        os.close(descriptor)  # releases the lock, if taken
    return False


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _select_frames(job, start: int, stop: int) -> None:
    """Narrow a job of all the stack's frames to frames start…stop-1, with its per-frame
    values (one value for all frames stays as it is)."""
    def cut(values):
        if values is None or len(values) == 1:
            return values
        return list(values)[start:stop]

    job.frames = f"{start}:{stop}"
    job.incidence_deg = cut(job.incidence_deg)
    job.monitor = cut(job.monitor)
    job.variables = {name: (cut(values), unit) for name, (values, unit)
                     in job.variables.items()}


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C back for a short step that must not stop half-way (a database record,
    a scan-file rewrite): it is raised once the step is done. Main thread only."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


# --- the loop ------------------------------------------------------------------------------


def watch(experiment: Experiment, effective, *, configuration: str,
          beamline: str | None = None, selections: Sequence[str] = (), poll: bool = False,
          interval: float = 10.0, settle: float = 1.0, stop: threading.Event | None = None,
          on_pass: Callable[[PassReport], None] | None = None,
          on_event: Callable[[LiveEvent], None] | None = None,
          on_start: Callable[[str, Path], None] | None = None,
          max_passes: int | None = None, until_idle: float | None = None,
          debounce: float = 0.5, site_path: Path | None = None) -> LiveSummary:
    """Watch the experiment's raw tree and reduce what lands, until *stop* is set,
    Ctrl-C, ``max_passes`` passes, or (``until_idle``) that many seconds without any
    import, stacking or conversion and no file waiting; see the module docstring.

    *beamline* defaults to the settings' instrument; *selections* are ``SAMPLE`` or
    ``SAMPLE/LABEL`` (default: all). *site_path*: the site settings file, read again
    every pass (default: the one *effective* came from).
    """
    from nxgid.experiment.configuration import read_configuration
    from nxgid.experiment.create import planned_raw_directory
    from nxgid.experiment.logbook import attach
    from nxgid.workflow.workspace import open_database

    started = time.monotonic()
    stop = stop or threading.Event()
    settings = effective.settings
    name = beamline or settings.instrument.instrument
    if not name:
        raise NxgidError("no beamline: give --beamline NAME or set [instrument] instrument "
                         "(see `nxgid beamlines`)")
    from nxgid.beamlines.base import get_beamline

    get_beamline(name)  # a one-line error now rather than in every pass
    raw = planned_raw_directory(experiment.name, effective)
    if raw is None or not raw.is_dir():
        raise NxgidError(f"raw data directory {raw} does not exist: expected "
                         "<raw_home>/<experiment>[/<raw_path>] from [instrument] settings")
    read_configuration(experiment.configuration_file(configuration))  # must exist
    chosen = parse_selections(experiment, selections)
    if interval <= 0 or settle < 0:
        raise NxgidError("--interval must be > 0 and --settle ≥ 0 seconds")
    if site_path is None:
        site_file = getattr(effective, "site_file", None)
        site_path = getattr(site_file, "path", None)
    attach(experiment)
    summary = LiveSummary()
    watcher = RawWatcher(raw, poll=poll, poll_interval=max(0.1, min(interval, 2.0)))
    interrupted = False
    with open_database(experiment, site_path=site_path) as db:
        live = LiveReduction(experiment, effective, db, beamline=name,
                             configuration=configuration, raw_directory=raw,
                             selections=chosen, settle=settle, site_path=site_path,
                             on_event=on_event)
        try:
            summary.observer = watcher.start()
            log.info("live mode: watching %s (%s observer), beamline %s, configuration %s",
                     raw, summary.observer, name, configuration)
            if on_start is not None:
                on_start(summary.observer, raw)
            last_activity = time.monotonic()
            while not stop.is_set():
                watcher.changed.clear()
                report = live.run_pass()
                summary.passes += 1
                for event in report.events:
                    if event.kind == "import":
                        summary.scans_imported += 1
                    elif event.kind == "stack":
                        summary.frames_stacked += event.frames
                    elif event.kind == "convert":
                        summary.frames_converted += event.frames
                    elif event.kind == "error":
                        summary.errors += 1
                if on_pass is not None:
                    on_pass(report)
                now = time.monotonic()
                if report.active or report.waiting or report.more:
                    last_activity = now
                if max_passes is not None and summary.passes >= max_passes:
                    break
                if until_idle is not None and not report.waiting and not report.more \
                        and now - last_activity >= until_idle:
                    break
                _wait(watcher, stop, report, interval, debounce, until_idle,
                      last_activity)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            try:
                watcher.stop()
            except KeyboardInterrupt:
                interrupted = True
    summary.interrupted = interrupted
    summary.seconds = time.monotonic() - started
    log.info("live mode stopped%s: %s", " (interrupted)" if interrupted else "",
             summary.line())
    return summary


def _wait(watcher: RawWatcher, stop: threading.Event, report: PassReport, interval: float,
          debounce: float, until_idle: float | None, last_activity: float) -> None:
    """Until the next pass: a change (then quiet for *debounce* s, 4 × that at most),
    a waiting file's settle time, the interval, or the end of the idle time."""
    now = time.monotonic()
    if report.more:
        return
    deadline = now + interval
    if report.next_check is not None:
        deadline = min(deadline, report.next_check + 0.01)
    if until_idle is not None:
        deadline = min(deadline, last_activity + until_idle + 0.01)
    while not stop.is_set():
        if watcher.changed.is_set():
            first = quiet = time.monotonic()
            watcher.changed.clear()
            while not stop.is_set():
                stop.wait(0.05)
                moment = time.monotonic()
                if watcher.changed.is_set():
                    watcher.changed.clear()
                    quiet = moment
                if moment - quiet >= debounce or moment - first >= 4 * debounce:
                    return
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        stop.wait(min(remaining, 0.1))
