"""Importing a raw scan as far as it is ready: the beamline view cut to the ready files,
logs fitted to the frames, the import record and fingerprints, and undoing a failed
import."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

from nxgid.beamlines.base import BeamLine, RawScan, ScanLogs
from nxgid.errors import NxgidError
from nxgid.experiment.layout import Experiment, ScanRef
from nxgid.workflow.live.events import _one_line


class _ReadyBeamLine(BeamLine):
    """A beamline that lists one raw scan, cut to its ready files, with its logs."""

    def __init__(self, inner: BeamLine, raw: RawScan, logs: ScanLogs) -> None:
        super().__init__(inner.raw_directory, inner.settings)
        self.name = inner.name
        self._raw, self._logs = raw, logs

    def raw_scans(self, sample: str, label: str) -> list[RawScan]:
        return [self._raw]

    def logs(self, scan: RawScan) -> ScanLogs:
        return self._logs


def _fitted_logs(logs: ScanLogs, frames: int) -> ScanLogs:
    """The logs with per-frame values cut to *frames* (a beamline may log points ahead
    of the images); an error if the beamline logged fewer points than frames."""
    lengths = [len(values) for values in logs.table.values()]
    points = min(lengths) if lengths else None
    per_frame: list[tuple[str, list[float] | None]] = [
        ("monitor", logs.monitor), ("counting time", logs.counting_time_s),
        ("temperature", logs.temperature_K),
        *((f"{name} angle", values) for name, values in logs.angles_deg.items()),
        *((name, values) for name, (values, _unit) in logs.variables.items())]
    for name, values in per_frame:
        if values is not None and 1 < len(values) < frames:
            raise NxgidError(f"the beamline logs {len(values)} {name} value(s) for {frames} "
                             "stacked frame(s)")
    if points is not None and points < frames:
        raise NxgidError(f"the beamline logs {points} point(s) for {frames} stacked "
                         "frame(s)")

    def cut(values):
        return None if values is None else list(values)[:frames]

    return dataclasses.replace(
        logs, monitor=cut(logs.monitor), counting_time_s=cut(logs.counting_time_s),
        temperature_K=cut(logs.temperature_K),
        angles_deg={name: cut(values) for name, values in logs.angles_deg.items()},
        variables={name: (cut(values), unit)
                   for name, (values, unit) in logs.variables.items()})


def _import_record(scan_file: Path) -> str | None:
    """The raw-file fingerprint the import recorded in the scan file (None: not
    imported by a beamline)."""
    from nxgid.beamlines.importer import _recorded

    try:
        return _recorded(scan_file)
    except OSError as exc:
        raise NxgidError(f"{scan_file} cannot be read: {_one_line(exc)}") from None


def _fingerprint_or_none(raw: RawScan) -> str | None:
    from nxgid.beamlines.importer import fingerprint

    try:
        return fingerprint(raw)
    except OSError:
        return None


def _grown_since_import(record: str, entry: str, stacked: Sequence[str]) -> str | None:
    """The last stacked file of *entry*, if its size or time differ from the recorded
    fingerprint (a multi-frame file still written after it was stacked)."""
    if not stacked:
        return None
    try:
        files = json.loads(record).get(entry, [])
    except ValueError:
        return None
    known = {path: (size, mtime) for path, size, mtime in files}
    last = stacked[-1]
    if last not in known:
        return None
    try:
        info = os.stat(last)
    except OSError:
        return None
    return last if (info.st_size, info.st_mtime_ns) != tuple(known[last]) else None


def _remove_created(exp: Experiment, ref: ScanRef, entries, existed: dict[Path, bool]) -> None:
    """Undo an interrupted or failed import of a new scan: remove what it created."""
    from nxgid.experiment.stack import partial_path

    for name in entries:
        stack = exp.raw_stack(ref, name)
        if not existed.get(stack, True):
            stack.unlink(missing_ok=True)
            partial_path(stack).unlink(missing_ok=True)
    scan_file = exp.scan_file(ref)
    if not existed.get(scan_file, True):
        scan_file.unlink(missing_ok=True)
        scan_file.with_name(f".{scan_file.name}.lock").unlink(missing_ok=True)
    if not existed.get(exp.scan_dir(ref), True):
        with contextlib.suppress(OSError):
            exp.scan_dir(ref).rmdir()
