"""Whether the raw files live mode sees are ready to take: settled (unchanged for the
settle time) and readable to the end, with a warning when a settled file stays
unreadable (damaged, not still being written). A mixin of
:class:`nxgid.workflow.live.reduction.LiveReduction`, which holds the state it uses:
``_seen``, ``_verified``, ``_unreadable``, ``_report``, ``settle`` and ``clock``."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from nxgid.workflow.live.files import _stat_key
from nxgid.workflow.live.raw_files import _unreadable

log = logging.getLogger("nxgid.live")

#: A settled file that stays unreadable this long (seconds, at least: 5 settle times) is
#: reported as a warning: it is damaged rather than still being written. Reading one
#: never blocks (:mod:`nxgid.safety.deadline`), and the other scans go on meanwhile.
UNREADABLE_WARNING_S = 5.0


class Readiness:
    """The readiness checks of live mode (see the module docstring)."""

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
        limit = max(UNREADABLE_WARNING_S, 5 * self.settle)
        now = self.clock()
        for name, record in self._unreadable.items():
            _key, problem, since, warned = record
            if not warned and now - since > limit:
                record[3] = True
                reason = problem.removeprefix(f"{name}: ")  # the name is said once
                self._event("warning", None, "", f"{name} has not been readable for "
                            f"{now - since:.0f} s ({reason}); the frames after it in its "
                            "scan wait for it, the other scans go on",
                            level=logging.WARNING)

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
