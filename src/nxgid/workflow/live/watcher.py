"""The file-system observer on the raw tree (:mod:`watchdog`: native, or polling)."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from nxgid.workflow.live.events import _one_line

log = logging.getLogger("nxgid.live")

#: Watchdog event types that mean the raw tree changed (opening or reading a file does
#: not: our own reads must not wake the loop).
CHANGE_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed"})


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
