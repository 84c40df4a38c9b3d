"""The ``spec`` beamline: scans recorded in a SPEC file, images in one folder per scan.

Raw tree (all names configurable, see :data:`DEFAULTS`)::

    <raw>/<sample>.spec            the SPEC file (a glob may match several files)
    <raw>/<sample>_012/*.cbf       the images of SPEC scan #S 12 (CBF, TIFF, EDF, …)

The SPEC file is parsed with :class:`silx.io.specfile.SpecFile`, never by hand. Each
``#S`` scan becomes a raw scan ``s012`` (a repeated scan number, e.g. the second
``#S 12`` after a restart, becomes ``s012.2``, following silx's ``"12.2"`` keys). A scan
without its image folder or images is listed as skipped with the reason; a scan silx
cannot read is skipped with silx's message. An aborted or incomplete scan is listed
(importable) with its state in ``source["state"]``.

Which SPEC columns or positioners mean monitor, counting time, temperature and the
angles is configured by keyword arguments, else by the settings' ``beamline`` section
(attributes or keys of ``settings.beamline``), else :data:`DEFAULTS`. Each name may list
alternatives separated by commas (``"mon,I0"``); names match exactly first, then
ignoring case. The default monitor, counting-time and angle names also try a few common
spellings (:data:`FALLBACKS`).

Logs of a scan: start time (``#D``, as ISO 8601 when parseable), per-frame monitor,
counting time (else ``#T``), temperature (else a positioner of that name) and angles (a
scanned motor's column, else its ``#O``/``#P`` position repeated per frame), and the full
data table. Per-frame values have one value per image frame; if the image count differs
from the SPEC point count, a warning names both numbers, extra points are dropped and
missing ones are NaN. The raw tree is only read.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from nxgid.beamlines.base import BeamLine, RawScan, ScanLogs
from nxgid.errors import MissingError, NxgidError, SettingsError

#: Settings of the beamline and their defaults.
DEFAULTS: dict[str, object] = {
    "spec_file": "{sample}.spec",
    "image_folder": "{sample}_{scan:03d}",
    "image_glob": "*.cbf,*.tif,*.tiff,*.edf",
    "motors": {"phi": "phi", "chi": "chi", "omega": "omega", "theta": "th",
               "incidence_angle": "ai"},
    "monitor": "mon",
    "counting_time": "Seconds",
    "temperature": "temp",
    "temperature_unit": "K",
}

#: Names also tried when a setting keeps its default value.
FALLBACKS: dict[str, tuple[str, ...]] = {
    "monitor": ("mon", "Monitor", "I0", "io"),
    "counting_time": ("Seconds", "Time", "sec", "count_time"),
    "theta": ("th", "theta"),
    "omega": ("omega", "om"),
    "incidence_angle": ("ai", "alpha_i", "alphai"),
}

_DATE_FORMATS = ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M:%S.%f %Y", "%Y-%m-%d %H:%M:%S",
                 "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f")


#: A scan header as SPEC writes it: ``#S <number> <command>``; the number is positive
#: and short enough to make a sane scan name.
SCAN_HEADER = re.compile(r"#S\s+(\d{1,9})\s+(\S.*)")


def check_scan_headers(path: Path) -> None:
    """Refuse a SPEC file with a ``#S`` line that is not ``#S NUMBER COMMAND``, naming the
    file and line (silx would make scan 0, a negative or a 20-digit number of it)."""
    from nxgid.safety.paths import check_regular_file

    check_regular_file(path, "SPEC file")
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.startswith(b"#S") or raw[2:3] not in (b" ", b"\t", b"\n",
                                                                 b"\r", b""):
                    continue
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                found = SCAN_HEADER.fullmatch(line.rstrip())
                if found is None or int(found.group(1)) == 0:
                    shown = line if len(line) <= 60 else line[:57] + "..."
                    raise NxgidError(f"{path}, line {number}: scan header {shown!r}: expected "
                                     "'#S NUMBER COMMAND' with a scan number from 1 to "
                                     "999999999")
    except OSError as exc:
        raise NxgidError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _names(value: object) -> tuple[str, ...]:
    """A setting naming columns: ``"a,b"`` or a list → ``("a", "b")``; empty disables."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(item).strip() for item in items if str(item).strip())


def _match(available: Sequence[str], wanted: Sequence[str]) -> str | None:
    """The first of *wanted* in *available*: exact first, then ignoring case."""
    for name in wanted:
        if name in available:
            return name
    folded = {name.casefold(): name for name in reversed(available)}
    for name in wanted:
        if name.casefold() in folded:
            return folded[name.casefold()]
    return None


def iso_time(text: str) -> str:
    """A SPEC ``#D`` date → ISO 8601 when parseable (also epoch seconds), else *text*."""
    clean = " ".join(text.split())
    for form in _DATE_FORMATS:
        try:
            return datetime.strptime(clean, form).isoformat()
        except ValueError:
            pass
    try:
        seconds = float(clean)
    except ValueError:
        return clean
    if math.isfinite(seconds) and 0 < seconds < 1e11:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat()
    return clean


def requested_points(command: str) -> int | None:
    """Points a SPEC scan command asks for (``ascan th 0 1 20 1`` → 21), if known."""
    words = command.split()
    if not words:
        return None
    name, args = words[0], words[1:]
    try:
        match = re.fullmatch(r"[ad](\d?)scan", name)
        if match or name in ("lup", "dscan", "rscan"):
            motors = int(match.group(1) or 1) if match else 1
            return int(args[3 * motors]) + 1
        if name in ("mesh", "dmesh", "hklmesh"):
            return (int(args[3]) + 1) * (int(args[7]) + 1)
        if name == "hklscan":
            return int(args[6]) + 1
        if name in ("hscan", "kscan", "lscan", "Escan", "escan", "thscan"):
            return int(args[2]) + 1
        if name == "loopscan":
            return int(args[0])
    except (IndexError, ValueError):
        return None
    return None


def _fit(values: Sequence[float], count: int) -> list[float]:
    """*values* cut or NaN-padded to *count* values."""
    values = [float(v) for v in values[:count]]
    return values + [math.nan] * (count - len(values))


class SpecBeamLine(BeamLine):
    """Scans from a SPEC file, images from one folder per scan; see the module docstring."""

    name = "spec"

    def __init__(self, raw_directory: Path, settings=None, *, spec_file: str | None = None,
                 image_folder: str | None = None, image_glob: str | None = None,
                 motors: Mapping[str, str] | None = None, monitor: str | None = None,
                 counting_time: str | None = None, temperature: str | None = None,
                 temperature_unit: str | None = None) -> None:
        super().__init__(raw_directory, settings)
        given = {"spec_file": spec_file, "image_folder": image_folder,
                 "image_glob": image_glob, "motors": motors, "monitor": monitor,
                 "counting_time": counting_time, "temperature": temperature,
                 "temperature_unit": temperature_unit}
        section = getattr(settings, "beamline", None) if settings is not None else None
        options: dict[str, object] = {}
        for key, default in DEFAULTS.items():
            value = given[key]
            if value is None and section is not None:
                value = (section.get(key) if isinstance(section, Mapping)
                         else getattr(section, key, None))
            options[key] = default if value is None else value
        self.spec_file = str(options["spec_file"])
        self.image_folder = str(options["image_folder"])
        self.image_globs = _names(options["image_glob"])
        self.temperature_unit = str(options["temperature_unit"])
        if self.temperature_unit not in ("K", "C"):
            raise SettingsError(f"beamline temperature_unit {self.temperature_unit!r}: "
                                "expected 'K' or 'C'")
        for key in ("spec_file", "image_folder"):
            pattern = getattr(self, key)
            try:
                pattern.format(sample="s", label="l", scan=1, order=1)
            except (KeyError, IndexError, ValueError) as exc:
                raise SettingsError(f"beamline {key} {pattern!r}: {_one_line(exc)}; "
                                    "expected a pattern using {sample}, {label}, {scan} "
                                    "and {order}") from None
        if not isinstance(options["motors"], Mapping):
            raise SettingsError("beamline motors: expected a table of angle → SPEC motor")
        self.columns: dict[str, tuple[str, ...]] = {}
        for role in ("monitor", "counting_time", "temperature"):
            self.columns[role] = self._wanted(role, options[role], DEFAULTS[role])
        self.motors: dict[str, tuple[str, ...]] = {}
        for role, value in {**DEFAULTS["motors"], **options["motors"]}.items():
            self.motors[str(role)] = self._wanted(role, value, DEFAULTS["motors"].get(role))
        self._files: dict[Path, object] = {}

    @staticmethod
    def _wanted(role: str, value: object, default: object) -> tuple[str, ...]:
        names = _names(value)
        if value == default and role in FALLBACKS:
            names += tuple(n for n in FALLBACKS[role] if n not in names)
        return names

    # --- SPEC files ------------------------------------------------------------------

    def spec_files(self, sample: str, label: str) -> list[Path]:
        """The SPEC file(s) of *sample*/*label*; a one-line error if there are none."""
        pattern = self.spec_file.format(sample=sample, label=label, scan=0, order=0)
        path = self.raw_directory / pattern
        if any(c in pattern for c in "*?["):
            found = sorted(p for p in self.raw_directory.glob(pattern) if p.is_file())
        else:
            found = [path] if path.is_file() else []
        if not found:
            raise MissingError(f"{path}: no SPEC file for {sample}/{label} (beamline "
                               f"spec_file is {self.spec_file!r})")
        return [self.checked(p, "SPEC file") for p in found]

    def _open(self, path: Path):
        from silx.io.specfile import SpecFile

        key = Path(path).resolve()
        if key not in self._files:
            check_scan_headers(Path(path))
            try:
                self._files[key] = SpecFile(str(path))
            except Exception as exc:
                raise NxgidError(f"{path}: cannot be read as a SPEC file: "
                                 f"{_one_line(exc)}") from None
        return self._files[key]

    def close(self) -> None:
        """Close the SPEC files opened so far (they are reopened when needed)."""
        for spec in self._files.values():
            spec.close()
        self._files.clear()

    # --- raw scans --------------------------------------------------------------------

    def raw_scans(self, sample: str, label: str) -> list[RawScan]:
        scans: list[RawScan] = []
        seen: dict[str, str] = {}
        folders: dict[str, str] = {}
        for path in self.spec_files(sample, label):
            spec = self._open(path)
            try:
                keys = list(spec.keys())
            except Exception as exc:
                raise NxgidError(f"{path}: cannot list its scans: {_one_line(exc)}") from None
            for key in keys:
                raw = self._raw_scan(spec, path, key, sample, label)
                if raw.scan in seen and not raw.skipped:
                    raw.skipped = (f"scan name {raw.scan} is also SPEC scan "
                                   f"{seen[raw.scan]}; only the first is imported")
                seen.setdefault(raw.scan, f"{key} of {path}")
                folder = raw.source.get("image_folder")
                if folder in folders and not raw.skipped:
                    raw.skipped = (f"image folder {folder} is also that of SPEC scan "
                                   f"{folders[folder]} (a repeated scan number: put "
                                   "{order} in the beamline image_folder)")
                if folder and raw.entries:
                    folders.setdefault(folder, key)
                scans.append(raw)
        return scans

    def _raw_scan(self, spec, path: Path, key: str, sample: str, label: str) -> RawScan:
        number, _, order = str(key).partition(".")
        name = f"s{number.zfill(3)}" + (f".{order}" if order not in ("", "1") else "")
        source = {"spec_file": str(path), "spec_scan": str(key)}
        try:
            scan = spec[key]
            number, order = int(scan.number), int(scan.order)
            name = f"s{number:03d}" + (f".{order}" if order != 1 else "")
            command = _command(scan)
            source["command"] = command
            points = _table(scan)[2]
            source["points"] = str(points)
            source["state"] = _state(scan, command, points)
        except Exception as exc:
            return RawScan(name, label, source=source,
                           skipped=f"SPEC scan {key} of {path} cannot be read: "
                                   f"{_one_line(exc)}")
        folder = path.parent / self.image_folder.format(sample=sample, label=label,
                                                        scan=number, order=order)
        source["image_folder"] = str(folder)
        if folder.exists() or folder.is_symlink():
            self.checked(folder, f"image folder of SPEC scan {key}")
        if not folder.is_dir():
            return RawScan(name, label, source=source,
                           skipped=f"no image folder {folder} for SPEC scan {key}")
        try:
            images = self._images(folder)
        except OSError as exc:
            return RawScan(name, label, source=source,
                           skipped=f"image folder {folder} cannot be read: {_one_line(exc)}")
        if not images:
            return RawScan(name, label, source=source,
                           skipped=f"no image files ({','.join(self.image_globs)}) in "
                                   f"{folder} for SPEC scan {key}")
        return RawScan(name, label, entries={"f1": images}, source=source)

    def _images(self, folder: Path) -> list[Path]:
        from nxgid.images.series import _natural_key

        patterns = [p.casefold() for p in self.image_globs]
        return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                       and any(fnmatch.fnmatchcase(p.name.casefold(), g) for g in patterns)),
                      key=_natural_key)

    # --- logs -------------------------------------------------------------------------

    def logs(self, scan: RawScan) -> ScanLogs:
        path, key = scan.source.get("spec_file"), scan.source.get("spec_scan")
        if not path or not key:
            raise NxgidError(f"scan {scan.scan}: not a SPEC scan (no spec_file/spec_scan "
                             "in its source)")
        spec = self._open(Path(path))
        number, _, order = key.partition(".")
        title = f"scan {number}" + (f".{order}" if order not in ("", "1") else "")
        try:
            spec_scan = spec[key]
            labels, data, points, numbered = _table(spec_scan)
            header = spec_scan.scan_header_dict
            dates = [line[2:].strip() for line in spec_scan.scan_header
                     if line.startswith("#D ")]
        except Exception as exc:
            raise NxgidError(f"SPEC scan {key} of {path} cannot be read: "
                             f"{_one_line(exc)}") from None
        logs = ScanLogs(table={name: [float(v) for v in data[i]]
                               for i, name in enumerate(labels)})
        if numbered:
            logs.warnings.append(f"{title}: {len(_labels(spec_scan))} column label(s) for "
                                 f"{len(labels)} data columns; columns named by number")
        if dates:  # the first #D (silx joins repeated ones)
            logs.start_time = iso_time(dates[0])
        frames, problem = self._frame_count(scan)
        if problem:
            logs.warnings.append(f"{title}: {problem}")
        if frames is not None and frames != points:
            logs.warnings.append(f"{title}: {frames} images, {points} SPEC points")
        count = points if frames is None else frames
        state = _state(spec_scan, _command(spec_scan), points)
        if state != "complete":
            logs.warnings.append(f"{title}: {state}")

        def column(role: str) -> list[float] | None:
            name = _match(labels, self.columns[role])
            return _fit(logs.table[name], count) if name is not None and count else None

        logs.monitor = column("monitor")
        logs.counting_time_s = column("counting_time")
        if logs.counting_time_s is None and count:
            preset = _number(header.get("T", ""))
            if preset is not None and preset > 0:
                logs.counting_time_s = [preset] * count
        temperature = column("temperature")
        if temperature is None and count:
            temperature = self._positioner(spec_scan, self.columns["temperature"], count,
                                           title, logs.warnings)
        if temperature is not None and self.temperature_unit == "C":
            temperature = [t + 273.15 for t in temperature]
        logs.temperature_K = temperature
        for role, wanted in self.motors.items():
            name = _match(labels, wanted)
            if name is not None:
                values = _fit(logs.table[name], count)
            else:
                values = self._positioner(spec_scan, wanted, count, title, logs.warnings)
            if values is not None and count:
                logs.angles_deg[role] = values
        return logs

    def _frame_count(self, scan: RawScan) -> tuple[int | None, str | None]:
        """Frames in the scan's images (all entries hold the same scan points)."""
        files = next(iter(scan.entries.values()), [])
        if not files:
            return None, None
        from nxgid.images.series import open_series

        try:
            return len(open_series([str(f) for f in files])), None
        except NxgidError as exc:
            return len(files), f"images not all readable ({exc}); counted files instead"

    @staticmethod
    def _positioner(spec_scan, wanted: Sequence[str], count: int, title: str,
                    warnings: list[str]) -> list[float] | None:
        """A ``#O``/``#P`` position repeated *count* times, or None."""
        if not wanted or not count:
            return None
        try:
            name = _match(list(spec_scan.motor_names), wanted)
            if name is None:
                return None
            return [float(spec_scan.motor_position_by_name(name))] * count
        except Exception as exc:
            warnings.append(f"{title}: positioner {wanted[0]!r} cannot be read: "
                            f"{_one_line(exc)}")
            return None


# --- reading one silx scan -----------------------------------------------------------------


def _command(scan) -> str:
    """The ``#S`` line without its scan number."""
    text = str(scan.scan_header_dict.get("S", ""))
    return " ".join(text.split()[1:])


def _labels(scan) -> list[str]:
    try:
        return [str(label) for label in scan.labels]
    except Exception:
        return []


def _table(scan) -> tuple[list[str], np.ndarray, int, bool]:
    """Column labels (unique, one per data column), data (columns × points), points,
    and whether the ``#L`` labels did not fit the columns (named ``column_N`` then)."""
    data = np.asarray(scan.data, dtype=np.float64)
    if data.size == 0:
        return [], np.zeros((0, 0)), 0, False
    if data.ndim == 1:
        data = data[:, np.newaxis]
    labels = _labels(scan)
    numbered = False
    if len(labels) != data.shape[0]:
        split = " ".join(labels).split()  # '#L' written with single spaces
        numbered = len(split) != data.shape[0]
        labels = [f"column_{i}" for i in range(1, data.shape[0] + 1)] if numbered else split
    unique: list[str] = []
    for label in labels:
        name, n = label, 1
        while name in unique:
            n += 1
            name = f"{label}_{n}"
        unique.append(name)
    return unique, data, data.shape[1], numbered


def _state(scan, command: str, points: int) -> str:
    """"complete", "aborted …" or "incomplete …" from ``#C`` lines and the command."""
    wanted = requested_points(command)
    of = f" of {wanted}" if wanted is not None else ""
    for line in scan.scan_header:
        if line.startswith("#C") and "abort" in line.casefold():
            return f"aborted after {points}{of} points"
    # some sites' macros record n points, not n + 1, for n intervals
    if wanted is not None and points < wanted - 1:
        return f"incomplete: {points}{of} points"
    return "complete"


def _number(text: str) -> float | None:
    try:
        return float(str(text).split()[0])
    except (IndexError, ValueError):
        return None
