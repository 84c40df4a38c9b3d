"""One NXgid entry: created with all its metadata, then fed block by block.

The layout (docs/nexus-format.md) is the one pygid 0.2.20's reader and the mlgid tools
read, with the units they assume written in ``@units``: the wavelength in metres, the
detector angles in radians (pygid's mapping of pyFAI's rot1, −rot2, rot3), the beam
centre in pixels; the per-frame groups ``data/analysis/frameNNNNN`` they store peak
tables in, and NXparameters groups in ``process`` for the tools' parameters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime

import numpy as np

from nxgid import names as nx
from nxgid.conversion.result import Result
from nxgid.errors import NxgidError
from nxgid.nexus.chunks import grow_frames
from nxgid.nexus.frames import (
    TEXT_BYTES,
    add_frame_groups,
    check_variable_name,
    grow,
    is_nxgid_entry,
    read_text,
    scan_variables,
)
from nxgid.nexus.h5 import nx_field, nx_group
from nxgid.units import NEXUS_UNITS, wavelength_A_to_energy_keV

#: Aim for chunks of about this many bytes (whole frames, at least one).
CHUNK_BYTES = 1 << 20


def now_iso() -> str:
    """The current time, ISO 8601 with the local zone."""
    from datetime import UTC

    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.isoformat(timespec="seconds")


def recipe_hash(recipe: Mapping[str, object]) -> str:
    """SHA-256 (hex) of the canonical JSON of *recipe*: sorted keys, no whitespace.

    The one definition of the recipe hash, kept with the record it hashes: the NeXus
    writer stores it as ``process/recipe_sha256``, and :attr:`nxgid.experiment.recipe.Recipe.sha256`
    is this hash of the same record.
    """
    text = json.dumps(dict(recipe), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def json_text(record: Mapping) -> str:
    return json.dumps(record, sort_keys=True, indent=1, default=str)


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


def axis_unit(axis) -> str:
    return NEXUS_UNITS[axis.unit if axis.is_q else "deg"]


def create_entry(parent, name: str, result: Result, metadata, signature: str,
                 compression: dict, *, nested: bool = False):
    """A new entry for *result* in *parent*, with every field written once; per-frame
    arrays empty.

    *nested*: a result pygid does not know, kept in a host entry's ``other_results``
    (an NXcollection): its data and conversion record only, the instrument and sample
    being the host's (written by the same writer); its ``process`` is an NXcollection
    and its angles of incidence are a field of its own ``data``. Validators see only
    classes any group may hold (NXdata, NXnote, NXcollection).
    """
    entry = nx_group(parent, name, "NXcollection" if nested else "NXentry")
    entry.attrs["default"] = nx.DATA
    nx_field(entry, "definition", nx.DEFINITION, version=nx.DEFINITION_VERSION)
    title = metadata.title or getattr(metadata.experiment, "title", None) or \
        nx.RESULT_DESCRIPTIONS.get(result.name, result.name)
    nx_field(entry, "title", title)
    nx_field(entry, "start_time", "")  # set by the first append
    nx_field(entry, "end_time", "")
    gid = result.process.get("sample", {}).get("mode", "gid") == "gid"
    if nested:
        _write_process(entry, result, metadata, signature, nx_class="NXcollection")
        _create_data(entry, None, result, compression, gid=gid)
        return entry

    instrument = write_instrument(entry, metadata.instrument)
    _write_sample(entry, metadata)
    _write_process(entry, result, metadata, signature)
    analysis = nx_group(entry, nx.ANALYSIS, "NXcollection")
    analysis.attrs["description"] = (
        "results of later analysis steps (e.g. peak tables), one table per kind with a "
        f"'{nx.FRAME_AXIS}' column; see docs/nexus-format.md")
    if metadata.experiment is not None:
        from nxgid.nexus.metadata import write_experiment

        write_experiment(entry, metadata.experiment)
    _create_data(entry, instrument, result, compression, gid=gid)
    return entry


def _create_data(entry, instrument, result: Result, compression: dict, *, gid: bool):
    data = nx_group(entry, nx.DATA, "NXdata")
    data.attrs["signal"] = result.name
    data.attrs["axes"] = [nx.FRAME_AXIS, *(a.name for a in result.axes)]
    data.attrs[f"{nx.FRAME_AXIS}_indices"] = 0
    for position, axis in enumerate(result.axes, start=1):
        data.attrs[f"{axis.name}_indices"] = position
        values = nx_field(data, axis.name, axis.centres.astype(np.float64),
                          units=axis_unit(axis))
        values.attrs["long_name"] = \
            f"{nx.AXIS_DESCRIPTIONS.get(axis.name, axis.name)} ({axis_unit(axis)})"
    example = np.zeros(result.intensity.shape[1:], dtype=np.float32)
    signal = _growable(data, result.name, example, compression, dtype=np.float32)
    signal.attrs["long_name"] = nx.intensity_label(result.process)
    signal.attrs["interpretation"] = "image" if result.is_map else "spectrum"
    if not result.process.get("monitor_normalised"):
        signal.attrs["units"] = "counts"
    for cut_axis, lo, hi in result.process.get("target", {}).get("cuts", []):
        signal.attrs["cut_axis"] = cut_axis
        signal.attrs["cut_range"] = np.array([lo, hi], dtype=np.float64)
        unit = "deg" if cut_axis.startswith("ang_") else result.process.get("q_unit", "A^-1")
        signal.attrs["cut_units"] = NEXUS_UNITS[unit]
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
    frames = nx_group(data, nx.FRAME_ANALYSIS, "NXcollection")
    frames.attrs["description"] = ("per-frame results of pygid and the mlgid tools "
                                   "(detected, fitted, matched peaks): frameNNNNN")
    if gid and instrument is None:  # nested: a field of its own
        _growable(data, nx.FRAME_INCIDENCE_LINK, np.zeros(()), compression,
                  units=NEXUS_UNITS["deg"], long_name="angle of incidence of each frame")
    elif gid:
        angle = _growable(instrument, nx.INCIDENCE_ANGLE, np.zeros(()), compression,
                          units=NEXUS_UNITS["deg"],
                          long_name="angle of incidence of each frame")
        angle.attrs["target"] = angle.name
        data[nx.FRAME_INCIDENCE_LINK] = angle
    elif instrument is not None:  # pygid's reader needs the field even in transmission
        _growable(instrument, nx.INCIDENCE_ANGLE, np.zeros(()), compression,
                  units=NEXUS_UNITS["deg"],
                  long_name="none: transmission (NaN; pygid's reader needs the field)")


def pygid_beam_centre_px(geometry) -> tuple[float, float]:
    """(x, y) of the direct beam on the detector in pixels from the first pixel's outer
    edge, as pygid computes it from a PONI (its inverse gives back the PONI exactly):
    ``(poni2 − d·tan rot1)/p₂``, ``(poni1 + d·tan rot2 / cos rot1)/p₁`` — pyFAI's Fit2D
    centre when rot3 = 0."""
    distance = geometry.distance_m
    poni1, poni2 = geometry.poni_m
    rot1, rot2, _ = geometry.rotations_rad
    pixel_rows_m, pixel_cols_m = geometry.pixel_size_m
    return ((poni2 - distance * np.tan(rot1)) / pixel_cols_m,
            (poni1 + distance * np.tan(rot2) / np.cos(rot1)) / pixel_rows_m)


def write_instrument(entry, info):
    geometry = info.geometry
    instrument = nx_group(entry, nx.INSTRUMENT, "NXinstrument")
    nx_field(instrument, "name", info.name)
    source = nx_group(instrument, nx.SOURCE, "NXsource")
    nx_field(source, "type", info.source_type)
    if info.source_name:
        nx_field(source, "name", info.source_name)
    nx_field(source, "probe", info.source_probe)
    mono = nx_group(instrument, nx.MONOCHROMATOR, "NXmonochromator")
    # metres: pygid multiplies the value by 1e10, whatever @units says
    nx_field(mono, "wavelength", geometry.wavelength_A * 1e-10, NEXUS_UNITS["m"])
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
    centre_x, centre_y = pygid_beam_centre_px(geometry)
    nx_field(detector, "beam_center_x", centre_x, nx.BEAM_CENTER_UNITS,
             long_name="where the direct beam meets the detector, in pixels along the "
                       "columns from the first pixel's outer edge")
    nx_field(detector, "beam_center_y", centre_y, nx.BEAM_CENTER_UNITS,
             long_name="where the direct beam meets the detector, in pixels along the rows")
    rot1, rot2, rot3 = geometry.rotations_rad
    # pygid's mapping of the pyFAI rotations onto NXdetector angles, in radians
    nx_field(detector, "aequatorial_angle", rot1, "rad", long_name="pyFAI rot1")
    nx_field(detector, "polar_angle", -rot2, "rad", long_name="minus pyFAI rot2")
    nx_field(detector, "rotation_angle", rot3, "rad", long_name="pyFAI rot3")
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
        detector.create_dataset(nx.DETECTOR_MASK, data=mask, compression="gzip",
                                compression_opts=4, shuffle=True)
        nx_field(detector, "pixel_mask_applied", True)
    return instrument


def _write_sample(entry, metadata) -> None:
    sample = nx_group(entry, nx.SAMPLE, "NXsample")
    if metadata.sample is not None:
        from nxgid.nexus.metadata import write_sample

        write_sample(sample, metadata.sample)
    else:
        nx_field(sample, "name", "unnamed sample")


def _write_process(entry, result: Result, metadata, signature: str, *,
                   nx_class: str = "NXprocess") -> None:
    from nxgid import __version__

    process = nx_group(entry, nx.PROCESS, nx_class)
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
    note.create_dataset("data", data=np.bytes_(json_text(result.process).encode()))
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
            nx_field(group, key, value if isinstance(value, bool | int | float) else
                     str(value), unit)
    inputs = nx_group(process, nx.PROCESS_INPUTS, "NXcollection")
    for role, value in metadata.inputs.items():
        nx_field(inputs, role, str(value))
    if nx_class == "NXprocess":  # where the mlgid tools put their parameters
        for tool in nx.ANALYSIS_TOOLS:
            nx_group(process, tool, "NXparameters")
    if metadata.recipe is not None:
        _write_recipe(process, metadata.recipe)


def _write_recipe(process, recipe: Mapping[str, object]) -> None:

    note = nx_group(process, nx.PROCESS_RECIPE, "NXnote")
    nx_field(note, "type", "application/json")
    nx_field(note, "description", "the reduction recipe: every [reduction] key of the "
             "scan's effective settings, as written in settings.ini (nxgid recipe show)")
    note.create_dataset("data", data=np.bytes_(json_text(recipe).encode()))
    nx_field(process, nx.PROCESS_RECIPE_HASH, recipe_hash(recipe),
             long_name="SHA-256 of the recipe as canonical JSON (sorted keys, no spaces)")


# --- appending -----------------------------------------------------------------------

def append(entry, result: Result, frames, compression: dict) -> None:
    """Add one block of frames to every per-frame array of *entry* except the frame
    axis (grown at the commit, with the frames' analysis groups)."""
    data = entry[nx.DATA]
    n = result.frames
    start = data[nx.FRAME_AXIS].shape[0]  # committed frames; the axis grows at commit
    grow_frames(data[result.name], result.intensity)  # compressed in threads
    errors_name = result.name + nx.ERRORS_SUFFIX
    if errors_name in data and result.errors is not None:
        grow_frames(data[errors_name], result.errors)
    grow(data[nx.FRAME_MONITOR], result.frame_values.get("monitor", np.ones(n)))
    names = [str(f).encode() for f in frames.files]
    for name in names:
        if len(name) > TEXT_BYTES:
            raise NxgidError(f"raw file name longer than {TEXT_BYTES} bytes: "
                             f"{name[:60].decode(errors='replace')}…")
    grow(data[nx.FRAME_FILE], np.array(names, dtype=data[nx.FRAME_FILE].dtype))
    grow(data[nx.FRAME_NUMBER], np.asarray(frames.numbers, dtype=np.int64))
    incidence = entry.get(f"{nx.INSTRUMENT}/{nx.INCIDENCE_ANGLE}") or \
        data.get(nx.FRAME_INCIDENCE_LINK)  # a hard link to the former, or nested its own
    if incidence is not None:
        grow(incidence, result.frame_values.get("incidence_angle_deg", np.full(n, np.nan)))
    given = dict(frames.variables)
    for name, (values, unit) in given.items():
        check_variable_name(name)
        if name not in data:
            variable = _growable(data, name, np.zeros(()), compression,
                                 units=unit or None, long_name=f"scan variable {name}")
            variable.attrs["nxgid_scan_variable"] = True
            grow(variable, np.full(start, np.nan))
        grow(data[name], np.asarray(values, dtype=np.float64))
    for name in scan_variables(data):
        if name not in given:
            grow(data[name], np.full(n, np.nan))
    times = [iso(t) for t in frames.times] if frames.times else [now_iso()]
    if not read_text(entry["start_time"]):
        entry["start_time"][()] = min(times)
    previous_end = read_text(entry["end_time"])
    entry["end_time"][()] = max([*times, previous_end]) if previous_end else max(times)


def commit(entry, frames: int) -> None:
    """Grow the frame axis by *frames* and give them their analysis groups: the block is
    then part of the entry."""
    data = entry[nx.DATA]
    start = data[nx.FRAME_AXIS].shape[0]
    add_frame_groups(entry, start, start + frames)
    grow(data[nx.FRAME_AXIS], np.arange(start, start + frames, dtype=np.int64))


def compatible(entry, result: Result, signature: str) -> bool:
    """Whether *result*'s frames may be stacked onto *entry*."""
    if not is_nxgid_entry(entry):
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
    if read_text(entry[hash_path]) != signature:
        return False
    for axis in result.axes:
        if axis.name not in data or data[axis.name].shape != (axis.bins,):
            return False
        if not np.allclose(data[axis.name][()], axis.centres, rtol=1e-9, atol=0):
            return False
    return True
