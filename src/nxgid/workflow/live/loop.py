"""The loop of live mode: :func:`watch` runs passes until stopped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from nxgid.errors import MissingError, NxgidError
from nxgid.experiment.layout import Experiment
from nxgid.workflow.live.events import LiveEvent, LiveSummary, PassReport
from nxgid.workflow.live.reduction import LiveReduction
from nxgid.workflow.live.watcher import RawWatcher

log = logging.getLogger("nxgid.live")



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
    from nxgid.beamlines.base import chosen_beamline

    name = chosen_beamline(beamline, settings)  # one line now, not in every pass
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
