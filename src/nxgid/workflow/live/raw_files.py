"""Raw image files: whether one reads completely yet, and how many frames files hold."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nxgid.workflow.live.events import _one_line


def _unreadable(path: Path, *, link: bool) -> str | None:
    """Why *path* cannot be read completely, or None. Image files: every frame decoded;
    HDF5 detector files: the master and its datasets found (frames are not read)."""
    from nxgid.images.series import open_series

    try:  # fabio's error records (its zero-padded repair) make it unreadable here too
        series = open_series([path])
        if not link:
            for _ in series.iter_frames():
                pass
    except Exception as exc:
        return _one_line(exc)
    return None


def _frame_count(files: Sequence[Path]) -> int:
    from nxgid.images.series import open_series

    return len(open_series([str(f) for f in files]))
