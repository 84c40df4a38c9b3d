"""Unfinished writes: named after their writer, cleared by the next run on the output.

Every file nxgid publishes is written under a hidden name next to it and renamed into
place when complete, so a reader never sees half a file. A writer killed on the way
leaves that partial file behind. Its name says who wrote it::

    .<name>.<host>-<pid>-<random>.partial          (.<stem>.<…>.partial<suffix> for
                                                     pictures, whose writer needs it)

so the next run on the same output removes partial files whose writer, on this host,
is no longer running (:func:`clear_stale`); one written by a live process, or on another
host, is left alone unless it is older than a limit the caller gives (the workflow uses
its heartbeat timeout: no live writer can be that silent). Partial files without a
writer in their name (nxgid 0.x) count as another host's.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid
from pathlib import Path

log = logging.getLogger("nxgid.safety")

_TAG = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-(?P<token>[0-9a-f]{8})")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"


def partial_path(path: Path, *, keep_suffix: bool = False) -> Path:
    """A new partial name for *path*, tagged with this host and process."""
    path = Path(path)
    tag = f"{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if keep_suffix:
        return path.with_name(f".{path.stem}.{tag}.partial{path.suffix}")
    return path.with_name(f".{path.name}.{tag}.partial")


def partial_files(path: Path) -> list[Path]:
    """Partial files of *path* (any writer)."""
    path = Path(path)
    found = set(path.parent.glob(f".{path.name}.*.partial"))
    if path.suffix:
        found.update(path.parent.glob(f".{path.stem}.*.partial{path.suffix}"))
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _writer(partial: Path, path: Path) -> tuple[str, int] | None:
    """(host, pid) from a partial name, None for a name without a writer."""
    name = partial.name
    prefix = f".{path.name}." if name.startswith(f".{path.name}.") else f".{path.stem}."
    middle = name[len(prefix):]
    middle = middle[:middle.rfind(".partial")]
    match = _TAG.fullmatch(middle)
    return (match["host"], int(match["pid"])) if match else None


def clear_stale(path: Path, *, older_than_s: float | None = None) -> list[Path]:
    """Remove the partial files of *path* left by writers that died; returns them.

    A partial file of this host whose process has ended is removed; any other one only if
    *older_than_s* is given and it has not changed for that long."""
    removed = []
    now = time.time()
    for partial in partial_files(path):
        writer = _writer(partial, Path(path))
        if writer is not None and writer[0] == _host():
            if writer[1] == os.getpid() or _alive(writer[1]):
                continue
        elif older_than_s is None:
            continue
        else:
            try:
                if now - partial.stat().st_mtime <= older_than_s:
                    continue
            except FileNotFoundError:
                continue
        try:
            partial.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("%s: left by an interrupted run, cannot be removed: %s", partial,
                        exc.strerror)
            continue
        log.info("removed %s, left by an interrupted run", partial.name)
        removed.append(partial)
    return removed
