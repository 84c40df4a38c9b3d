"""``nxgid import``: raw scans of a beamline → nxgid scans, the same way for every
beamline.

For each raw scan the beamline lists: a scan file from the configuration
(:func:`nxgid.experiment.scans.new_scan`), each entry's frames stacked into
``<scan>/fN.h5`` (:mod:`nxgid.experiment.stack`) or, for detector master files, ``<scan>/fN.h5``
holding an external link to them (never a copy), and the beamline's logs written into
the entries: per-frame monitor (NXmonitor), counting time, goniometer angles, sample
temperature, start time and the raw log table (an NXcollection). A fingerprint of the
raw files (names, sizes, times) makes re-runs idempotent: unchanged scans are left
alone, changed ones reported (and re-imported with ``overwrite``). Only the raw tree is
read; a read-only raw tree works.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nxgid.beamlines.base import BeamLine, RawScan, ScanLogs
from nxgid.errors import NxgidError
from nxgid.experiment.layout import Experiment, ScanRef

#: Where a scan file records its import: beamline, raw source and fingerprint.
IMPORT_GROUP = "import"


@dataclass
class ImportAction:
    scan: str
    #: "create", "unchanged", "changed", "reimport" or "skipped"
    action: str
    detail: str = ""
    warnings: list[str] = field(default_factory=list)


def fingerprint(scan: RawScan) -> str:
    """Names, sizes and modification times of the raw files of a scan, as JSON."""
    record = {}
    for entry, files in scan.entries.items():
        record[entry] = []
        for path in files:
            stat = Path(path).stat()
            record[entry].append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
    return json.dumps(record, sort_keys=True)


def _recorded(path: Path) -> str | None:
    import h5py

    with h5py.File(path, "r") as root:
        item = root.get(f"entry/{IMPORT_GROUP}/fingerprint")
        if item is None:
            return None
        value = item[()]
        return value.decode() if isinstance(value, bytes) else str(value)


def import_scans(experiment: Experiment, beamline: BeamLine, sample: str, label: str,
                 configuration: str, *, dry_run: bool = False, overwrite: bool = False,
                 say: Callable[[str], None] | None = None) -> list[ImportAction]:
    """Import every raw scan of *sample*/*label*; see the module docstring."""
    from nxgid.experiment.configuration import configuration_geometry, read_configuration
    from nxgid.names import check_name

    config_path = experiment.configuration_file(configuration)
    positions = len(read_configuration(config_path)["positions"])
    geometry = configuration_geometry(config_path)
    detector = (f"configuration {configuration}'s detector "
                f"{getattr(geometry.detector, 'name', '') or 'detector'}", geometry.shape)
    if not experiment.label_dir(sample, label).is_dir():
        raise NxgidError(f"{sample}/{label} does not exist: create it with `nxgid sample "
                         f"new {sample} {label}`")
    actions: list[ImportAction] = []
    for raw in beamline.raw_scans(sample, label):
        if raw.skipped:
            actions.append(ImportAction(raw.scan, "skipped", raw.skipped))
            continue
        try:
            check_name(raw.scan, "scan")
        except NxgidError as exc:
            actions.append(ImportAction(raw.scan, "skipped", str(exc)))
            continue
        if len(raw.entries) > positions:
            actions.append(ImportAction(raw.scan, "skipped",
                                        f"{len(raw.entries)} entries, but configuration "
                                        f"{configuration} has {positions} position(s)"))
            continue
        ref = ScanRef(sample, label, raw.scan)
        path = experiment.scan_file(ref)
        print_ = fingerprint(raw)
        if path.exists():
            recorded = _recorded(path)
            if recorded == print_ and not overwrite:
                actions.append(ImportAction(raw.scan, "unchanged"))
                continue
            if not overwrite:
                actions.append(ImportAction(raw.scan, "changed",
                                            "the raw files changed since the import (or the "
                                            "scan was not imported): --overwrite re-imports"))
                continue
            action = "reimport"
        else:
            action = "create"
        frames = sum(len(f) for f in raw.entries.values())
        detail = (f"{len(raw.entries)} entr{'y' if len(raw.entries) == 1 else 'ies'}, "
                  + ("linked" if raw.link else f"{frames} image file(s) stacked"))
        if dry_run:
            actions.append(ImportAction(raw.scan, action, "would be: " + detail))
            continue
        _check_frames(beamline, raw, detector)  # before anything is created
        if say is not None:
            say(f"{ref}: {detail}")
        logs = beamline.logs(raw)
        with _undone_on_failure(experiment.scan_dir(ref), path, action == "create"):
            _import_one(experiment, ref, raw, logs, configuration, beamline, print_,
                        overwrite=action == "reimport")
        actions.append(ImportAction(raw.scan, action, detail, list(logs.warnings)))
    return actions


def _check_frames(beamline: BeamLine, raw: RawScan,
                  detector: tuple[str, tuple[int, int]]) -> None:
    """Every raw file of *raw* is inside the beamline's raw tree, reads (headers only,
    within the reader deadline) and has the detector's frame shape."""
    from nxgid.images.series import open_series

    for files in raw.entries.values():
        for file in files:
            beamline.checked(Path(file), "raw file")
        if raw.link:
            continue
        series = open_series([str(f) for f in files])
        if tuple(series.shape) != tuple(detector[1]):
            size = "×".join(map(str, series.shape))
            raise NxgidError(f"{files[0]}: frames of {size} pixels; {detector[0]} has "
                             f"{'×'.join(map(str, detector[1]))}")


@contextlib.contextmanager
def _undone_on_failure(folder: Path, scan_file: Path, new: bool) -> Iterator[None]:
    """A scan import that fails leaves no new scan behind: the files it created in the
    scan folder (never one that was there before) and the folder if it made it."""
    existed = folder.exists()
    before = set(folder.iterdir()) if existed else set()
    try:
        yield
    except BaseException:
        if new:
            for item in (set(folder.iterdir()) if folder.is_dir() else set()) - before:
                if item.is_file() and not item.is_symlink():
                    item.unlink()
            if scan_file.is_file():
                scan_file.unlink()
            if not existed and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _import_one(experiment: Experiment, ref: ScanRef, raw: RawScan, logs: ScanLogs,
                configuration: str, beamline: BeamLine, print_: str, *,
                overwrite: bool) -> None:
    import h5py

    from nxgid.experiment.configuration import rewrite
    from nxgid.experiment.links import link_raw_stack
    from nxgid.experiment.locks import file_lock
    from nxgid.experiment.scans import new_scan
    from nxgid.experiment.stack import stack_images
    from nxgid.nexus.h5 import nx_field, nx_group

    variables = {}
    if logs.temperature_K:
        variables["temperature"] = (float(np.mean(logs.temperature_K)), "K")
    path = new_scan(experiment, ref, configuration, variables=variables, overwrite=overwrite)
    for entry, files in raw.entries.items():
        target = experiment.raw_stack(ref, entry)
        if raw.link:
            _link_stack(target, Path(files[0]))
        else:
            stack_images([str(f) for f in files], target, overwrite=overwrite)
    with file_lock(path), rewrite(path) as root:  # live mode may edit it meanwhile
        record = nx_group(root["entry"], IMPORT_GROUP, "NXcollection")
        nx_field(record, "beamline", beamline.name)
        nx_field(record, "fingerprint", print_)
        for key, value in raw.source.items():
            nx_field(record, key, str(value))
        if logs.start_time:
            nx_field(root["entry"], "start_time", logs.start_time)
        for entry in raw.entries:
            write_logs(root[entry], logs)
            if experiment.raw_stack(ref, entry).exists():
                link_raw_stack(root[entry], experiment.raw_link(ref, entry))
    del h5py


def _link_stack(target: Path, master: Path) -> None:
    """``<scan>/fN.h5`` whose ``/entry/data/data`` is a virtual dataset over the master
    file's detector data (all Eiger ``data_NNNNNN`` parts, in order), with source paths
    relative to the scan folder: the scan reaches the beamline's files, nothing is
    copied, and the raw tree is only read."""
    import h5py

    from nxgid.images.series import _find_datasets

    parts: list[tuple[Path, str, tuple[int, ...], np.dtype]] = []
    with h5py.File(master, "r") as source:
        names = _find_datasets(source, master)
        if not names:
            raise NxgidError(f"{master}: no detector data found in it")
        for name in names:
            link = source.get(name, getlink=True)
            dataset = source[name]
            if isinstance(link, h5py.ExternalLink):
                file, path = master.parent / link.filename, link.path
            else:
                file, path = master, name
            shape = dataset.shape if dataset.ndim == 3 else (1, *dataset.shape)
            parts.append((file, path, shape, dataset.dtype))
    frames = sum(shape[0] for _, _, shape, _ in parts)
    layout = h5py.VirtualLayout(shape=(frames, *parts[0][2][1:]), dtype=parts[0][3])
    start = 0
    for file, path, shape, _ in parts:
        relative = os.path.relpath(file, target.parent)
        layout[start:start + shape[0]] = h5py.VirtualSource(relative, path, shape=shape)
        start += shape[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    with h5py.File(partial, "w") as out:
        out.attrs["NX_class"] = "NXroot"
        entry = out.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "data"
        data.create_virtual_dataset("data", layout).attrs["units"] = "counts"
        entry.create_dataset("master_file", data=os.path.relpath(master, target.parent))
    partial.replace(target)


def write_logs(entry, logs: ScanLogs) -> None:
    from nxgid.nexus.h5 import nx_field, nx_group

    if logs.monitor:
        monitor = nx_group(entry, "monitor", "NXmonitor")
        nx_field(monitor, "mode", "timer" if logs.counting_time_s else "monitor")
        nx_field(monitor, "preset", float(logs.counting_time_s[0]) if logs.counting_time_s
                else float(logs.monitor[0]), "s" if logs.counting_time_s else None)
        nx_field(monitor, "integral", float(np.sum(logs.monitor)), "counts")
        nx_field(monitor, "data", np.asarray(logs.monitor, dtype=np.float64), "counts")
    instrument = entry["instrument"]
    goniometer = nx_group(instrument, "goniometer", "NXcollection")
    for name, values in logs.angles_deg.items():
        nx_field(goniometer, f"{name}_per_frame", np.asarray(values, np.float64), "degree")
    if logs.counting_time_s:
        nx_field(goniometer, "counting_time", np.asarray(logs.counting_time_s, np.float64),
                "s")
    if logs.temperature_K:
        nx_field(entry["sample"], "temperature", np.asarray(logs.temperature_K, np.float64),
                "K")
    for name, (values, unit) in logs.variables.items():
        nx_field(entry["sample"], name, np.asarray(values, np.float64), unit or None)
    if logs.table:
        table = nx_group(instrument, "logs", "NXcollection")
        for name, values in logs.table.items():
            safe = "".join(c if c.isalnum() or c in "_-." else "_" for c in name) or "column"
            nx_field(table, safe, np.asarray(values, dtype=np.float64))
