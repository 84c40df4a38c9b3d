"""The experiment log, ``tasks/nxlogger.log``.

Library code logs through the standard ``logging`` module under the ``nxgid`` logger,
passing the scan and entry it concerns as ``extra={"scan": ..., "entry": ...}`` (see
:func:`scan_extra`). :func:`attach` routes those records into the experiment's rotating
log file, one line each::

    2026-11-23T19:02:11.532+00:00 INFO    sampleA/rt/s001:f1  stacked 100 frames

:func:`tail` and :func:`follow` read it back for ``nxgid log``.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from nxgid.experiment.layout import Experiment, ScanRef

ROOT_LOGGER = "nxgid"
MAX_BYTES = 5 * 1024 * 1024
BACKUP_COUNT = 5


class _Context(logging.Filter):
    """Give every record ``where`` (``sample/label/scan:entry`` or ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scan = getattr(record, "scan", None)
        entry = getattr(record, "entry", None)
        where = str(scan) if scan else "-"
        if entry:
            where = f"{where}:{entry}"
        record.where = where
        return True


class _Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created).astimezone()
        return moment.isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        # One record, one line: a message with newlines would break `nxgid log -n`.
        return super().format(record).replace("\n", " | ")


LINE_FORMAT = "%(asctime)s %(levelname)-7s %(where)s  %(message)s"


def scan_extra(scan: ScanRef | str | None = None, entry: str | None = None) -> dict[str, str]:
    """``extra=`` for a log call about one scan (and entry)."""
    extra = {}
    if scan:
        extra["scan"] = str(scan)
    if entry:
        extra["entry"] = entry
    return extra


def attach(experiment: Experiment, level: int = logging.INFO) -> logging.Handler:
    """Send ``nxgid`` log records of *level* and above to the experiment's log file.

    Returns the handler so callers (tests, long-running workers) can :func:`detach` it.
    Attaching the same experiment twice reuses the existing handler.
    """
    logger = logging.getLogger(ROOT_LOGGER)
    target = str(experiment.log_file)
    for handler in logger.handlers:
        if getattr(handler, "baseFilename", None) == target:
            return handler
    handler = logging.handlers.RotatingFileHandler(
        target, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8", delay=True)
    handler.setLevel(level)
    handler.addFilter(_Context())
    handler.setFormatter(_Formatter(LINE_FORMAT))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    return handler


@contextlib.contextmanager
def logging_to(experiment: Experiment) -> Iterator[None]:
    """Log into *experiment*'s file for the duration of the block (re-uses an attached one)."""
    target = str(experiment.log_file)
    existing = any(getattr(h, "baseFilename", None) == target
                   for h in logging.getLogger(ROOT_LOGGER).handlers)
    handler = attach(experiment)
    try:
        yield
    finally:
        if not existing:
            detach(handler)


def detach(handler: logging.Handler) -> None:
    logging.getLogger(ROOT_LOGGER).removeHandler(handler)
    handler.close()


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last *lines* lines of *path* (reads backwards; cheap on big files)."""
    if lines <= 0 or not path.exists():
        return []
    block = 64 * 1024
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        data = b""
        while end > 0 and data.count(b"\n") <= lines:
            start = max(0, end - block)
            handle.seek(start)
            data = handle.read(end - start) + data
            end = start
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:]


def follow(path: Path, *, poll_s: float = 0.25, stop_after_s: float | None = None
           ) -> Iterator[str]:
    """Yield lines appended to *path*, surviving rotation as ``tail -F`` does (the old
    file is read to its end, also while it is moved away and still written, before the
    new one is read from its top); ends after *stop_after_s*."""
    deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
    handle = None
    inode = None
    pending = ""
    started = False  # only the file there at the start is read from its end
    try:
        while deadline is None or time.monotonic() < deadline:
            if handle is None and path.exists():
                handle = path.open("r", encoding="utf-8", errors="replace")
                if not started:
                    handle.seek(0, os.SEEK_END)
                inode = os.fstat(handle.fileno()).st_ino
            started = True
            if handle is not None:
                chunk = handle.read()
                if chunk:
                    pending += chunk
                    *complete, pending = pending.split("\n")
                    yield from complete
                    continue
                try:
                    current = path.stat()
                except FileNotFoundError:
                    current = None  # moved away: a writer may still append to it; keep it
                if current is not None and (current.st_ino != inode
                                            or current.st_size < handle.tell()):
                    # rotated (a new file is there) or truncated: what was appended to the
                    # old file meanwhile first, then the new file from its top
                    rest = handle.read()
                    handle.close()
                    handle = path.open("r", encoding="utf-8", errors="replace")
                    inode = os.fstat(handle.fileno()).st_ino
                    if rest:
                        pending += rest
                        *complete, pending = pending.split("\n")
                        yield from complete
                    continue
            time.sleep(poll_s)
    finally:
        if handle is not None:
            handle.close()
