"""nxgid's own files on disk: frames committed in raw stacks and reduced files, the
source files of a stack, HDF5 locks held by other programs, and (size, time) keys."""

from __future__ import annotations

import os
from pathlib import Path

from nxgid.errors import NxgidError
from nxgid.workflow.live.events import _one_line


class _Busy(Exception):
    """A file is open for writing in another process."""


def _stacked_files(stack: Path) -> list[str]:
    """The source files of the committed frames of a stack, in order, each once."""
    import h5py

    from nxgid.experiment.stack import SOURCE_FILE
    from nxgid.nexus.writer import committed_frames

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

    from nxgid import names as nx
    from nxgid.experiment.stack import DATA_PATH
    from nxgid.nexus.writer import committed_frames, frame_datasets, hold_metadata_until_flush

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

    from nxgid import names as nx
    from nxgid.nexus.frames import committed_frames, nxgid_entry_paths

    if not output.exists():
        return 0, set()
    counts: dict[str, int] = {}
    recipes: set[str | None] = set()
    try:
        with h5py.File(output, "r") as root:
            for name in nxgid_entry_paths(root):
                entry = root[name]
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


def select_frames(job, start: int, stop: int) -> None:
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
