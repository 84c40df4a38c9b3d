"""Raw image files: whether one reads completely yet, and how many frames files hold."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from nxgid.workflow.live.events import _one_line


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
