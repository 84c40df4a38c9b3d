"""Per-frame arrays of nxgid entries: appending blocks, committed frames, repairs.

Every array with one row per frame (the signal and its errors, ``frame_ind``, monitor,
raw file and frame number, scan variables, the angle of incidence) grows along axis 0.
The frame axis ``frame_ind`` grows last, once everything else of a block is flushed, so
its length counts the frames completely written (:func:`committed_frames`). Each
committed frame also has its group ``data/analysis/frameNNNNN``, where pygid and the
mlgid tools store their per-frame peak tables.

Where the entries of a file are: :func:`nxgid_entry_paths` — the top-level NXgid
entries and the results pygid does not know, nested in the ``other_results``
collection of the entry converted from the same frames (see docs/nexus-format.md).
"""

from __future__ import annotations

import numpy as np

from nxgid import names as nx
from nxgid.errors import NxgidError
from nxgid.nexus.h5 import nx_group

#: Per-frame text (raw file names) is fixed-length UTF-8, stored in the dataset itself:
#: variable-length strings live in HDF5's global heap, which a killed writer can leave
#: pointing at objects it never wrote.
TEXT_BYTES = 1024


def read_text(dataset) -> str:
    """A scalar string, or "" if it cannot be read (a variable-length string whose heap
    object a killed writer never wrote: it is simply written again)."""
    try:
        value = dataset[()]
    except OSError:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


# --- where the entries are ---------------------------------------------------------------

def is_nxgid_entry(group) -> bool:
    """A group (an NXentry, or a nested result's NXcollection) whose ``definition`` is
    NXgid."""
    if not hasattr(group, "get"):
        return False
    definition = group.get("definition")
    if definition is None or not hasattr(definition, "shape"):
        return False
    return read_text(definition) == nx.DEFINITION


def nxgid_entry_paths(root) -> list[str]:
    """Paths (from the root, no leading slash) of every NXgid entry of a file, in file
    order: the top-level entries, each followed by the results nested in its
    ``other_results`` collection."""
    paths = []
    for name in root:
        entry = root.get(name)
        if not is_nxgid_entry(entry):
            continue
        paths.append(name)
        nested = entry.get(nx.OTHER_RESULTS)
        if nested is not None and hasattr(nested, "keys"):
            paths += [f"{name}/{nx.OTHER_RESULTS}/{child}" for child in nested
                      if is_nxgid_entry(nested.get(child))]
    return paths


# --- growing -----------------------------------------------------------------------------

def grow(dataset, values) -> None:
    values = np.asarray(values)
    start = dataset.shape[0]
    dataset.resize(start + values.shape[0], axis=0)
    dataset[start:] = values


def frame_group_name(index: int) -> str:
    """``frame00012``: pygid's name of a frame's analysis group (five digits)."""
    return nx.FRAME_GROUP.format(index)


def add_frame_groups(entry, start: int, stop: int) -> None:
    """The analysis groups of frames *start* … *stop* − 1 (``data/analysis/frameNNNNN``,
    NXcollection: pygid and the mlgid tools store compound peak tables there, which no
    other NeXus class admits)."""
    analysis = entry[nx.DATA].get(nx.FRAME_ANALYSIS)
    if analysis is None:
        return
    for index in range(start, stop):
        nx_group(analysis, frame_group_name(index), "NXcollection")


RESERVED_NAMES = frozenset({nx.FRAME_AXIS, nx.FRAME_MONITOR, nx.FRAME_FILE, nx.FRAME_NUMBER,
                            nx.FRAME_INCIDENCE_LINK, nx.FRAME_ANALYSIS, *nx.RESULT_NAMES,
                            *nx.AXIS_DESCRIPTIONS,
                            *(r + nx.ERRORS_SUFFIX for r in nx.RESULT_NAMES)})


def check_variable_name(name: str) -> str:
    """A scan variable may not take the name of anything else in ``data``."""
    if name in RESERVED_NAMES:
        raise NxgidError(f"scan variable {name!r}: the name is taken by nxgid's own data; "
                         "choose another, e.g. sample_" + name)
    return name


def scan_variables(data) -> list[str]:
    """Names of the per-frame scan variables (temperature, motors, …) of an NXdata."""
    return [name for name, item in data.items()
            if getattr(item, "attrs", {}).get("nxgid_scan_variable", False)]


# --- committed frames and repairs ------------------------------------------------------------

def frame_datasets(entry) -> list:
    """Every dataset of an entry that has one row per frame."""
    data = entry.get(nx.DATA)
    if data is None:
        return []
    datasets = [item for item in data.values()
                if hasattr(item, "maxshape") and item.maxshape and item.maxshape[0] is None]
    incidence = entry.get(f"{nx.INSTRUMENT}/{nx.INCIDENCE_ANGLE}")  # maybe linked in data
    if incidence is not None and all(incidence.id != d.id for d in datasets):
        datasets.append(incidence)
    return datasets


def truncate_frames(entry, frames: int) -> None:
    """Cut every per-frame array of *entry* to *frames* (a block begun, not committed),
    and drop the analysis groups of the frames beyond."""
    for dataset in frame_datasets(entry):
        if dataset.shape[0] > frames:
            dataset.resize(frames, axis=0)
    analysis = entry.get(f"{nx.DATA}/{nx.FRAME_ANALYSIS}")
    if analysis is not None:
        for name in list(analysis):
            if name.startswith("frame") and name[5:].isdigit() and int(name[5:]) >= frames:
                del analysis[name]


def committed_frames(entry) -> int:
    """Frames completely written: the length of the frame axis (grown last, after a
    flush of everything else), never more than any per-frame array holds."""
    lengths = [d.shape[0] for d in frame_datasets(entry)]
    data = entry.get(nx.DATA)
    axis = data.get(nx.FRAME_AXIS) if data is not None else None
    if axis is not None:
        lengths.append(axis.shape[0])
    return min(lengths) if lengths else 0


def cut_to_committed(entry) -> int:
    """Cut the per-frame arrays of *entry* back to its committed frames; returns them."""
    committed = committed_frames(entry)
    truncate_frames(entry, committed)
    return committed


def repair_lengths(root) -> dict[str, int]:
    """Cut the per-frame arrays of every nxgid entry to the committed frames (after a
    writer was killed mid-block); returns the entries repaired with their frame count."""
    repaired = {}
    for path in nxgid_entry_paths(root):
        entry = root[path]
        lengths = {d.shape[0] for d in frame_datasets(entry)}
        committed = committed_frames(entry)
        analysis = entry.get(f"{nx.DATA}/{nx.FRAME_ANALYSIS}")
        groups = len(analysis) if analysis is not None else committed
        if lengths != {committed} or groups > committed:
            truncate_frames(entry, committed)
            repaired[path] = committed
        if analysis is not None and len(analysis) < committed:
            add_frame_groups(entry, 0, committed)
    return repaired


def hold_metadata_until_flush(handle) -> None:
    """Keep modified HDF5 metadata in memory until the next flush.

    By default HDF5 may write any piece of changed metadata (a chunk-index node, a
    dataset's new extent) to disk whenever its cache wants room, so a writer killed
    between two flushes can leave an index pointing at chunks not yet written ("filter
    returned failure during read"). With evictions off, the file on disk only changes at
    a flush, and a killed writer leaves the file as of its last completed block.
    """
    config = handle.id.get_mdc_config()
    config.evictions_enabled = False
    config.incr_mode = 0  # H5C_incr__off: required with evictions off
    config.flash_incr_mode = 0  # H5C_flash_incr__off
    config.decr_mode = 0  # H5C_decr__off
    handle.id.set_mdc_config(config)
