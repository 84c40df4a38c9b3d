"""Advisory file locks for the few files several workers may edit in turn.

A scan file is shared by the tasks of all its entries (each links its reduced file into
it); its edits are whole-file rewrites (copy, edit, rename), so two at once would lose
one. ``file_lock`` serialises them across processes with ``flock`` on a hidden
``.<name>.lock`` file next to the target (local file systems and NFSv4).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on *path* (blocking) for the duration of the block."""
    lock = path.with_name(f".{path.name}.lock")
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
