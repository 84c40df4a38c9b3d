"""Requests the machine cannot meet, refused before work starts: an output in a place
that cannot be written, a folder given as an output file, memory far beyond the machine.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from nxgid.errors import MissingError, NxgidError

#: Share of the available memory one request may take before it is refused.
MEMORY_SHARE = 0.8


def check_output_file(path: Path, what: str = "output") -> Path:
    """*path* is a file that can be created or replaced: not a folder, in an existing
    folder that this process may write (a read-only mount counts as unwritable)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise NxgidError(f"{path}: is a directory, expected the {what} file's name")
    check_writable_folder(path.parent, f"cannot write {path.name} there")
    return path


def check_writable_folder(folder: Path, consequence: str = "") -> Path:
    """*folder* exists, is a folder and can be written (files created in it)."""
    tail = f": {consequence}" if consequence else ""
    if not folder.exists():
        raise MissingError(f"{folder}: no such directory{tail}")
    if not folder.is_dir():
        raise NxgidError(f"{folder}: is not a directory{tail}")
    readonly = False
    with contextlib.suppress(OSError):
        readonly = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    if readonly:
        raise NxgidError(f"{folder}: is on a read-only file system{tail}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NxgidError(f"{folder}: is not writable by this user{tail}")
    return folder


def available_memory_bytes() -> int:
    """Memory available to new allocations (Linux ``MemAvailable``; else physical)."""
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 1 << 62


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.3g} {unit}"
        count /= 1000
    return f"{count:.3g} PB"


def check_memory(needed_bytes: float, what: str, advice: str = "") -> None:
    """Refuse *what* if it needs more than :data:`MEMORY_SHARE` of the available memory."""
    available = available_memory_bytes()
    if needed_bytes > MEMORY_SHARE * available:
        hint = f"; {advice}" if advice else ""
        raise NxgidError(f"{what} needs about {_size(needed_bytes)} of memory, and this "
                         f"machine has {_size(available)} available{hint}")
