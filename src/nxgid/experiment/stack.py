"""A series of image files → one HDF5 stack (``nxgid stack``, like ``nxstack``).

    summary = stack_images(["raw/img_*.cbf"], Path("scan/f1.h5"), progress=bar)

The stack is a NeXus file whose detector frames sit at ``/entry/data/data`` (frames ×
rows × cols, the raw dtype, one bitshuffle-LZ4 chunk per frame), so the external links
``fN.h5:/entry/data/data`` of the scan files resolve to it::

    /                      NXroot  @default=entry
    /entry                 NXentry @default=data
    /entry/data            NXdata  @signal=data
        data               frames × rows × cols, @target=/entry/data/data
        frame_number       int64: frame index inside its source file
        source_file        fixed-length UTF-8 (1024 bytes): absolute source path
        frame_ind          int64 0…n-1: the commit marker, grown last
    /entry/instrument/detector/data   hard link to /entry/data/data
    /entry/nxgid_stack_inputs         NXnote: the inputs (JSON), to resume safely

Sources are only read. Before anything is written, every input must exist and all
selected frames must share one shape and one dtype (a stack keeps the raw type: no
promotion). Crash safety follows :mod:`nxgid.nexus.writer`: the stack is written as
``.NAME.partial`` next to the output (metadata held until each flush, no free-space
reuse), each block is flushed before ``frame_ind`` grows, and the file gets its real
name only when complete (never clobbering; with ``overwrite`` by atomic replacement).
A run that was interrupted (exception, Ctrl-C, SIGKILL) leaves the partial file; the next
run with the same inputs (same files, sizes, mtimes, dataset and frame selection)
continues after its last committed frame, otherwise it starts again.

:func:`append_images` adds the frames of more source files to a finished stack (live
mode, ``nxgid watch``): in place, with the same commit rule (each block flushed before
``frame_ind`` grows; an interrupted append is cut back to the last committed frame, now
or when the stack is next opened for appending), so the stack never holds half a frame.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from nxgid import names as nx
from nxgid.errors import BusyError, ExistsError, MissingError, NxgidError
from nxgid.images.series import FrameOrigin, ImageSeries, open_series
from nxgid.nexus.h5 import nx_group
from nxgid.nexus.writer import (
    TEXT_BYTES,
    committed_frames,
    compression_options,
    cut_to_committed,
    hold_metadata_until_flush,
    now_iso,
    truncate_frames,
)

DATA_PATH = nx.RAW_STACK_DATA
FRAME_NUMBER = "frame_number"
SOURCE_FILE = "source_file"
INPUTS_NOTE = "nxgid_stack_inputs"


@dataclass(frozen=True)
class StackSummary:
    """What :func:`stack_images` did: ``frames`` in the stack from ``files`` source files,
    the first ``resumed_from`` of them written by an earlier, interrupted run; ``note``
    says why an earlier partial stack was discarded (empty if none was)."""

    output: Path
    frames: int
    files: int
    resumed_from: int
    seconds: float
    bytes: int
    note: str = ""


def partial_path(output: Path) -> Path:
    """The hidden name a stack is written under until it is complete."""
    return output.with_name(f".{output.name}.partial")


def stack_images(inputs: Sequence[str | Path], output: Path, *, dataset: str | None = None,
                 frames: str | None = None, overwrite: bool = False, block_frames: int = 16,
                 progress: Callable[[int, int], None] | None = None,
                 detector: tuple[str, tuple[int, int]] | None = None) -> StackSummary:
    """Stack the frames of ``inputs`` (files or globs, see :func:`nxgid.images.series.open_series`;
    ``dataset`` for HDF5 inputs, ``frames`` a selection) into the HDF5 file ``output``.

    ``output`` must not exist unless ``overwrite``, and is never one of the inputs.
    ``detector`` (what it is, its frame shape), when given, is the shape every frame
    must have (a scan's detector). ``progress(done, total)`` is called after every
    committed block of up to ``block_frames`` frames.
    """
    from nxgid.safety.paths import refuse_overlap
    from nxgid.safety.resources import check_output_file

    started = time.monotonic()
    output = Path(output).expanduser()
    if block_frames < 1:
        raise NxgidError(f"block size {block_frames}: expected at least 1 frame")
    refuse_overlap([output, partial_path(output)], inputs)
    if output.is_dir():
        raise NxgidError(f"{output}: is a directory, expected the stack's file name")
    if not output.parent.is_dir():
        raise MissingError(f"{output.parent}: no such directory, cannot write {output.name}")
    check_output_file(output, "stack")
    if output.exists() and not overwrite:
        raise ExistsError(f"{output} exists: use --overwrite to replace it")
    series = open_series(inputs, dataset=dataset, frames=frames)
    if detector is not None and tuple(series.shape) != tuple(detector[1]):
        first = series.origins[0].path if series.origins else inputs[0]
        raise NxgidError(f"{first}: frames of {_size(series.shape)} pixels; {detector[0]} "
                         f"has {_size(detector[1])}")
    origins = series.origins
    names = _checked_names(series, origins, output)
    record = _record(series, dataset, frames)
    partial = partial_path(output)
    handle, done, note = _open_partial(partial, record, series)
    resumed_from, total = done, len(series)
    try:
        data = handle["entry/data"]
        for block, block_origins in _rest(series, done).iter_blocks(block_frames):
            n = len(block)
            _grow(data["data"], block)
            _grow(data[FRAME_NUMBER], np.array([o.index for o in block_origins], np.int64))
            _grow(data[SOURCE_FILE], np.array(names[done:done + n], data[SOURCE_FILE].dtype))
            handle.flush()
            # commit: frame_ind grows last, once the block is on disk
            _grow(data[nx.FRAME_AXIS], np.arange(done, done + n, dtype=np.int64))
            handle.flush()
            done += n
            if progress is not None:
                progress(done, total)
    finally:
        handle.close()
    _publish(partial, output, overwrite)
    return StackSummary(output, total, len({o.path for o in origins}), resumed_from,
                        time.monotonic() - started, output.stat().st_size, note)


def append_images(inputs: Sequence[str | Path], output: Path, *, dataset: str | None = None,
                  block_frames: int = 16,
                  progress: Callable[[int, int], None] | None = None) -> StackSummary:
    """Append every frame of ``inputs`` to the existing stack ``output`` (made by
    :func:`stack_images`), in place; see the module docstring.

    The new frames must have the stack's shape and data type (no promotion), and no
    input may already be in the stack. ``frames`` of the summary counts the stack after
    the append, ``resumed_from`` the frames it held before; ``progress(done, total)``
    counts the appended frames.
    """
    started = time.monotonic()
    output = Path(output).expanduser()
    if block_frames < 1:
        raise NxgidError(f"block size {block_frames}: expected at least 1 frame")
    if not output.is_file():
        raise MissingError(f"{output}: no such stack to append to")
    series = open_series(inputs, dataset=dataset)
    origins = series.origins
    names = _checked_names(series, origins, output)
    try:
        handle = h5py.File(output, "r+")
    except BlockingIOError:
        raise BusyError(f"{output} is open in another process; try again when it is "
                         "closed") from None
    except OSError as exc:
        raise NxgidError(f"{output}: cannot be opened for appending: "
                         f"{str(exc).splitlines()[0]}") from None
    try:
        hold_metadata_until_flush(handle)
        signal_ = handle.get(DATA_PATH)
        data = handle.get("entry/data")
        if signal_ is None or data is None or nx.FRAME_AXIS not in data \
                or FRAME_NUMBER not in data or SOURCE_FILE not in data:
            raise NxgidError(f"{output}: not a stack made by nxgid stack (no {DATA_PATH} "
                             f"with {nx.FRAME_AXIS}); cannot append to it")
        if signal_.shape[1:] != series.shape or signal_.dtype != series.dtype:
            raise NxgidError(f"{output}: holds {_size(signal_.shape[1:])} frames of "
                             f"{signal_.dtype}, but the new frames are "
                             f"{_size(series.shape)} {series.dtype}; a stack keeps one shape "
                             "and the raw data type")
        entry = handle["entry"]
        before = cut_to_committed(entry)  # an append begun but not committed
        handle.flush()
        stacked = {bytes(name).rstrip(b"\0") for name in data[SOURCE_FILE][:before]}
        again = sorted({name for name in names if name in stacked})
        if again:
            raise NxgidError(f"{again[0].decode(errors='replace')}: already in {output}; "
                             "each source file is stacked once")
        done, total = before, before + len(series)
        for block, block_origins in series.iter_blocks(block_frames):
            n = len(block)
            try:
                _grow(data["data"], block)
                _grow(data[FRAME_NUMBER], np.array([o.index for o in block_origins],
                                                   np.int64))
                _grow(data[SOURCE_FILE], np.array(names[done - before:done - before + n],
                                                  data[SOURCE_FILE].dtype))
                handle.flush()
                # commit: frame_ind grows last, once the block is on disk
                _grow(data[nx.FRAME_AXIS], np.arange(done, done + n, dtype=np.int64))
                handle.flush()
            except BaseException:
                truncate_frames(entry, done)  # back to the last committed frame
                _record_append(entry, origins[:done - before])
                handle.flush()
                raise
            done += n
            if progress is not None:
                progress(done - before, total - before)
        _record_append(entry, origins)
        handle.flush()
    finally:
        handle.close()
    return StackSummary(output, done, len({o.path for o in origins}), before,
                        time.monotonic() - started, output.stat().st_size)


def _size(shape: tuple) -> str:
    return "×".join(str(n) for n in shape)


def _record_append(entry: h5py.Group, origins: Sequence[FrameOrigin]) -> None:
    """Add the files of the appended frames to the stack's inputs note (it documents
    every source; ``source_file`` remains the record of each frame)."""
    note = entry.get(INPUTS_NOTE)
    if note is None or "data" not in note or not origins:
        return
    try:
        record = json.loads(bytes(note["data"][()]).decode())
    except (ValueError, UnicodeDecodeError):
        return
    for path in dict.fromkeys(o.path for o in origins):
        stat = path.stat()
        record.setdefault("files", []).append({"path": os.path.abspath(path),
                                               "size": stat.st_size,
                                               "mtime_ns": stat.st_mtime_ns})
    record["count"] = int(entry["data"][nx.FRAME_AXIS].shape[0])
    del note["data"]
    note.create_dataset("data", data=np.bytes_(json.dumps(record, sort_keys=True).encode()))


# --- checks --------------------------------------------------------------------------


def _checked_names(series: ImageSeries, origins: list[FrameOrigin], output: Path
                   ) -> list[bytes]:
    """Check dtypes, output ≠ source and name lengths; → each frame's source (UTF-8)."""
    used = {o.path for o in origins}
    # per-file dtypes: ImageSeries promotes over files, which a raw stack must not do
    dtypes = [(path, dtype) for path, dtype in series.file_dtypes.items() if path in used]
    first_path, first_dtype = dtypes[0]
    for path, dtype in dtypes[1:]:
        if dtype != first_dtype:
            raise NxgidError(f"{path}: frames are {dtype}, but {first_path} has "
                             f"{first_dtype}; a stack keeps the raw data type, so stack "
                             "files of different types separately")
    if output.exists() and any(output.resolve() == p.resolve() for p in series.files):
        raise NxgidError(f"{output}: is one of the input files; sources are never modified")
    paths = {path: os.path.abspath(path).encode() for path in used}
    for path, name in paths.items():
        if len(name) > TEXT_BYTES:
            raise NxgidError(f"{path}: the file name is longer than {TEXT_BYTES} bytes")
    return [paths[o.path] for o in origins]


def _record(series: ImageSeries, dataset: str | None, frames: str | None) -> str:
    """The inputs as JSON: a partial stack is resumed only if its record is the same."""
    files = []
    for path in series.files:
        stat = path.stat()
        files.append({"path": os.path.abspath(path), "size": stat.st_size,
                      "mtime_ns": stat.st_mtime_ns})
    return json.dumps({"files": files, "dataset": dataset, "frames": frames,
                       "count": len(series), "shape": list(series.shape),
                       "dtype": series.dtype.str}, sort_keys=True)


def _rest(series: ImageSeries, done: int) -> ImageSeries:
    """The series without its first ``done`` frames (headers are not read again)."""
    return series.skip(done)


# --- the partial file ----------------------------------------------------------------


def _open_partial(partial: Path, record: str, series: ImageSeries
                  ) -> tuple[h5py.File, int, str]:
    """(open partial stack, committed frames, note): an earlier run's if it has the same
    inputs (per-frame arrays cut back to the committed frames), else a new one."""
    note = ""
    if partial.exists():
        try:
            handle = h5py.File(partial, "r+")
        except BlockingIOError:
            raise BusyError(f"{partial} is being written by another process; wait for "
                             "it to finish or stop it") from None
        except OSError:
            note = f"discarded {partial.name}: not readable (a run killed while creating it)"
        else:
            if _resumable(handle, record, series):
                try:
                    hold_metadata_until_flush(handle)
                    entry = handle["entry"]
                    committed = cut_to_committed(entry)  # a block begun, not committed
                    handle.flush()
                except BaseException:
                    handle.close()
                    raise
                return handle, committed, note
            handle.close()
            note = f"discarded {partial.name}: it was started from other inputs"
        partial.unlink()
    try:  # fs_strategy="none": new data never overwrites metadata still live on disk
        handle = h5py.File(partial, "w-", fs_strategy="none")
    except FileExistsError:
        raise BusyError(f"{partial} was just created by another process") from None
    try:
        hold_metadata_until_flush(handle)
        _create_layout(handle, record, series)
        handle.flush()
    except BaseException:
        handle.close()
        partial.unlink(missing_ok=True)
        raise
    return handle, 0, note


def _resumable(handle: h5py.File, record: str, series: ImageSeries) -> bool:
    try:
        stored = handle[f"entry/{INPUTS_NOTE}/data"][()]
        signal = handle[DATA_PATH]
        return (stored.decode() == record and signal.shape[1:] == series.shape
                and signal.dtype == series.dtype
                and committed_frames(handle["entry"]) <= len(series))
    except (KeyError, OSError, AttributeError, UnicodeDecodeError):
        return False




def _create_layout(handle: h5py.File, record: str, series: ImageSeries) -> None:
    """The empty NeXus stack; all text that is not per-frame is written here, once."""
    from nxgid import __version__

    handle.attrs.update({"NX_class": "NXroot", "default": "entry", "file_time": now_iso(),
                         "creator": f"nxgid {__version__}",
                         "HDF5_Version": h5py.version.hdf5_version,
                         "h5py_version": h5py.version.version})
    entry = nx_group(handle, "entry", "NXentry")
    entry.attrs["default"] = nx.DATA
    entry.create_dataset("program_name", data=np.bytes_(b"nxgid stack"))
    entry["program_name"].attrs["version"] = __version__
    data = nx_group(entry, nx.DATA, "NXdata")
    data.attrs.update({"signal": "data", "axes": [nx.FRAME_AXIS, ".", "."],
                       f"{nx.FRAME_AXIS}_indices": 0})
    rows, cols = series.shape
    signal = data.create_dataset("data", shape=(0, rows, cols), maxshape=(None, rows, cols),
                                 chunks=(1, rows, cols), dtype=series.dtype,
                                 **compression_options("bitshuffle-lz4"))
    # no @interpretation: NXsas's detector data, which scan files link here, has none
    signal.attrs.update({"target": DATA_PATH, "units": "counts",
                         "long_name": "detector counts, as stored in the source files"})
    for name, long_name in ((FRAME_NUMBER, "frame index inside its source file"),
                            (nx.FRAME_AXIS, "frame number in this stack")):
        data.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(4096,),
                            dtype=np.int64).attrs["long_name"] = long_name
    # fixed-length text in the dataset itself: a killed writer cannot corrupt it the way
    # it can corrupt variable-length strings in the global heap; gzip removes the padding
    data.create_dataset(SOURCE_FILE, shape=(0,), maxshape=(None,), chunks=(256,),
                        dtype=h5py.string_dtype("utf-8", TEXT_BYTES), compression="gzip",
                        compression_opts=4).attrs["long_name"] = "source file of each frame"
    detector = nx_group(nx_group(entry, nx.INSTRUMENT, "NXinstrument"), nx.DETECTOR,
                      "NXdetector")
    detector["data"] = signal
    note = nx_group(entry, INPUTS_NOTE, "NXnote")
    note.create_dataset("type", data=np.bytes_(b"application/json"))
    note.create_dataset("description", data=np.bytes_(
        b"input files (size, mtime), dataset and frame selection of this stack"))
    note.create_dataset("data", data=np.bytes_(record.encode()))


def _grow(dataset: h5py.Dataset, values: np.ndarray) -> None:
    start = dataset.shape[0]
    dataset.resize(start + len(values), axis=0)
    dataset[start:] = values


def _publish(partial: Path, output: Path, overwrite: bool) -> None:
    """Give the complete stack its real name: atomically replacing an old output, or
    (without ``overwrite``) only if no file of that name has appeared meanwhile."""
    with open(partial, "rb") as stream:
        os.fsync(stream.fileno())
    if overwrite:
        os.replace(partial, output)
        return
    try:
        os.link(partial, output)
    except FileExistsError:
        raise ExistsError(f"{output} appeared while the stack was written; nothing was "
                          f"overwritten (the stack is in {partial.name})") from None
    except OSError:  # no hard links on this file system
        if output.exists():
            raise ExistsError(f"{output} appeared while the stack was written; nothing "
                              f"was overwritten (the stack is in {partial.name})") from None
        os.rename(partial, output)
        return
    partial.unlink()
