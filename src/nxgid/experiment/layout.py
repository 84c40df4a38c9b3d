"""The experiment tree: the one place that knows where everything lives.

An experiment, as NXRefine organises it::

    <root>/
        tasks/settings.ini          experiment settings (site settings minus [server])
        tasks/nxdatabase.db         SQLite workflow database (the default)
        tasks/nxlogger.log          the experiment log
        calibrations/  configurations/  scripts/
        <sample>/<label>/<sample>_<scan>.nxs          one NeXus file per scan
        <sample>/<label>/<scan>/f1.h5, f2.h5, …       raw stacks (external links, never copied)
        <sample>/<label>/<scan>/f1_reduced.nxs, …     reduced data
        <sample>/<label>/<scan>/previews/f1_<result>.png   previews of the reduced maps

``<root>`` is ``<analysis_home>/<name>[/<analysis_path>]`` and the raw data of the
experiment live in ``<raw_home>/<name>/<raw_path>``. No other module computes these paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from nxgid.errors import InvalidNameError, NotInExperimentError
from nxgid.names import (
    RESERVED_DIRECTORIES,
    check_name,
    check_sample_name,
    is_valid_name,
)

TASKS = "tasks"
CALIBRATIONS = "calibrations"
CONFIGURATIONS = "configurations"
SCRIPTS = "scripts"
SETTINGS_FILE = "settings.ini"
DATABASE_FILE = "nxdatabase.db"
LOG_FILE = "nxlogger.log"
SCAN_SUFFIX = ".nxs"
RAW_SUFFIX = ".h5"
REDUCED_SUFFIX = "_reduced.nxs"
SAMPLE_METADATA = "sample.yaml"
PREVIEWS = "previews"
#: Where a scan file links an entry's reduced file: ``/fN/reduced`` → its root.
REDUCED_LINK = "reduced"
CONFIGURATION_SUFFIX = ".nxs"

#: Entries of a scan: ``f1``, ``f2``, … one per detector position or rotation scan.
ENTRY_PATTERN = re.compile(r"f([1-9][0-9]*)")


def entry_name(index: int) -> str:
    """The name of the *index*-th (1-based) scan entry: ``f1``, ``f2``, …"""
    if index < 1:
        raise ValueError(f"entry index {index}: expected 1 or more")
    return f"f{index}"


def check_entry(entry: str) -> str:
    if not ENTRY_PATTERN.fullmatch(entry):
        raise InvalidNameError(f"entry {entry!r}: expected f1, f2, …")
    return entry


def entry_sort_key(entry: str) -> tuple[int, str]:
    match = ENTRY_PATTERN.fullmatch(entry)
    return (int(match.group(1)) if match else 1 << 30, entry)


@dataclass(frozen=True, order=True)
class ScanRef:
    """A scan, named by sample, label and scan: ``sample/label/scan``."""

    sample: str
    label: str
    scan: str

    def __post_init__(self) -> None:
        check_sample_name(self.sample)
        check_name(self.label, "label")
        check_name(self.scan, "scan")

    @classmethod
    def parse(cls, text: str) -> ScanRef:
        parts = text.strip("/").split("/")
        if len(parts) != 3:
            raise InvalidNameError(f"scan {text!r}: expected SAMPLE/LABEL/SCAN")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.sample}/{self.label}/{self.scan}"


@dataclass(frozen=True)
class Selection:
    """A part of the experiment: everything, a sample, a label, or one scan."""

    sample: str | None = None
    label: str | None = None
    scan: str | None = None

    @classmethod
    def parse(cls, text: str) -> Selection:
        """``SAMPLE``, ``SAMPLE/LABEL`` or ``SAMPLE/LABEL/SCAN`` (empty = everything)."""
        parts = [p for p in text.strip("/").split("/") if p] if text else []
        if len(parts) > 3:
            raise InvalidNameError(f"selection {text!r}: expected SAMPLE[/LABEL[/SCAN]]")
        if parts:
            check_sample_name(parts[0])
        for part, kind in zip(parts[1:], ("label", "scan"), strict=False):
            check_name(part, kind)
        return cls(*parts)

    def matches(self, ref: ScanRef) -> bool:
        return ((self.sample is None or self.sample == ref.sample)
                and (self.label is None or self.label == ref.label)
                and (self.scan is None or self.scan == ref.scan))

    def __str__(self) -> str:
        return "/".join(p for p in (self.sample, self.label, self.scan) if p) or "(all)"


@dataclass(frozen=True)
class Experiment:
    """An experiment directory tree; create it with :func:`nxgid.experiment.create_experiment`."""

    root: Path

    # --- finding an experiment ------------------------------------------------------

    @staticmethod
    def is_root(path: Path) -> bool:
        return (path / TASKS / SETTINGS_FILE).is_file()

    @classmethod
    def open(cls, path: Path | str = ".") -> Experiment:
        """The experiment containing *path* (the root itself or anything below it)."""
        start = Path(path).expanduser().resolve()
        for candidate in (start, *start.parents):
            if cls.is_root(candidate):
                return cls(candidate)
            settings = candidate / TASKS / SETTINGS_FILE
            if settings.exists() or settings.is_symlink():
                raise NotInExperimentError(
                    f"{settings} is not a regular file; an experiment's settings are an "
                    "ini file there")
        raise NotInExperimentError(
            f"{start} is not inside an nxgid experiment (no {TASKS}/{SETTINGS_FILE} here or "
            "above): run the command inside one or pass --experiment PATH")

    # --- fixed places ---------------------------------------------------------------

    @property
    def tasks_dir(self) -> Path:
        return self.root / TASKS

    @property
    def calibrations_dir(self) -> Path:
        return self.root / CALIBRATIONS

    @property
    def configurations_dir(self) -> Path:
        return self.root / CONFIGURATIONS

    @property
    def scripts_dir(self) -> Path:
        return self.root / SCRIPTS

    @property
    def settings_file(self) -> Path:
        return self.tasks_dir / SETTINGS_FILE

    @property
    def database_file(self) -> Path:
        return self.tasks_dir / DATABASE_FILE

    @property
    def log_file(self) -> Path:
        return self.tasks_dir / LOG_FILE

    @property
    def directories(self) -> tuple[Path, ...]:
        return tuple(self.root / name for name in RESERVED_DIRECTORIES)

    @cached_property
    def name(self) -> str:
        """The experiment name recorded in its settings."""
        return self.info.name

    @cached_property
    def info(self):  # -> ExperimentInfo (import kept local: settings parse on demand)
        from nxgid.settings.store import SettingsFile, read_experiment_info

        return read_experiment_info(SettingsFile.read(self.settings_file))

    def configuration_file(self, name: str) -> Path:
        return self.configurations_dir / f"{check_name(name, 'configuration')}" \
            f"{CONFIGURATION_SUFFIX}"

    # --- samples, labels, scans -----------------------------------------------------

    def sample_dir(self, sample: str) -> Path:
        return self.root / check_sample_name(sample)

    def sample_metadata_file(self, sample: str) -> Path:
        """``<sample>/sample.yaml``: the sample's description and thin-film layers."""
        return self.sample_dir(sample) / SAMPLE_METADATA

    def label_dir(self, sample: str, label: str) -> Path:
        return self.sample_dir(sample) / check_name(label, "label")

    def scan_file(self, ref: ScanRef) -> Path:
        """``<sample>/<label>/<sample>_<scan>.nxs``"""
        return self.label_dir(ref.sample, ref.label) / f"{ref.sample}_{ref.scan}{SCAN_SUFFIX}"

    def scan_dir(self, ref: ScanRef) -> Path:
        """``<sample>/<label>/<scan>/``: raw stacks and reduced files of one scan."""
        return self.label_dir(ref.sample, ref.label) / ref.scan

    def raw_stack(self, ref: ScanRef, entry: str) -> Path:
        """``<sample>/<label>/<scan>/fN.h5`` for entry ``fN``."""
        return self.scan_dir(ref) / f"{check_entry(entry)}{RAW_SUFFIX}"

    def raw_link(self, ref: ScanRef, entry: str) -> str:
        """The raw stack as seen from the scan file: a relative path for external links."""
        return f"{ref.scan}/{check_entry(entry)}{RAW_SUFFIX}"

    def reduced_file(self, ref: ScanRef, entry: str) -> Path:
        """``<sample>/<label>/<scan>/fN_reduced.nxs``"""
        return self.scan_dir(ref) / f"{check_entry(entry)}{REDUCED_SUFFIX}"

    def reduced_link(self, ref: ScanRef, entry: str) -> str:
        """The reduced file as seen from the scan file: a relative path for external links."""
        return f"{ref.scan}/{check_entry(entry)}{REDUCED_SUFFIX}"

    def preview_file(self, ref: ScanRef, entry: str, result: str) -> Path:
        """``<sample>/<label>/<scan>/previews/fN_<result>.png``"""
        return self.scan_dir(ref) / PREVIEWS / f"{check_entry(entry)}_{result}.png"

    def partial_files(self, path: Path) -> list[Path]:
        """Unfinished writes of *path* (:mod:`nxgid.safety.partials`), as the NeXus
        writer and ``rewrite`` leave them when killed."""
        from nxgid.safety.partials import partial_files

        return partial_files(path)

    def samples(self) -> list[str]:
        return sorted(
            p.name for p in _subdirectories(self.root)
            if p.name not in RESERVED_DIRECTORIES and is_valid_name(p.name))

    def labels(self, sample: str) -> list[str]:
        return sorted(p.name for p in _subdirectories(self.sample_dir(sample))
                      if is_valid_name(p.name))

    def scans(self, selection: Selection | None = None) -> list[ScanRef]:
        """Scans on disk: a ``<sample>_<scan>.nxs`` file, a ``<scan>/`` folder, or both."""
        selection = selection or Selection()
        found: set[ScanRef] = set()
        samples = [selection.sample] if selection.sample else self.samples()
        for sample in samples:
            if not self.sample_dir(sample).is_dir():
                continue
            labels = [selection.label] if selection.label else self.labels(sample)
            for label in labels:
                for scan in self._scan_names(sample, label):
                    ref = ScanRef(sample, label, scan)
                    if selection.matches(ref):
                        found.add(ref)
        return sorted(found)

    def _scan_names(self, sample: str, label: str) -> Iterator[str]:
        directory = self.label_dir(sample, label)
        if not directory.is_dir():
            return
        prefix = f"{sample}_"
        for path in directory.iterdir():
            if path.is_file() and path.name.startswith(prefix) and path.suffix == SCAN_SUFFIX:
                scan = path.name[len(prefix):-len(SCAN_SUFFIX)]
                if is_valid_name(scan):
                    yield scan
            elif path.is_dir() and is_valid_name(path.name):
                yield path.name

    def entries(self, ref: ScanRef) -> list[str]:
        """Entries of a scan: ``fN`` groups of its NeXus file, else ``fN.h5`` stacks present."""
        names: set[str] = set()
        scan_file = self.scan_file(ref)
        if scan_file.is_file():
            import h5py

            try:
                with h5py.File(scan_file, "r", locking=False) as handle:
                    names.update(name for name in handle if ENTRY_PATTERN.fullmatch(name))
            except OSError as exc:
                from nxgid.errors import NxgidError

                raise NxgidError(f"scan file {scan_file} cannot be read as HDF5: "
                                 f"{exc.__class__.__name__}") from None
        if not names and self.scan_dir(ref).is_dir():
            names.update(p.stem for p in self.scan_dir(ref).glob(f"f*{RAW_SUFFIX}")
                         if ENTRY_PATTERN.fullmatch(p.stem))
        return sorted(names, key=entry_sort_key)

    # --- paths relative to the experiment ------------------------------------------------

    def relative(self, path: Path) -> str:
        """*path* relative to the root, with ``/`` separators (as stored in the database)."""
        resolved = Path(path).resolve()
        try:
            return PurePosixPath(resolved.relative_to(self.root.resolve())).as_posix()
        except ValueError:
            raise NotInExperimentError(f"{path} is outside the experiment {self.root}") \
                from None

    def scan_from_path(self, path: Path) -> ScanRef:
        """The scan a path inside ``<sample>/<label>/`` belongs to."""
        parts = PurePosixPath(self.relative(path)).parts
        if len(parts) < 3:
            raise InvalidNameError(f"{path} is not inside a scan (expected "
                                   "<sample>/<label>/<sample>_<scan>.nxs or <scan>/…)")
        sample, label, leaf = parts[:3]
        scan = leaf
        if len(parts) == 3 and leaf.startswith(f"{sample}_") and leaf.endswith(SCAN_SUFFIX):
            scan = leaf[len(sample) + 1:-len(SCAN_SUFFIX)]
        return ScanRef(sample, label, scan)


def experiment_root(analysis_home: Path, name: str, analysis_path: str = "") -> Path:
    """``<analysis_home>/<name>[/<analysis_path>]``"""
    root = Path(analysis_home).expanduser() / check_name(name, "experiment")
    return root / analysis_path if analysis_path else root


def raw_directory(raw_home: Path, name: str, raw_path: str = "") -> Path:
    """``<raw_home>/<name>[/<raw_path>]``: read only."""
    root = Path(raw_home).expanduser() / check_name(name, "experiment")
    return root / raw_path if raw_path else root


def _subdirectories(path: Path) -> Iterator[Path]:
    try:
        yield from (p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return
