"""Writing converted results into nxgid NeXus files: stacked, compressed, crash-safe.

    with NexusWriter("film.nxs", metadata, mode="create") as writer:
        for results in converter.convert_blocks(frames, reuse_outputs=True):
            writer.write(results, FrameBlock(files=..., numbers=...))

Every result type gets its own NXentry (named after the result, e.g. ``img_gid_q``);
frames are appended to the stacked arrays of an entry when the result type, shape,
axes, dtype and conversion configuration match, otherwise a new entry
(``img_gid_q_2``, …) is started. Appends never rewrite earlier frames or metadata
(only ``end_time`` moves forward).

Safety, as the data-is-sacred rule asks:

* a new file is written under a hidden temporary name and appears under its real name
  (without clobbering anything) once its first block is complete; with
  ``mode="overwrite"`` the old file is replaced only when the new one is finished;
* every block is flushed; an exception in the middle of a block truncates the
  per-frame arrays back to the previous block, so the file holds whole frames only;
  on opening for append, per-frame arrays of unequal length (a killed writer) are cut
  to their common length;
* files use HDF5's default (oldest compatible) format, which stays readable and
  appendable after a writer is killed, unlike ``libver="latest"`` files whose
  consistency flags then lock them.

The layout is described in ``docs/nexus-format.md``; every name comes from
:mod:`nxgid.nexus_names`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from nxgid import nexus_names as nx
from nxgid.conversion.result import Result
from nxgid.errors import ExistsError, NxgidError
from nxgid.geometry.detector import DetectorGeometry
from nxgid.nexus.h5 import nx_field, nx_group
from nxgid.units import NEXUS_UNITS, wavelength_A_to_energy_keV

WriteMode = Literal["create", "append", "overwrite"]
MODES: tuple[str, ...] = ("create", "append", "overwrite")
COMPRESSIONS: tuple[str, ...] = ("bitshuffle-lz4", "bitshuffle-zstd", "gzip", "none")

#: Aim for chunks of about this many bytes (whole frames, at least one).
CHUNK_BYTES = 1 << 20
#: Per-frame text (raw file names) is fixed-length UTF-8, stored in the dataset itself:
#: variable-length strings live in HDF5's global heap, which a killed writer can leave
#: pointing at objects it never wrote.
TEXT_BYTES = 1024


@dataclass
class InstrumentInfo:
    """Where and how the frames were measured (``instrument`` group)."""

    geometry: DetectorGeometry
    #: NXdetector ``pixel_mask`` bitfield (rows, cols), or None for no mask.
    pixel_mask: np.ndarray | None = None
    source_type: str = "Synchrotron X-ray Source"
    source_name: str | None = None
    source_probe: str = "x-ray"
    #: Beamline or instrument name (NXinstrument/name).
    name: str = "unknown"


@dataclass
class EntryMetadata:
    """Everything written once, when an entry is created."""

    instrument: InstrumentInfo
    title: str | None = None
    sample: object | None = None  # nxgid.nexus.metadata.SampleInfo
    experiment: object | None = None  # nxgid.nexus.metadata.ExperimentInfo
    #: Input files by role ("poni", "mask", "dark", "flat", "sample", …).
    inputs: dict[str, str] = field(default_factory=dict)
    #: The reduction recipe (:meth:`nxgid.recipe.Recipe.as_dict`) the entry was made
    #: with; recorded in ``process/recipe`` with its hash. Not part of the configuration
    #: hash that decides whether frames append to an entry.
    recipe: Mapping[str, object] | None = None


@dataclass
class FrameBlock:
    """Per-frame provenance of one block: raw file and frame number of every frame,
    scan variables (name → (values, unit)) and acquisition times when known."""

    files: Sequence[str]
    numbers: Sequence[int]
    variables: Mapping[str, tuple[Sequence[float], str]] = field(default_factory=dict)
    times: Sequence[datetime] | None = None

    @classmethod
    def unknown(cls, frames: int) -> FrameBlock:
        return cls(files=[""] * frames, numbers=list(range(frames)))

    def __len__(self) -> int:
        return len(self.files)


def now_iso() -> str:
    """The current time, ISO 8601 with the local zone."""
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.isoformat(timespec="seconds")


def compression_options(name: str) -> dict:
    """h5py dataset keywords for a compression name (see :data:`COMPRESSIONS`)."""
    if name in ("bitshuffle-lz4", "bitshuffle-zstd"):
        import hdf5plugin

        return dict(hdf5plugin.Bitshuffle(cname=name.split("-")[1]))
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if name == "none":
        return {}
    raise NxgidError(f"compression {name!r}: expected one of {', '.join(COMPRESSIONS)}")


def pixel_mask_bits(gaps: np.ndarray | None, user: np.ndarray | None,
                    shape: tuple[int, int]) -> np.ndarray:
    """An NXdetector ``pixel_mask``: bit 0 for detector gaps, bit 8 for user masks.

    *user* may be boolean (True = masked) or an existing bitfield, whose bits are kept.
    """
    bits = np.zeros(shape, dtype=np.int32)
    if gaps is not None:
        bits[np.asarray(gaps, dtype=bool)] |= nx.PIXEL_MASK_GAP
    if user is not None:
        user = np.asarray(user)
        if user.shape != shape:
            raise NxgidError(f"mask has shape {user.shape}; the detector has {shape}")
        if user.dtype == bool:
            bits[user] |= nx.PIXEL_MASK_USER
        else:
            bits |= user.astype(np.int32)
    return bits


def conversion_signature(process: Mapping) -> str:
    """SHA-256 of the conversion configuration, without what may change from frame to
    frame (the incidence angle, recorded per frame) or machine to machine (threads)."""
    record = json.loads(json.dumps(process, default=str))
    record.pop("threads", None)
    if isinstance(record.get("sample"), dict):
        record["sample"].pop("incidence_deg", None)
    text = json.dumps(record, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _json(process: Mapping) -> str:
    return json.dumps(process, sort_keys=True, indent=1, default=str)


class NexusWriter:
    """Appends blocks of converted results to one nxgid NeXus file (one writer per file).

    *mode*: ``"create"`` refuses an existing file, ``"append"`` adds frames to an
    existing file (or creates it), ``"overwrite"`` replaces an existing file once the
    new one is complete.
    """

    def __init__(self, path: str | os.PathLike, metadata: EntryMetadata, *,
                 mode: WriteMode = "create", compression: str = "bitshuffle-lz4") -> None:
        import h5py

        if mode not in MODES:
            raise NxgidError(f"write mode {mode!r}: expected one of {', '.join(MODES)}")
        self.path = Path(path)
        self.metadata = metadata
        self.mode = mode
        self._compression = compression_options(compression)
        self.compression = compression
        self.entries_written: dict[str, str] = {}
        self.frames_written = 0
        if mode == "create" and self.path.exists():
            raise ExistsError(f"{self.path} exists: use --append to add frames to it or "
                              "--overwrite to replace it")
        if not self.path.parent.is_dir():
            raise NxgidError(f"{self.path.parent} is not a directory: cannot write "
                             f"{self.path.name} there")
        self._temporary: Path | None = None
        if mode == "append" and self.path.exists():
            try:
                self._file = h5py.File(self.path, "r+")
            except OSError as exc:
                raise NxgidError(f"{self.path}: cannot be opened for appending: "
                                 f"{str(exc).splitlines()[0]}") from None
            self._file.attrs.setdefault("NX_class", "NXroot")
            hold_metadata_until_flush(self._file)
            repair_lengths(self._file)
        else:
            self._temporary = self.path.with_name(
                f".{self.path.name}.{uuid.uuid4().hex[:8]}.partial")
            # no free-space reuse: new data never lands where the file on disk still
            # has live metadata, so a killed writer cannot corrupt committed frames
            self._file = h5py.File(self._temporary, "w", fs_strategy="none")
            hold_metadata_until_flush(self._file)
            self._write_root()

    # --- context manager ------------------------------------------------------------

    def __enter__(self) -> NexusWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(success=exc_type is None)

    def close(self, *, success: bool = True) -> None:
        """Close the file; publish a new file if all went well, else discard it if it
        was never published (an overwritten file is then left as it was)."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        if self._temporary is None:
            return
        if success and self.frames_written:
            self._publish()
        else:
            self._temporary.unlink(missing_ok=True)
            self._temporary = None

    # --- writing --------------------------------------------------------------------

    def write(self, results: Mapping[str, Result], frames: FrameBlock | None = None
              ) -> dict[str, str]:
        """Append one block of results (all with the same frames); returns the entry each
        result went to. The block is flushed before this returns."""
        if self._file is None:
            raise NxgidError(f"{self.path}: the writer is closed")
        if not results:
            return {}
        counts = {r.frames for r in results.values()}
        if len(counts) != 1:
            raise NxgidError(f"results of one block have different frame counts: {counts}")
        n = counts.pop()
        frames = frames if frames is not None else FrameBlock.unknown(n)
        if len(frames) != n or len(frames.numbers) != n:
            raise NxgidError(f"{len(frames)} frame records for {n} converted frames")
        existing = set(self._file)
        default = self._file.attrs.get("default")
        targets: dict = {}
        previous: dict[str, int] = {}
        try:
            for name, result in results.items():
                targets[name] = self._entry_for(result)
            previous = {entry.name: entry[nx.DATA][nx.FRAME_AXIS].shape[0]
                        for entry in targets.values()}
            for name, result in results.items():
                _append(targets[name], result, frames, self._compression)
            self._file.flush()
            # commit: the frame axis grows last, once everything else is on disk, so a
            # writer killed at any moment leaves frame_ind counting whole frames only
            for entry in dict.fromkeys(targets.values()):
                data = entry[nx.DATA]
                start = data[nx.FRAME_AXIS].shape[0]
                _grow(data[nx.FRAME_AXIS], np.arange(start, start + n, dtype=np.int64))
            self._file.flush()
        except BaseException:
            # back to the state before the block: earlier frames only, no new entries
            for entry in targets.values():
                if entry.name in previous and entry.name.lstrip("/") in existing:
                    truncate_frames(entry, previous[entry.name])
            for entry_name in set(self._file) - existing:
                del self._file[entry_name]
            if default is None:
                self._file.attrs.pop("default", None)
            else:
                self._file.attrs["default"] = default
            self._file.flush()
            raise
        self.frames_written += n
        placed = {name: entry.name.lstrip("/") for name, entry in targets.items()}
        self.entries_written.update(placed)
        if self._temporary is not None and self.mode != "overwrite":
            self._publish()
        return placed

    # --- internals ------------------------------------------------------------------

    def _publish(self) -> None:
        """Give the temporary file its real name: without clobbering on create, by
        atomic replacement on overwrite. The open HDF5 handle keeps working."""
        assert self._temporary is not None
        if self.mode == "overwrite":
            os.replace(self._temporary, self.path)
        else:
            try:
                os.link(self._temporary, self.path)
            except FileExistsError:
                raise ExistsError(f"{self.path} appeared while it was being written; "
                                  f"nothing was overwritten (left {self._temporary.name})"
                                  ) from None
            self._temporary.unlink()
        self._temporary = None

    def _write_root(self) -> None:
        import h5py

        from nxgid import __version__

        attrs = self._file.attrs
        attrs["NX_class"] = "NXroot"
        attrs["file_name"] = self.path.name
        attrs["file_time"] = now_iso()
        attrs["creator"] = f"nxgid {__version__}"
        attrs["HDF5_Version"] = h5py.version.hdf5_version
        attrs["h5py_version"] = h5py.version.version

    def _entry_for(self, result: Result):
        """The entry this result appends to, created if none matches."""
        signature = conversion_signature(result.process)
        for name in self._file:
            entry = self._file[name]
            if _compatible(entry, result, signature):
                return entry
        base = result.name
        name, suffix = base, 1
        while name in self._file:
            suffix += 1
            name = f"{base}_{suffix}"
        entry = _create_entry(self._file, name, result, self.metadata, signature,
                              self._compression)
        if "default" not in self._file.attrs or \
                self._file.attrs["default"] not in self._file:
            self._file.attrs["default"] = name
        return entry


# --- entry creation ------------------------------------------------------------------





def _growable(group, name: str, example: np.ndarray, compression: dict, *,
              dtype=None, text: bool = False, units: str | None = None, **attrs):
    """An empty dataset of frames × example.shape that grows along axis 0; whole frames
    per chunk, compressed when a frame is an array."""
    import h5py

    item_shape = tuple(example.shape)
    if text:
        dtype, itemsize = h5py.string_dtype("utf-8", TEXT_BYTES), TEXT_BYTES
    else:
        dtype = np.dtype(dtype or example.dtype)
        itemsize = dtype.itemsize
    frame_bytes = max(1, int(np.prod(item_shape, dtype=np.int64)) * itemsize)
    per_chunk = int(min(4096, max(1, CHUNK_BYTES // frame_bytes)))
    if text:  # mostly padding: gzip shrinks it to almost nothing
        options = {"compression": "gzip", "compression_opts": 4}
    else:
        options = compression if item_shape else {}
    dataset = group.create_dataset(name, shape=(0, *item_shape),
                                   maxshape=(None, *item_shape),
                                   chunks=(per_chunk, *item_shape), dtype=dtype, **options)
    if units is not None:
        dataset.attrs["units"] = units
    for key, attr in attrs.items():
        dataset.attrs[key] = attr
    return dataset


def _axis_unit(axis) -> str:
    return NEXUS_UNITS[axis.unit if axis.is_q else "deg"]


def _create_entry(root, name: str, result: Result, metadata: EntryMetadata, signature: str,
                  compression: dict):
    entry = nx_group(root, name, "NXentry")
    entry.attrs["default"] = nx.DATA
    nx_field(entry, "definition", nx.DEFINITION, version=nx.DEFINITION_VERSION)
    title = metadata.title or getattr(metadata.experiment, "title", None) or \
        nx.RESULT_DESCRIPTIONS.get(result.name, result.name)
    nx_field(entry, "title", title)
    nx_field(entry, "start_time", "")  # set by the first append
    nx_field(entry, "end_time", "")
    gid = result.process.get("sample", {}).get("mode", "gid") == "gid"

    instrument = _write_instrument(entry, metadata.instrument, gid=gid)
    _write_sample(entry, metadata)
    _write_process(entry, result, metadata, signature)
    analysis = nx_group(entry, nx.ANALYSIS, "NXcollection")
    analysis.attrs["description"] = (
        "results of later analysis steps (e.g. peak tables), one table per kind with a "
        f"'{nx.FRAME_AXIS}' column; see docs/nexus-format.md")
    if metadata.experiment is not None:
        from nxgid.nexus.metadata import write_experiment

        write_experiment(entry, metadata.experiment)

    data = nx_group(entry, nx.DATA, "NXdata")
    axes = list(reversed(result.axes))  # (y, x) for maps, (x,) for profiles
    data.attrs["signal"] = result.name
    data.attrs["axes"] = [nx.FRAME_AXIS, *(a.name for a in axes)]
    data.attrs[f"{nx.FRAME_AXIS}_indices"] = 0
    for position, axis in enumerate(axes, start=1):
        data.attrs[f"{axis.name}_indices"] = position
        values = nx_field(data, axis.name, axis.centres.astype(np.float64),
                         units=_axis_unit(axis))
        values.attrs["long_name"] = \
            f"{nx.AXIS_DESCRIPTIONS.get(axis.name, axis.name)} ({_axis_unit(axis)})"
    frame_shape = result.intensity.shape[1:]
    example = np.zeros(frame_shape, dtype=np.float32)
    signal = _growable(data, result.name, example, compression, dtype=np.float32)
    signal.attrs["long_name"] = "intensity (corrected counts per monitor count)"
    signal.attrs["interpretation"] = "image" if result.is_map else "spectrum"
    if result.errors is not None:
        _growable(data, result.name + nx.ERRORS_SUFFIX, example, compression,
                  dtype=np.float32)
    scalar = np.zeros((), dtype=np.int64)
    frame_axis = _growable(data, nx.FRAME_AXIS, scalar, compression)
    frame_axis.attrs["long_name"] = "frame number in this entry"
    _growable(data, nx.FRAME_MONITOR, np.zeros(()), compression,
              long_name="normalisation monitor of each frame (1: none)")
    _growable(data, nx.FRAME_FILE, scalar, compression, text=True,
              long_name="raw file of each frame")
    _growable(data, nx.FRAME_NUMBER, scalar, compression,
              long_name="frame number in the raw file")
    if gid:
        angle = _growable(instrument, nx.INCIDENCE_ANGLE, np.zeros(()), compression,
                          units=NEXUS_UNITS["deg"],
                          long_name="angle of incidence of each frame")
        angle.attrs["target"] = angle.name
        data[nx.FRAME_INCIDENCE_LINK] = angle
    return entry


def _write_instrument(entry, info: InstrumentInfo, *, gid: bool):
    geometry = info.geometry
    instrument = nx_group(entry, nx.INSTRUMENT, "NXinstrument")
    nx_field(instrument, "name", info.name)
    source = nx_group(instrument, nx.SOURCE, "NXsource")
    nx_field(source, "type", info.source_type)
    if info.source_name:
        nx_field(source, "name", info.source_name)
    nx_field(source, "probe", info.source_probe)
    mono = nx_group(instrument, nx.MONOCHROMATOR, "NXmonochromator")
    nx_field(mono, "wavelength", geometry.wavelength_A, NEXUS_UNITS["angstrom"])
    nx_field(mono, "energy", wavelength_A_to_energy_keV(geometry.wavelength_A),
            NEXUS_UNITS["keV"])
    detector = nx_group(instrument, nx.DETECTOR, "NXdetector")
    name = getattr(geometry.detector, "name", None) or type(geometry.detector).__name__
    nx_field(detector, "description", str(name))
    nx_field(detector, "distance", geometry.distance_m, "m",
            long_name="sample to PONI distance (pyFAI dist)")
    pixel_rows_m, pixel_cols_m = geometry.pixel_size_m
    nx_field(detector, "x_pixel_size", pixel_cols_m, "m")
    nx_field(detector, "y_pixel_size", pixel_rows_m, "m")
    fit2d = geometry.pyfai.getFit2D()
    nx_field(detector, "beam_center_x", float(fit2d["centerX"]) * pixel_cols_m, "m",
            long_name="where the direct beam meets the detector, along the columns, "
                      "from the first pixel's outer edge")
    nx_field(detector, "beam_center_y", float(fit2d["centerY"]) * pixel_rows_m, "m",
            long_name="where the direct beam meets the detector, along the rows")
    rot1, rot2, rot3 = geometry.rotations_rad
    # pygid's mapping of the pyFAI rotations onto NXdetector angles
    nx_field(detector, "aequatorial_angle", np.degrees(rot1), "degree")
    nx_field(detector, "polar_angle", -np.degrees(rot2), "degree")
    nx_field(detector, "rotation_angle", np.degrees(rot3), "degree")
    poni1, poni2 = geometry.poni_m
    nx_field(detector, "poni1", poni1, "m", long_name="pyFAI PONI along the rows")
    nx_field(detector, "poni2", poni2, "m", long_name="pyFAI PONI along the columns")
    for index, value in enumerate((rot1, rot2, rot3), start=1):
        nx_field(detector, f"rot{index}", value, "rad", long_name=f"pyFAI rot{index}")
    orientation = int(getattr(geometry.detector, "orientation", 0) or 0)
    nx_field(detector, "orientation", orientation,
            long_name="pyFAI detector orientation (PONI 2.1; 0 or 3: the default)")
    if info.pixel_mask is not None:
        mask = np.asarray(info.pixel_mask, dtype=np.int32)
        detector.create_dataset("pixel_mask", data=mask, compression="gzip",
                                compression_opts=4, shuffle=True)
        nx_field(detector, "pixel_mask_applied", True)
    return instrument


def _write_sample(entry, metadata: EntryMetadata) -> None:
    sample = nx_group(entry, nx.SAMPLE, "NXsample")
    if metadata.sample is not None:
        from nxgid.nexus.metadata import write_sample

        write_sample(sample, metadata.sample)
    else:
        nx_field(sample, "name", "unnamed sample")


def _write_process(entry, result: Result, metadata: EntryMetadata, signature: str) -> None:
    from nxgid import __version__

    process = nx_group(entry, nx.PROCESS, "NXprocess")
    nx_field(process, "program", "nxgid")
    nx_field(process, "version", __version__)
    nx_field(process, "date", now_iso())
    nx_field(process, "sequence_index", 1)
    nx_field(process, "description",
            f"{result.name}: {nx.RESULT_DESCRIPTIONS.get(result.name, '')}, converted from "
            f"detector frames by the {result.process.get('method', '?')} method")
    note = nx_group(process, nx.PROCESS_CONFIGURATION, "NXnote")
    nx_field(note, "type", "application/json")
    nx_field(note, "description", "the full conversion configuration: geometry (pyFAI), "
            "sample geometry, target axes, corrections, mask, method")
    note.create_dataset("data", data=np.bytes_(_json(result.process).encode()))
    nx_field(process, nx.PROCESS_CONFIGURATION_HASH, signature,
            long_name="SHA-256 of the configuration without per-frame values")
    corrections = nx_group(process, nx.PROCESS_CORRECTIONS, "NXcollection")
    for name, record in result.process.get("corrections", {}).items():
        if not isinstance(record, dict):
            continue
        group = nx_group(corrections, name, "NXcollection")
        for key, value in record.items():
            if value is None:
                continue
            unit = None
            for suffix, nexus_unit in (("_m", "m"), ("_deg", "degree")):
                if key.endswith(suffix):
                    key, unit = key[: -len(suffix)], nexus_unit
            nx_field(group, key, value if isinstance(value, (bool, int, float)) else
                    str(value), unit)
    inputs = nx_group(process, nx.PROCESS_INPUTS, "NXcollection")
    for role, value in metadata.inputs.items():
        nx_field(inputs, role, str(value))
    if metadata.recipe is not None:
        _write_recipe(process, metadata.recipe)


def _write_recipe(process, recipe: Mapping[str, object]) -> None:
    from nxgid.recipe import recipe_hash

    note = nx_group(process, nx.PROCESS_RECIPE, "NXnote")
    nx_field(note, "type", "application/json")
    nx_field(note, "description", "the reduction recipe: every [reduction] key of the "
            "scan's effective settings, as written in settings.ini (nxgid recipe show)")
    note.create_dataset("data", data=np.bytes_(_json(recipe).encode()))
    nx_field(process, nx.PROCESS_RECIPE_HASH, recipe_hash(recipe),
            long_name="SHA-256 of the recipe as canonical JSON (sorted keys, no spaces)")


# --- appending -----------------------------------------------------------------------

def _grow(dataset, values) -> None:
    values = np.asarray(values)
    start = dataset.shape[0]
    dataset.resize(start + values.shape[0], axis=0)
    dataset[start:] = values


def _append(entry, result: Result, frames: FrameBlock, compression: dict) -> None:
    data = entry[nx.DATA]
    n = result.frames
    start = data[nx.FRAME_AXIS].shape[0]  # committed frames; the axis grows at commit
    _grow(data[result.name], result.intensity)
    errors_name = result.name + nx.ERRORS_SUFFIX
    if errors_name in data and result.errors is not None:
        _grow(data[errors_name], result.errors)
    _grow(data[nx.FRAME_MONITOR], result.frame_values.get("monitor", np.ones(n)))
    names = [str(f).encode() for f in frames.files]
    for name in names:
        if len(name) > TEXT_BYTES:
            raise NxgidError(f"raw file name longer than {TEXT_BYTES} bytes: "
                             f"{name[:60].decode(errors='replace')}…")
    _grow(data[nx.FRAME_FILE], np.array(names, dtype=data[nx.FRAME_FILE].dtype))
    _grow(data[nx.FRAME_NUMBER], np.asarray(frames.numbers, dtype=np.int64))
    incidence = entry.get(f"{nx.INSTRUMENT}/{nx.INCIDENCE_ANGLE}")
    if incidence is not None:
        _grow(incidence, result.frame_values.get("incidence_angle_deg", np.full(n, np.nan)))
    given = dict(frames.variables)
    for name, (values, unit) in given.items():
        check_variable_name(name)
        if name not in data:
            variable = _growable(data, name, np.zeros(()), compression,
                                 units=unit or None, long_name=f"scan variable {name}")
            variable.attrs["nxgid_scan_variable"] = True
            _grow(variable, np.full(start, np.nan))
        _grow(data[name], np.asarray(values, dtype=np.float64))
    for name in scan_variables(data):
        if name not in given:
            _grow(data[name], np.full(n, np.nan))
    times = [iso(t) for t in frames.times] if frames.times else [now_iso()]
    if not _read_text(entry["start_time"]):
        entry["start_time"][()] = min(times)
    previous_end = _read_text(entry["end_time"])
    entry["end_time"][()] = max([*times, previous_end]) if previous_end else max(times)


def _read_text(dataset) -> str:
    """A scalar string, or "" if it cannot be read (a variable-length string whose heap
    object a killed writer never wrote: it is simply written again)."""
    try:
        value = dataset[()]
    except OSError:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


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


RESERVED_NAMES = frozenset({nx.FRAME_AXIS, nx.FRAME_MONITOR, nx.FRAME_FILE, nx.FRAME_NUMBER,
                            nx.FRAME_INCIDENCE_LINK, *nx.RESULT_NAMES, *nx.AXIS_DESCRIPTIONS,
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


def frame_datasets(entry) -> list:
    """Every dataset of an entry that has one row per frame."""
    data = entry.get(nx.DATA)
    if data is None:
        return []
    datasets = [item for item in data.values()
                if hasattr(item, "maxshape") and item.maxshape and item.maxshape[0] is None]
    incidence = entry.get(f"{nx.INSTRUMENT}/{nx.INCIDENCE_ANGLE}")
    if incidence is not None and all(incidence.id != d.id for d in datasets):
        datasets.append(incidence)
    return datasets


def truncate_frames(entry, frames: int) -> None:
    """Cut every per-frame array of *entry* to *frames* (a block begun, not committed)."""
    for dataset in frame_datasets(entry):
        if dataset.shape[0] > frames:
            dataset.resize(frames, axis=0)


def cut_to_committed(entry) -> int:
    """Cut the per-frame arrays of *entry* back to its committed frames; returns them."""
    committed = committed_frames(entry)
    truncate_frames(entry, committed)
    return committed


def repair_lengths(root) -> dict[str, int]:
    """Cut the per-frame arrays of every nxgid entry to the committed frames (after a
    writer was killed mid-block); returns the entries repaired with their frame count."""
    repaired = {}
    for name, entry in root.items():
        if not _is_nxgid_entry(entry):
            continue
        lengths = {d.shape[0] for d in frame_datasets(entry)}
        committed = committed_frames(entry)
        if lengths != {committed}:
            truncate_frames(entry, committed)
            repaired[name] = committed
    return repaired


def committed_frames(entry) -> int:
    """Frames completely written: the length of the frame axis (grown last, after a
    flush of everything else), never more than any per-frame array holds."""
    lengths = [d.shape[0] for d in frame_datasets(entry)]
    data = entry.get(nx.DATA)
    axis = data.get(nx.FRAME_AXIS) if data is not None else None
    if axis is not None:
        lengths.append(axis.shape[0])
    return min(lengths) if lengths else 0


def _is_nxgid_entry(entry) -> bool:
    definition = entry.get("definition") if hasattr(entry, "get") else None
    if definition is None:
        return False
    value = definition[()]
    return (value.decode() if isinstance(value, bytes) else str(value)) == nx.DEFINITION


def _compatible(entry, result: Result, signature: str) -> bool:
    if not _is_nxgid_entry(entry):
        return False
    data = entry.get(nx.DATA)
    if data is None or data.attrs.get("signal") != result.name or result.name not in data:
        return False
    stored = data[result.name]
    if stored.shape[1:] != result.intensity.shape[1:] or stored.dtype != np.float32:
        return False
    if (result.name + nx.ERRORS_SUFFIX in data) != (result.errors is not None):
        return False
    hash_path = f"{nx.PROCESS}/{nx.PROCESS_CONFIGURATION_HASH}"
    if hash_path not in entry:
        return False
    value = entry[hash_path][()]
    if (value.decode() if isinstance(value, bytes) else value) != signature:
        return False
    for axis in result.axes:
        if axis.name not in data or data[axis.name].shape != (axis.bins,):
            return False
        if not np.allclose(data[axis.name][()], axis.centres, rtol=1e-9, atol=0):
            return False
    return True
