"""Content fingerprints of task inputs, and the named parts of task signatures.

A task's signature is made of *parts* (``"raw stack"``, ``"geometry"``, ``"recipe"``, …),
each a short digest of one input. Every fingerprint here depends on what a file holds,
never on its time stamps: opening a file read-write and closing it (as NeXpy and
nexusformat do) or touching it changes nothing.

- :func:`dataset_fingerprint`: an HDF5 detector dataset (the raw stack ``fN.h5``,
  through external links and virtual datasets): shape, dtype, filters, where its data
  are stored (the chunk index of a chunked dataset: offset, size and filter mask of every
  chunk; offset and size of contiguous storage; the files of external storage; the
  mapping and the sources' storage of a virtual dataset), and the decoded bytes of the
  first and last frames. Metadata and two frames only: fast on any stack.
- :func:`reduced_fingerprint`: a reduced file: the task signature recorded in it and the
  committed frames of every entry.
- :func:`file_digest`: the SHA-256 of a small file's bytes (mask, dark, flat images).

:func:`stale_reason` compares the parts a task was done with to the current ones and
says which changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nxgid.names import RAW_STACK_DATA

#: Hex digits kept of each part's digest (64 bits: enough to see any change).
PART_LENGTH = 16
#: The dataset of a raw stack ``<scan>/fN.h5``.
RAW_DATASET = RAW_STACK_DATA  # what the link and convert tasks read
#: The part of link and convert that stands for the detector geometry and mask.
GEOMETRY_PART = "geometry"


def short(digest: str) -> str:
    return digest[:PART_LENGTH]


def digest_of(value: object) -> str:
    """The short SHA-256 of a JSON-able value (canonical: sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return short(hashlib.sha256(text.encode()).hexdigest())


def overall_signature(task: str, parts: Mapping[str, str]) -> str:
    """The 64-hex-digit SHA-256 of a task and its parts as canonical JSON."""
    text = json.dumps({"task": task, "parts": dict(parts)}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: Path) -> str:
    """The short SHA-256 of a file's bytes (for small inputs: masks, dark, flat images)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return short(digest.hexdigest())


# --- HDF5 datasets ---------------------------------------------------------------------

def _update(digest, *values: object) -> None:
    for value in values:
        if isinstance(value, np.ndarray):
            digest.update(f"{value.dtype.str}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        else:
            digest.update(repr(value).encode())
        digest.update(b";")


def _chunk_index(dsid) -> np.ndarray:
    """(chunk offset…, filter mask, byte offset, size) of every allocated chunk."""
    rows: list[tuple[int, ...]] = []

    def add(info) -> None:
        rows.append((*info.chunk_offset, info.filter_mask, info.byte_offset or 0,
                     info.size))
    if hasattr(dsid, "chunk_iter"):
        try:
            dsid.chunk_iter(add)
            return np.asarray(rows, np.int64)
        except (AttributeError, NotImplementedError, RuntimeError):  # an older HDF5
            rows.clear()
    for index in range(dsid.get_num_chunks()):
        add(dsid.get_chunk_info(index))
    return np.asarray(rows, np.int64)


def _storage(digest, dataset, base: Path, depth: int = 0) -> None:
    """Where *dataset*'s values are stored (see the module docstring)."""
    import h5py

    dsid = dataset.id
    plist = dsid.get_create_plist()
    layout = plist.get_layout()
    filters = [plist.get_filter(i)[:3] for i in range(plist.get_nfilters())]
    _update(digest, "layout", layout, "filters", filters)
    if layout == h5py.h5d.CHUNKED:
        _update(digest, "chunks", dataset.chunks, _chunk_index(dsid))
    elif layout == h5py.h5d.CONTIGUOUS:
        externals = [plist.get_external(i) for i in range(plist.get_external_count())]
        _update(digest, "contiguous", dsid.get_offset(), dsid.get_storage_size(), externals)
        for name, _offset, _size in externals:
            target = Path(os.fsdecode(name))
            target = target if target.is_absolute() else base / target
            _update(digest, target.stat().st_size if target.exists() else "missing")
    elif layout == h5py.h5d.VIRTUAL:
        for i in range(plist.get_virtual_count()):
            name = plist.get_virtual_filename(i)
            path = plist.get_virtual_dsetname(i)
            _update(digest, "virtual", name, path,
                    _selection(plist.get_virtual_vspace(i)),
                    _selection(plist.get_virtual_srcspace(i)))
            if depth == 0:
                _source_storage(digest, base, name, path)
    else:  # compact: the values live in the object header; the frames below cover them
        _update(digest, "compact", dsid.get_storage_size())


def _selection(space) -> tuple:
    """The shape and the selected block of a dataspace of a virtual mapping."""
    import h5py

    kind = space.get_select_type()
    if kind == h5py.h5s.SEL_ALL:
        return space.shape, "all"
    if kind == h5py.h5s.SEL_NONE:
        return space.shape, "none"
    try:
        return space.shape, space.get_select_bounds()
    except ValueError:  # a selection HDF5 gives no bounds for
        return space.shape, kind


def _source_storage(digest, base: Path, name: str, path: str) -> None:
    """The storage of one source of a virtual dataset (``missing`` if absent)."""
    import h5py

    source = base if name == "." else Path(name) if Path(name).is_absolute() \
        else base / name
    if name == "." or not source.is_file():
        _update(digest, "same file" if name == "." else "missing")
        return
    try:
        with h5py.File(source, "r", locking=False) as handle:
            item = handle.get(path)
            if isinstance(item, h5py.Dataset):
                _update(digest, item.shape, item.dtype.str)
                _storage(digest, item, source.parent, depth=1)
            else:
                _update(digest, "no dataset")
    except OSError as exc:
        _update(digest, f"unreadable: {exc}")


def dataset_fingerprint(path: Path, dataset_path: str = RAW_DATASET) -> str:
    """The short content fingerprint of the HDF5 dataset *dataset_path* of *path*
    (resolved through external links; see the module docstring). Raises
    FileNotFoundError, OSError (unreadable) or KeyError (no such dataset)."""
    import h5py
    import hdf5plugin  # noqa: F401  (the filters of compressed stacks)

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    digest = hashlib.sha256()
    with h5py.File(path, "r", locking=False) as root:
        dataset = root[dataset_path]
        if not isinstance(dataset, h5py.Dataset):
            raise KeyError(f"{dataset_path} is not a dataset")
        _update(digest, "shape", dataset.shape, "dtype", dataset.dtype.str)
        _storage(digest, dataset, Path(dataset.file.filename).parent)
        if dataset.size and dataset.ndim >= 3:
            _update(digest, "first", dataset[0], "last", dataset[-1])
        elif dataset.size:
            _update(digest, "frame", dataset[()])
    return short(digest.hexdigest())


def reduced_fingerprint(path: Path, signature_path: str) -> str:
    """The short fingerprint of a reduced file: the task signature recorded in each
    entry at *signature_path* and the committed frames of every entry. Raises
    FileNotFoundError or OSError."""
    import h5py

    from nxgid.nexus.frames import committed_frames, nxgid_entry_paths

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    found: dict[str, list] = {}
    with h5py.File(path, "r", locking=False) as root:
        for name in nxgid_entry_paths(root):
            entry = root[name]
            item = entry.get(signature_path)
            value = item[()] if isinstance(item, h5py.Dataset) else None
            value = value.decode() if isinstance(value, bytes) else value
            frames = committed_frames(entry) if "data" in entry else None
            found[name] = [None if value is None else str(value), frames]
    return digest_of(found)


# --- geometry part and reasons ---------------------------------------------------------

def geometry_part(configuration: str, geometry_hash: str) -> str:
    """The geometry part: the configuration's name and the short geometry hash."""
    return f"{configuration or '-'}:{short(geometry_hash)}"


def _geometry_reason(recorded: str, current: str, hint: str | None) -> str:
    old_name, _, _ = recorded.partition(":")
    new_name, _, _ = current.partition(":")
    if old_name != new_name:
        return f"{GEOMETRY_PART} (configuration {old_name} → {new_name})"
    return f"{GEOMETRY_PART} ({hint or f'configuration {new_name} changed'})"


def stale_reason(recorded: Mapping[str, str] | None, current: Mapping[str, str],
                 hints: Mapping[str, str] | None = None) -> str:
    """Which parts changed between the *recorded* parts of a done task and the
    *current* ones, e.g. ``geometry (configuration gid changed), raw stack``; *hints*
    (part → text) say more about a part. ``inputs changed`` when nothing was recorded
    (done before parts were kept); ``""`` when nothing changed."""
    if recorded is None:
        return "inputs changed"
    hints = hints or {}
    changed = []
    for name, value in current.items():
        before = recorded.get(name)
        if before == value:
            continue
        if before is None:
            changed.append(f"{name} (new input)")
        elif name == GEOMETRY_PART:
            changed.append(_geometry_reason(before, value, hints.get(name)))
        else:
            changed.append(name)
    changed += [f"{name} (no longer an input)" for name in recorded if name not in current]
    return ", ".join(changed)
