"""Scans made from a configuration: ``<sample>/<label>/<sample>_<scan>.nxs``.

A scan file is a copy of its configuration whose entries ``f1…fN`` link (relative HDF5
external links, made by the link task once the data exist; an empty placeholder until
then, :mod:`nxgid.experiment.links`) to the raw stacks ``<scan>/fN.h5``. The
calibration is copied in, so a scan file is self-contained, together with the
configuration's name and a hash of its geometry and mask: ``scan_info`` then tells
whether the configuration has been recalibrated since (stale), and ``refresh_scan``
brings the scan up to date and records when. ``sum_scans`` adds scans frame by frame
into a new scan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nxgid.errors import ExistsError, MissingError, NxgidError
from nxgid.experiment.boundary import boundary_of, external_link_problem
from nxgid.experiment.configuration import (
    position_entries,
    rewrite,
    sync_positions,
)
from nxgid.experiment.layout import Experiment, ScanRef
from nxgid.nexus.h5 import nx_field, nx_group, opened
from nxgid.safety.paths import Boundary

#: Where a scan file records its configuration and the geometry hash it was made with.
CONFIGURATION_FIELD = "configuration"
GEOMETRY_HASH_FIELD = "configuration_geometry_sha256"
SUMMED_FROM_FIELD = "summed_from"


def geometry_hash(root) -> str:
    """SHA-256 of what a calibration or mask changes: the detector geometry fields,
    the wavelength and the pixel mask of ``/entry``."""
    digest = hashlib.sha256()
    detector = root["entry/instrument/detector"]
    for name in ("distance", "pyfai/poni1", "pyfai/poni2", "pyfai/rot1", "pyfai/rot2",
                 "pyfai/rot3", "x_pixel_size", "y_pixel_size", "pyfai/orientation"):
        digest.update(f"{name}={float(detector[name][()]):.12g};".encode())
    wavelength = float(root["entry/instrument/monochromator/wavelength"][()])
    digest.update(f"wavelength={wavelength:.12g};".encode())
    if "pixel_mask" in detector:
        digest.update(np.ascontiguousarray(detector["pixel_mask"][()]).tobytes())
    return digest.hexdigest()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def new_scan(experiment: Experiment, ref: ScanRef, configuration: str, *,
             variables: Mapping[str, tuple[float, str]] | None = None,
             overwrite: bool = False, summed_from: Sequence[str] = ()) -> Path:
    """Create the scan directory and file from a configuration (see module docstring)."""
    config = experiment.configuration_file(configuration)
    if not config.is_file():
        raise MissingError(f"configuration {configuration} does not exist ({config}); "
                           "create it with `nxgid config new`")
    if not experiment.label_dir(ref.sample, ref.label).is_dir():
        raise MissingError(f"{ref.sample}/{ref.label} does not exist: create it with "
                           f"`nxgid sample new {ref.sample} {ref.label}`")
    path = experiment.scan_file(ref)
    if path.exists() and not overwrite:
        raise ExistsError(f"scan {ref} exists ({path}): use --overwrite to make it again")
    from nxgid.experiment.configuration import configuration_geometry

    configuration_geometry(config)  # a damaged configuration is refused before any mkdir
    folder = boundary_of(experiment).check(experiment.scan_dir(ref), "scan folder")
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _copy_configuration(experiment, ref, config, configuration, path, variables,
                            summed_from)
    except BaseException:
        if made and not any(folder.iterdir()):
            folder.rmdir()
        raise
    return path


def _copy_configuration(experiment: Experiment, ref: ScanRef, config: Path,
                        configuration: str, path: Path,
                        variables: Mapping[str, tuple[float, str]] | None,
                        summed_from: Sequence[str]) -> None:
    with opened(config, what="configuration") as source, rewrite(path, new=True) as root:
        for key, value in source.attrs.items():
            root.attrs[key] = value
        for name in source:
            source.copy(source[name], root, name=name)
        entry = root["entry"]
        nx_field(entry, "title", f"{ref}")
        nx_field(entry, CONFIGURATION_FIELD, configuration)
        nx_field(entry, GEOMETRY_HASH_FIELD, geometry_hash(source))
        if summed_from:
            nx_field(entry, SUMMED_FROM_FIELD, list(summed_from))
        for name in position_entries(root):
            # the raw stack is linked by the link task once it exists; until then the
            # configuration's placeholder keeps the file valid and readable
            nx_field(root[name], "title", f"{ref} {name}")
            sample = nx_group(root[name], "sample", "NXsample")
            nx_field(sample, "name", ref.sample)
            for variable, (value, unit) in (variables or {}).items():
                nx_field(sample, variable, float(value), unit or None)


@dataclass
class EntryStatus:
    name: str
    link: str
    #: "present", "missing" or "wrong shape (…)"
    state: str
    frames: int = 0


@dataclass
class ScanInfo:
    ref: ScanRef
    path: Path
    configuration: str
    stale: bool | None  # None: the configuration no longer exists
    entries: list[EntryStatus] = field(default_factory=list)
    summed_from: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)


def scan_info(experiment: Experiment, ref: ScanRef) -> ScanInfo:
    """Link status of every entry and whether the calibration is stale."""
    import hdf5plugin  # noqa: F401

    path = experiment.scan_file(ref)
    if not path.is_file():
        raise MissingError(f"scan {ref} does not exist ({path})")
    with opened(path, what="scan file") as root:
        entry = root["entry"]
        configuration = _text(entry[CONFIGURATION_FIELD][()]) \
            if CONFIGURATION_FIELD in entry else ""
        recorded = _text(entry[GEOMETRY_HASH_FIELD][()]) \
            if GEOMETRY_HASH_FIELD in entry else ""
        shape = _detector_shape(root)
        summed = [_text(s) for s in entry[SUMMED_FROM_FIELD][()]] \
            if SUMMED_FROM_FIELD in entry else []
        variables: dict[str, str] = {}
        entries = position_entries(root)
        if entries and "sample" in root[entries[0]]:
            for key, item in root[entries[0]]["sample"].items():
                if key != "name" and hasattr(item, "shape") and item.shape == ():
                    unit = _text(item.attrs.get("units", ""))
                    variables[key] = f"{item[()]:g} {unit}".strip()
        boundary = boundary_of(experiment)
        statuses = [_entry_status(root, path, name, shape, experiment.raw_link(ref, name),
                                  boundary) for name in entries]
    config = experiment.configuration_file(configuration) if configuration else None
    stale: bool | None = None
    if config is not None and config.is_file():
        with opened(config, what="configuration") as source:
            stale = geometry_hash(source) != recorded
    return ScanInfo(ref, path, configuration, stale, statuses, summed, variables)


def scan_detector(experiment: Experiment, ref: ScanRef) -> tuple[str, tuple[int, int]]:
    """(``scan S's detector NAME``, frame shape) from the scan file's own copy of the
    configuration: what every raw frame of the scan must be."""
    with opened(experiment.scan_file(ref), what="scan file") as root:
        detector = root["entry/instrument/detector"]
        name = _text(detector["description"][()]) if "description" in detector else "?"
        shape = _detector_shape(root)
    if shape is None:
        from nxgid.experiment.configuration import configuration_geometry

        shape = configuration_geometry(experiment.scan_file(ref)).shape
    return f"scan {ref}'s detector {name}", (int(shape[0]), int(shape[1]))


def _detector_shape(root) -> tuple[int, ...] | None:
    detector = root["entry/instrument/detector"]
    return detector["pixel_mask"].shape if "pixel_mask" in detector else None


def _entry_status(root, path: Path, name: str, shape, raw_link: str,
                  boundary: Boundary) -> EntryStatus:
    """Whether entry *name*'s raw stack (*raw_link*, relative to the scan file, unless
    the entry already links another) is there, readable and of the detector's shape.
    A link that is absolute or leads out of the *boundary* (through the link itself or a
    symlinked stack) is reported, its target never opened."""
    import h5py

    from nxgid.names import RAW_STACK_DATA

    link = root[name]["data"].get("data", getlink=True)
    filename = link.filename if isinstance(link, h5py.ExternalLink) else raw_link
    problem = external_link_problem(path, f"{name}/data/data", filename, boundary)
    if problem is not None:
        return EntryStatus(name, filename, f"refused: {problem}")
    target = path.parent / filename
    if not target.exists():
        return EntryStatus(name, filename, "missing")
    try:
        with h5py.File(target, "r") as stack:
            frames_shape = stack[RAW_STACK_DATA].shape
    except (KeyError, OSError) as exc:
        return EntryStatus(name, filename, f"unreadable ({str(exc).splitlines()[0]})")
    good = shape is None or tuple(frames_shape[-2:]) == tuple(shape)
    frames = frames_shape[0] if len(frames_shape) == 3 else 1
    return EntryStatus(name, filename, "present" if good else
                       f"wrong shape {tuple(frames_shape[-2:])}, detector {tuple(shape)}",
                       frames)


def entry_status(experiment: Experiment, ref: ScanRef, entry: str) -> EntryStatus:
    """The link status of one entry (what :func:`scan_info` gives for each), opening only
    that entry's raw stack."""
    import hdf5plugin  # noqa: F401

    path = experiment.scan_file(ref)
    if not path.is_file():
        raise MissingError(f"scan {ref} does not exist ({path})")
    with opened(path, what="scan file") as root:
        if entry not in root:
            raise MissingError(f"scan {ref} has no entry {entry}")
        return _entry_status(root, path, entry, _detector_shape(root),
                             experiment.raw_link(ref, entry), boundary_of(experiment))


def link_raw(experiment: Experiment, ref: ScanRef, entries: Sequence[str] | None = None
             ) -> list[str]:
    """Link the raw stacks that exist (``<scan>/fN.h5``) into the scan file in place of
    their placeholders (:mod:`nxgid.experiment.links`), under the scan file's lock;
    returns the entries linked now."""

    from nxgid.experiment.links import is_linked, link_raw_stack
    from nxgid.experiment.locks import file_lock

    path = experiment.scan_file(ref)
    with file_lock(path):
        with opened(path, what="scan file") as root:
            wanted = [name for name in (entries or position_entries(root))
                      if name in root and not is_linked(root[name])
                      and experiment.raw_stack(ref, name).exists()]
        if wanted:
            with rewrite(path) as root:
                for name in wanted:
                    link_raw_stack(root[name], experiment.raw_link(ref, name))
    return wanted


@dataclass(frozen=True)
class ScanGeometry:
    """The geometry-and-mask hashes (:func:`geometry_hash`) of a scan file's own copy and
    of its configuration file."""

    configuration: str
    scan_hash: str
    #: None when the configuration no longer exists.
    configuration_hash: str | None

    @property
    def stale(self) -> bool | None:
        """Whether the configuration changed since the scan copied it (None: gone)."""
        if self.configuration_hash is None:
            return None
        return self.configuration_hash != self.scan_hash


def scan_geometry(experiment: Experiment, ref: ScanRef, *,
                  configuration_hashes: dict[str, str | None] | None = None) -> ScanGeometry:
    """The geometry hashes of a scan file and of its configuration, read without HDF5
    file locks (a viewer holding either open is no obstacle). *configuration_hashes*
    (name → hash) saves reading a configuration again for each of its scans."""

    path = experiment.scan_file(ref)
    if not path.is_file():
        raise MissingError(f"scan file {path} does not exist")
    with opened(path, what="scan file", locking=False) as root:
        entry = root["entry"]
        configuration = _text(entry[CONFIGURATION_FIELD][()]) \
            if CONFIGURATION_FIELD in entry else ""
        own = geometry_hash(root)
    cache = {} if configuration_hashes is None else configuration_hashes
    if configuration not in cache:
        config = experiment.configuration_file(configuration) if configuration else None
        if config is not None and config.is_file():
            with opened(config, what="configuration", locking=False) as source:
                cache[configuration] = geometry_hash(source)
        else:
            cache[configuration] = None
    return ScanGeometry(configuration, own, cache[configuration])


def refresh_scan(experiment: Experiment, ref: ScanRef) -> bool:
    """Bring the scan's calibration, geometry and mask up to date with its
    configuration; returns False if it already was. Records the time.

    Holds the scan file's lock (:func:`nxgid.experiment.locks.file_lock`, as the
    workflow's edits of the scan file do), so a refresh never loses a concurrent edit;
    do not call it while holding that lock."""

    from nxgid.experiment.locks import file_lock
    from nxgid.nexus.writer import now_iso

    path = experiment.scan_file(ref)
    if not path.is_file():
        raise MissingError(f"scan {ref} does not exist ({path})")
    with file_lock(path):
        info = scan_info(experiment, ref)
        if info.stale is None:
            raise MissingError(f"scan {ref}: its configuration {info.configuration!r} no "
                               "longer exists")
        if not info.stale and not scan_geometry(experiment, ref).stale:
            return False
        config = experiment.configuration_file(info.configuration)
        with opened(config, what="configuration") as source, rewrite(info.path) as root:
            instrument = root["entry/instrument"]
            for name in ("detector", "monochromator", "calibration"):
                if name in instrument:  # calibration: there before nxgid 0.2
                    del instrument[name]
                if name in source["entry/instrument"]:
                    source.copy(source["entry/instrument"][name], instrument, name=name)
            if "calibration" in root["entry"]:
                del root["entry/calibration"]
            if "calibration" in source["entry"]:
                source.copy(source["entry/calibration"], root["entry"], name="calibration")
            sync_positions(root)  # the links to raw stacks stay the scan's
            nx_field(root["entry"], GEOMETRY_HASH_FIELD, geometry_hash(source))
            nx_field(root["entry"], "refreshed", now_iso())
    return True


def scan_variables(experiment: Experiment, ref: ScanRef) -> dict[str, tuple[float, str]]:
    """The scan variables ``scan new --var`` wrote: name → (value, unit)."""

    with opened(experiment.scan_file(ref), what="scan file") as root:
        entries = position_entries(root)
        if not entries or "sample" not in root[entries[0]]:
            return {}
        sample = root[entries[0]]["sample"]
        return {key: (float(item[()]), _text(item.attrs.get("units", "")))
                for key, item in sample.items()
                if key != "name" and hasattr(item, "shape") and item.shape == ()
                and item.dtype.kind in "fiu"}


def _common_variables(experiment: Experiment, refs: Sequence[ScanRef]
                      ) -> dict[str, tuple[float, str]]:
    """The scan variables every scan shares with the same value (kept by a sum)."""
    found = [scan_variables(experiment, ref) for ref in refs]
    return {key: value for key, value in found[0].items()
            if all(other.get(key) == value for other in found[1:])}


def sum_scans(experiment: Experiment, sample: str, label: str, scans: Sequence[str],
              into: str, *, overwrite: bool = False,
              progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Add scans entry by entry, frame by frame, into the new scan *into*.

    The scans must share configuration, entries, frame counts and frame shapes (the
    error says which differs). Integer frames are summed in 64 bits, so nothing
    overflows; per-frame monitors (``/entry/data/monitor`` in the stacks) are summed too.
    """

    if len(scans) < 2:
        raise NxgidError("sum: give at least two scans to add")
    refs = [ScanRef(sample, label, s) for s in scans]
    target = ScanRef(sample, label, into)
    if into in scans:
        raise NxgidError(f"sum: the result {into} cannot be one of the summed scans")
    if experiment.scan_file(target).exists() and not overwrite:
        raise ExistsError(f"scan {target} exists: use --overwrite to replace it")
    infos = [scan_info(experiment, ref) for ref in refs]
    first = infos[0]
    for info in infos[1:]:
        if info.configuration != first.configuration:
            raise NxgidError(f"sum: {info.ref} uses configuration {info.configuration}, "
                             f"{first.ref} uses {first.configuration}")
        names = [e.name for e in info.entries]
        if names != [e.name for e in first.entries]:
            raise NxgidError(f"sum: {info.ref} has entries {', '.join(names)}, {first.ref} "
                             f"has {', '.join(e.name for e in first.entries)}")
    for index, entry in enumerate(first.entries):
        for info in infos:
            status = info.entries[index]
            if status.state != "present":
                raise NxgidError(f"sum: {info.ref} {status.name} is {status.state}")
            if status.frames != entry.frames:
                raise NxgidError(f"sum: {info.ref} {status.name} has {status.frames} "
                                 f"frames, {first.ref} has {entry.frames}")
    new_scan(experiment, target, first.configuration, overwrite=overwrite,
             summed_from=[str(r) for r in refs],
             variables=_common_variables(experiment, refs))
    sum_stacks(experiment, refs, target, [e.name for e in first.entries], progress=progress)
    return experiment.scan_file(target)


def summed_from(experiment: Experiment, ref: ScanRef) -> list[ScanRef]:
    """The scans a summed scan was made from (empty for a measured scan)."""

    with opened(experiment.scan_file(ref), what="scan file") as root:
        if SUMMED_FROM_FIELD not in root["entry"]:
            return []
        values = root["entry"][SUMMED_FROM_FIELD][()]
    values = [values] if np.ndim(values) == 0 else list(values)
    return [ScanRef.parse(_text(v)) for v in values]


def sum_stacks(experiment: Experiment, refs: Sequence[ScanRef], target: ScanRef,
               entries: Sequence[str], *,
               progress: Callable[[str, int, int], None] | None = None) -> None:
    """Add the raw stacks of *refs* frame by frame into *target*'s stacks (each written
    to a partial file and renamed into place, so a crash leaves the old stack)."""
    import h5py
    import hdf5plugin

    for entry in entries:
        sources = [h5py.File(experiment.raw_stack(ref, entry), "r") for ref in refs]
        try:
            datasets = [s["entry/data/data"] for s in sources]
            shapes = {d.shape for d in datasets}
            if len(shapes) != 1:
                raise NxgidError(f"sum: {entry} stacks have shapes {sorted(shapes)}")
            kind = datasets[0].dtype
            dtype = np.uint64 if kind.kind == "u" else np.int64 if kind.kind == "i" \
                else np.float64
            output = experiment.raw_stack(target, entry)
            partial = output.with_name(f".{output.name}.partial")
            with h5py.File(partial, "w") as out:
                out.attrs["NX_class"] = "NXroot"
                out.attrs["default"] = "entry"
                group = nx_group(out, "entry", "NXentry")
                group.attrs["default"] = "data"
                data = nx_group(group, "data", "NXdata")
                data.attrs["signal"] = "data"
                stack = data.create_dataset("data", shape=datasets[0].shape, dtype=dtype,
                                            chunks=(1, *datasets[0].shape[1:]),
                                            **hdf5plugin.Bitshuffle(cname="lz4"))
                for i in range(datasets[0].shape[0]):
                    stack[i] = sum(d[i].astype(dtype) for d in datasets)
                    if progress is not None:
                        progress(entry, i + 1, datasets[0].shape[0])
                monitors = [s["entry/data/monitor"][()] for s in sources
                            if "monitor" in s["entry/data"]]
                if len(monitors) == len(sources):
                    data.create_dataset("monitor", data=np.sum(monitors, axis=0))
                nx_field(group, SUMMED_FROM_FIELD,
                        [str(experiment.raw_stack(r, entry)) for r in refs])
            partial.replace(output)
        finally:
            for source in sources:
                source.close()
    link_raw(experiment, target, list(entries))


@dataclass
class EntryLogs:
    """What the scan file says about the frames of one entry: per-frame values the
    beamline import logged (None when not logged) and the configured incidence angle."""

    incidence_deg: list[float] | None = None
    configured_incidence_deg: float | None = None
    monitor: list[float] | None = None
    temperature_K: list[float] | None = None
    has_logs: bool = False


def entry_logs(experiment: Experiment, ref: ScanRef, entry: str) -> EntryLogs:

    found = EntryLogs()
    with opened(experiment.scan_file(ref), what="scan file") as root:
        if entry not in root:
            raise MissingError(f"scan {ref} has no entry {entry}")
        group = root[entry]
        goniometer = group.get("instrument/goniometer")
        if goniometer is not None:
            if "angle_of_incidence" in goniometer:
                found.configured_incidence_deg = float(goniometer["angle_of_incidence"][()])
            per_frame = goniometer.get("incidence_angle_per_frame")
            if per_frame is not None:
                found.incidence_deg = [float(a) for a in np.atleast_1d(per_frame[()])]
            found.has_logs = any(name.endswith("_per_frame") for name in goniometer)
        monitor = group.get("monitor/data")
        if monitor is not None:
            found.monitor = [float(v) for v in np.atleast_1d(monitor[()])]
            found.has_logs = True
        temperature = group.get("sample/temperature")
        if temperature is not None and temperature.shape != ():
            found.temperature_K = [float(v) for v in temperature[()]]
        found.has_logs = found.has_logs or "logs" in group.get("instrument", {})
    return found


def scan_identity(experiment: Experiment, ref: ScanRef, entry: str) -> tuple[str, str | None]:
    """The sample name an entry of the scan file records (the experiment's sample name
    when it records none) and the scan's measurement start (``entry/start_time``, e.g.
    SPEC's ``#D``, written by the import; None when not known), for the reduced files."""
    from nxgid.nexus.frames import read_text

    with opened(experiment.scan_file(ref), what="scan file") as root:
        name = root.get(f"{entry}/sample/name")
        started = root.get("entry/start_time")
        sample = (read_text(name) if name is not None else "") or ref.sample
        return sample, (read_text(started) if started is not None else "") or None
