"""The links of a scan file: to its raw stacks, and to its reduced data.

* **Raw stack.** Until ``<scan>/fN.h5`` exists, entry ``fN`` holds an empty placeholder
  for the detector frames (0 × rows × columns; no attribute marks it, as NXsas admits
  none: it is the detector data that is not an external link), in
  ``instrument/detector/data`` with ``data/data`` a hard link to it: the file is then
  valid NXsas and opens in every reader (a dangling external link makes silx and
  pynxtools raise). A configuration keeps its placeholders. The ``link`` task (or
  :func:`link_raw_stack`) replaces them by relative external links to
  ``fN.h5:/entry/data/data`` once the stack is there.
* **Reduced data.** After a conversion, ``/fN/reduced`` (an NXcollection) holds one
  NXdata group per result, whose signal, errors and axes are relative external links to
  the datasets of ``<scan>/fN_reduced.nxs``: the scan file reaches every map, without
  linking whole entries into an entry (which validators and nexusformat would walk as
  entries in an entry, and which nexusformat 2.1 cannot load).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nxgid.experiment.layout import REDUCED_LINK as REDUCED
from nxgid.nexus.h5 import nx_group


def _nxdata(group) -> None:
    group.attrs["NX_class"] = "NXdata"
    group.attrs["signal"] = "data"
    group.attrs["axes"] = [".", ".", "."]


def write_placeholder(entry, frame_shape: tuple[int, int]) -> None:
    """Give entry *entry* (``fN``) an empty detector ``data`` (and ``data/data``)."""
    detector = entry.require_group("instrument/detector")
    data = nx_group(entry, "data", "NXdata")
    for group in (detector, data):
        if "data" in group:
            del group["data"]
    frames = detector.create_dataset("data", shape=(0, *frame_shape),
                                     maxshape=(None, *frame_shape),
                                     chunks=(1, *frame_shape), dtype=np.int32)
    frames.attrs["units"] = "counts"
    frames.attrs["target"] = frames.name
    data["data"] = frames
    _nxdata(data)


def is_linked(entry) -> bool:
    """Whether ``fN/data/data`` is an external link (else the placeholder)."""
    import h5py

    return isinstance(entry["data"].get("data", getlink=True), h5py.ExternalLink)


def link_raw_stack(entry, filename: str) -> None:
    """Point ``fN``'s detector data at the raw stack *filename* (relative to the scan
    file), replacing the placeholder."""
    import h5py

    from nxgid.names import RAW_STACK_DATA

    link = h5py.ExternalLink(filename, RAW_STACK_DATA)
    data = nx_group(entry, "data", "NXdata")
    detector = entry.require_group("instrument/detector")
    for group in (data, detector):
        if "data" in group:
            del group["data"]
        group["data"] = link
    _nxdata(data)


def link_reduced(entry, filename: str, reduced: Path) -> list[str]:
    """Make ``fN/reduced``: one NXdata group per result of the reduced file *reduced*
    (reached from the scan file as *filename*), fields linked to its datasets; returns
    the results linked."""
    import h5py

    from nxgid import names as nx
    from nxgid.nexus.frames import nxgid_entry_paths

    if REDUCED in entry:
        del entry[REDUCED]
    collection = nx_group(entry, REDUCED, "NXcollection")
    collection.attrs["description"] = f"the reduced data: {filename}"
    linked = []
    with h5py.File(reduced, "r") as root:
        for path in nxgid_entry_paths(root):
            source = root[path][nx.DATA]
            signal = source.attrs["signal"]
            signal = signal.decode() if isinstance(signal, bytes) else str(signal)
            name = path.rsplit("/", 1)[-1]
            group = collection.create_group(name)
            for key, value in source.attrs.items():
                group.attrs[key] = value
            axes = [a.decode() if isinstance(a, bytes) else str(a)
                    for a in np.atleast_1d(source.attrs.get("axes", []))]
            for field in dict.fromkeys([signal, signal + nx.ERRORS_SUFFIX, *axes]):
                if field in source:
                    group[field] = h5py.ExternalLink(filename, f"{source.name}/{field}")
            linked.append(name)
    return linked
