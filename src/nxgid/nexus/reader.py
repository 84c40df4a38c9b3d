"""Reading nxgid NeXus files back: entries, results with axes and errors, metadata.

    nf = NexusFile("film.nxs")
    nf.entries()                    # [EntryInfo(name="img_gid_q", result="img_gid_q", …)]
    stored = nf.result("img_gid_q") # lazy: nothing read yet
    first = stored[0:10]            # a Result with 10 frames, axes, units and errors
    nf.sample(); nf.set_sample(SampleInfo(...))
    print(nf.tree())
    nf.to_xarray("img_gid_q")

The reader tolerates anything else in the file (raw data, other programs' entries): it
lists as results only the NXentry groups whose NXdata signal is a known result name.
Files are opened for each call and closed again, so a reader never holds a file a
writer needs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nxgid import names as nx
from nxgid.conversion.grid import Axis
from nxgid.conversion.result import Result
from nxgid.errors import MissingError, NxgidError
from nxgid.nexus.frames import committed_frames, scan_variables
from nxgid.units import NEXUS_UNITS

#: NeXus unit string → nxgid axis unit.
_AXIS_UNITS = {value: key for key, value in NEXUS_UNITS.items()}


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


@dataclass(frozen=True)
class EntryInfo:
    """What one entry holds."""

    #: Path of the entry from the root: ``img_gid_q``, or for a result pygid does not
    #: know ``img_gid_q/other_results/img_gid_exit``.
    name: str
    result: str
    shape: tuple[int, ...]
    axes: tuple[str, ...]  # in the order of the array's dimensions, as Result.axes
    definition: str
    title: str

    @property
    def frames(self) -> int:
        return self.shape[0]

    @property
    def description(self) -> str:
        return nx.RESULT_DESCRIPTIONS.get(self.result, self.result)


class NexusFile:
    """An nxgid NeXus file (or any NeXus file holding nxgid entries)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingError(f"{self.path} does not exist")
        import h5py

        if not h5py.is_hdf5(self.path):
            raise NxgidError(f"{self.path} is not an HDF5/NeXus file")

    @contextmanager
    def _open(self, mode: str = "r") -> Iterator:
        import h5py
        import hdf5plugin  # noqa: F401  (registers the compression filters)

        try:
            handle = h5py.File(self.path, mode)
        except OSError as exc:
            raise NxgidError(f"{self.path}: cannot be opened: "
                             f"{str(exc).splitlines()[0]}") from None
        try:
            yield handle
        finally:
            handle.close()

    # --- structure ----------------------------------------------------------------

    def entries(self) -> list[EntryInfo]:
        """The entries holding converted results, in file order."""
        with self._open() as root:
            return [info for name in _entry_names(root)
                    if (info := _entry_info(root, name)) is not None]

    def entry_names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def results(self) -> dict[str, list[str]]:
        """Result name → the entries holding it."""
        found: dict[str, list[str]] = {}
        for info in self.entries():
            found.setdefault(info.result, []).append(info.name)
        return found

    def default_entry(self) -> str:
        with self._open() as root:
            default = root.attrs.get("default")
            default = _text(default) if default is not None else None
        names = self.entry_names()
        if not names:
            raise NxgidError(f"{self.path} holds no converted results")
        return default if default in names else names[0]

    def _metadata_entry(self, entry: str | None) -> str:
        """The entry holding the instrument and sample of *entry*: itself, or for a
        nested result its host."""
        name = self._resolve(entry)
        return name.split(f"/{nx.OTHER_RESULTS}/")[0]

    def _resolve(self, entry: str | None) -> str:
        if entry is None:
            return self.default_entry()
        if "/" not in entry:  # the usual case, a top-level entry's name: no listing
            with self._open() as root:
                if entry in root and _entry_info(root, entry) is not None:
                    return entry
        names = self.entry_names()
        if entry in names:
            return entry
        by_result = self.results().get(entry)
        if by_result:
            return by_result[0]
        nested = [n for n in names if n.rsplit("/", 1)[-1] == entry]
        if nested:
            return nested[0]
        raise MissingError(f"{self.path}: no entry {entry!r}; it holds "
                           + (", ".join(names) if names else "no converted results"))

    # --- results ------------------------------------------------------------------

    def result(self, entry: str | None = None) -> StoredResult:
        """A lazy handle on one entry's result (entry name or result name)."""
        return StoredResult(self, self._resolve(entry))

    def load(self, entry: str | None = None, frames=None, *, errors: bool = True) -> Result:
        """Read a result; *frames* is an int, a slice or a list of frame numbers."""
        stored = self.result(entry)
        return stored.read(frames, errors=errors)

    def to_xarray(self, entry: str | None = None, frames=None):
        return self.load(entry, frames).to_xarray()

    # --- metadata ---------------------------------------------------------------

    def sample(self, entry: str | None = None):
        """The sample (:class:`nxgid.nexus.metadata.SampleInfo`) of an entry."""
        from nxgid.nexus.metadata import read_sample

        name = self._metadata_entry(entry)
        with self._open() as root:
            return read_sample(root[name][nx.SAMPLE])

    def set_sample(self, sample, entry: str | None = None) -> None:
        """Write the sample metadata into one entry, or every nxgid entry if None."""
        from nxgid.nexus.metadata import write_sample

        names = [self._metadata_entry(entry)] if entry is not None else \
            list(dict.fromkeys(self._metadata_entry(name) for name in self.entry_names()))
        with self._open("r+") as root:
            for name in names:
                group = root[name].require_group(nx.SAMPLE)
                group.attrs["NX_class"] = "NXsample"
                write_sample(group, sample)

    def experiment(self, entry: str | None = None):
        """Facility, beamline, proposal and users (:class:`ExperimentInfo`)."""
        from nxgid.nexus.metadata import read_experiment

        name = self._metadata_entry(entry)
        with self._open() as root:
            return read_experiment(root[name])

    def set_experiment(self, info, entry: str | None = None) -> None:
        from nxgid.nexus.metadata import write_experiment

        names = [self._metadata_entry(entry)] if entry is not None else \
            list(dict.fromkeys(self._metadata_entry(name) for name in self.entry_names()))
        with self._open("r+") as root:
            for name in names:
                write_experiment(root[name], info)

    def configuration(self, entry: str | None = None) -> dict:
        """The conversion configuration recorded in ``process``."""
        name = self._resolve(entry)
        with self._open() as root:
            note = root[name].get(f"{nx.PROCESS}/{nx.PROCESS_CONFIGURATION}/data")
            return {} if note is None else json.loads(_text(note[()]))

    def recipe(self, entry: str | None = None) -> tuple[dict, str] | None:
        """The reduction recipe recorded in ``process`` and its SHA-256, or None when the
        entry was written without one."""
        name = self._resolve(entry)
        with self._open() as root:
            process = root[name].get(nx.PROCESS)
            if process is None:
                return None
            note = process.get(f"{nx.PROCESS_RECIPE}/data")
            digest = process.get(nx.PROCESS_RECIPE_HASH)
            if note is None or digest is None:
                return None
            return json.loads(_text(note[()])), _text(digest[()])

    def instrument(self, entry: str | None = None) -> dict:
        """Scalar instrument values with units: ``{"detector/distance": (0.3, "m"), …}``."""
        name = self._metadata_entry(entry)
        values: dict = {}
        with self._open() as root:
            group = root[name].get(nx.INSTRUMENT)
            if group is None:
                return values

            def visit(path, item):
                if hasattr(item, "shape") and item.shape == () and path != "name":
                    value = item[()]
                    value = _text(value) if isinstance(value, (bytes, str)) else value.item()
                    values[path] = (value, _text(item.attrs.get("units", "")))

            group.visititems(visit)
            if "name" in group:
                values["name"] = (_text(group["name"][()]), "")
        return values

    # --- analysis tables -------------------------------------------------------------

    def tables(self, entry: str | None = None) -> list[str]:
        """Names of the tables in an entry's ``analysis`` group (peak lists, fits, …)."""
        name = self._resolve(entry)
        with self._open() as root:
            group = root[name].get(nx.ANALYSIS)
            return [] if group is None else [k for k, v in group.items()
                                             if hasattr(v, "dtype") and v.dtype.names]

    def add_table(self, table: str, rows: np.ndarray, entry: str | None = None) -> int:
        """Append *rows* (a structured array with a ``frame_ind`` field, the frame each
        row belongs to) to the analysis table *table*, created on first use; returns the
        table's length. One growing table per kind, however many frames: readers select
        a frame's rows by ``frame_ind``."""
        from nxgid.names import check_name

        check_name(table, "analysis table")
        rows = np.asarray(rows)
        if rows.dtype.names is None or nx.FRAME_AXIS not in rows.dtype.names:
            raise NxgidError(f"analysis table {table}: expected a structured array with a "
                             f"{nx.FRAME_AXIS!r} field")
        name = self._resolve(entry)
        with self._open("r+") as root:
            frames = root[name][nx.DATA][nx.FRAME_AXIS].shape[0]
            wrong = rows[nx.FRAME_AXIS][(rows[nx.FRAME_AXIS] < 0) |
                                        (rows[nx.FRAME_AXIS] >= frames)]
            if wrong.size:
                raise NxgidError(f"analysis table {table}: frame {int(wrong[0])} does not "
                                 f"exist in {name} ({frames} frames)")
            group = root[name].require_group(nx.ANALYSIS)
            group.attrs["NX_class"] = "NXcollection"
            if table not in group:
                dataset = group.create_dataset(table, shape=(0,), maxshape=(None,),
                                               dtype=rows.dtype, chunks=(1024,),
                                               compression="gzip", compression_opts=4)
            else:
                dataset = group[table]
                if dataset.dtype != rows.dtype:
                    raise NxgidError(f"analysis table {table}: columns {rows.dtype.names} "
                                     f"differ from the stored {dataset.dtype.names}")
            start = dataset.shape[0]
            dataset.resize(start + rows.shape[0], axis=0)
            dataset[start:] = rows
            root.flush()
            return int(dataset.shape[0])

    def table(self, table: str, entry: str | None = None, frame: int | None = None
              ) -> np.ndarray:
        """An analysis table, or only the rows of one frame."""
        name = self._resolve(entry)
        with self._open() as root:
            dataset = root[name].get(f"{nx.ANALYSIS}/{table}")
            if dataset is None:
                raise MissingError(f"{self.path}: {name} has no analysis table {table!r}")
            rows = dataset[()]
        return rows if frame is None else rows[rows[nx.FRAME_AXIS] == frame]

    # --- printing -----------------------------------------------------------------

    def tree(self, *, attributes: bool = False) -> str:
        """The file's groups and datasets, one per line, with NeXus classes, shapes,
        dtypes and units."""
        lines = [str(self.path)]
        with self._open() as root:
            def visit(name, item):
                depth = name.count("/") + 1
                label = name.rsplit("/", 1)[-1]
                indent = "  " * depth
                if hasattr(item, "shape"):
                    units = item.attrs.get("units")
                    text = f"{indent}{label} {item.dtype}{list(item.shape)}"
                    if item.shape == () and item.dtype.kind in "OSUifb":
                        value = item[()]
                        value = _text(value) if isinstance(value, bytes) else value
                        shown = str(value)
                        text += " = " + (shown if len(shown) < 60 else shown[:57] + "...")
                    if units is not None:
                        text += f" {_text(units)}"
                else:
                    nx_class = _text(item.attrs.get("NX_class", ""))
                    text = f"{indent}{label}/ {nx_class}".rstrip()
                lines.append(text)
                if attributes:
                    for key, value in item.attrs.items():
                        if key not in ("NX_class", "units"):
                            lines.append(f"{indent}  @{key} = {_text(value)}")

            root.visititems(visit)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"NexusFile({str(self.path)!r})"


class StoredResult:
    """One entry's result on disk; slicing reads only the frames asked for."""

    def __init__(self, file: NexusFile, entry: str) -> None:
        self.file = file
        self.entry = entry
        with file._open() as root:
            info = _entry_info(root, entry)
            if info is None:
                raise NxgidError(f"{file.path}: {entry} holds no converted result")
            self.info = info
            data = root[entry][nx.DATA]
            self.axes = tuple(_axis(data, name) for name in info.axes)
            self.has_errors = info.result + nx.ERRORS_SUFFIX in data

    @property
    def name(self) -> str:
        return self.info.result

    @property
    def shape(self) -> tuple[int, ...]:
        return self.info.shape

    @property
    def frames(self) -> int:
        return self.info.frames

    def __len__(self) -> int:
        return self.frames

    def __getitem__(self, frames) -> Result:
        return self.read(frames)

    def read(self, frames=None, *, errors: bool = True) -> Result:
        selection = _selection(frames, self.frames)
        with self.file._open() as root:
            entry = root[self.entry]
            data = entry[nx.DATA]
            n = committed_frames(entry)  # whole frames only
            if isinstance(selection, np.ndarray) and selection.size and \
                    selection.max() >= n:
                raise NxgidError(f"{self.entry}: frame {int(selection.max())} does not "
                                 f"exist; it has {n} frames")

            def read(dataset):
                if isinstance(selection, slice):
                    start, stop, step = selection.indices(n)
                    return dataset[start:stop:step] if step == 1 else \
                        dataset[start:stop][::step]
                if not selection.size:
                    return dataset[:0]
                unique, inverse = np.unique(selection, return_inverse=True)
                return dataset[unique][inverse]  # h5py wants increasing indices

            intensity = _decoded(read, data[self.name], self.file.path)
            error_values = _decoded(read, data[self.name + nx.ERRORS_SUFFIX],
                                    self.file.path) if errors and self.has_errors else None
            frame_values = {"monitor": read(data[nx.FRAME_MONITOR])}
            if nx.FRAME_INCIDENCE_LINK in data:  # grazing incidence only
                frame_values["incidence_angle_deg"] = read(data[nx.FRAME_INCIDENCE_LINK])
            for variable in scan_variables(data):
                frame_values[variable] = read(data[variable])
            frame_values["frame_ind"] = read(data[nx.FRAME_AXIS])
            frame_values["frame_num"] = read(data[nx.FRAME_NUMBER])
            frame_values["filename"] = np.array(
                [_text(f) for f in read(data[nx.FRAME_FILE])], dtype=object)
        configuration = self.file.configuration(self.entry)
        return Result(name=self.name, axes=self.axes, intensity=intensity,
                      errors=error_values, counts=np.zeros(0, dtype=np.int64),
                      process=configuration, frame_values=frame_values)

    def units(self) -> dict[str, str]:
        """Axis name → NeXus unit string."""
        return {a.name: NEXUS_UNITS[a.unit] for a in self.axes}

    def __repr__(self) -> str:
        return (f"StoredResult({self.name!r}, entry={self.entry!r}, frames={self.frames}, "
                f"shape={self.shape})")


def missing_filters(dataset) -> list[str]:
    """The compression filters of *dataset* this HDF5 library cannot decode, by the name
    the file gives them (e.g. ``bitshuffle; see https://github.com/kiyo-masui/bitshuffle``)
    and number."""
    import h5py

    plist = dataset.id.get_create_plist()
    missing = []
    for index in range(plist.get_nfilters()):
        code, _flags, _values, name = plist.get_filter(index)
        if not h5py.h5z.filter_avail(code):
            label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            missing.append(f"{label or 'unnamed'} (HDF5 filter {code})")
    return missing


def _decoded(read, dataset, path: Path):
    """*read(dataset)*, or an error naming the compression filter that is missing (h5py
    only says it cannot open a plugin directory)."""
    try:
        return read(dataset)
    except OSError as exc:
        missing = missing_filters(dataset)
        if not missing:
            raise
        raise NxgidError(f"{path}: {dataset.name} is compressed with {', '.join(missing)}, "
                         f"which this HDF5 cannot decode: pip install hdf5plugin and import "
                         f"it before reading ({str(exc).splitlines()[0]})") from None


def _selection(frames, n: int):
    if frames is None:
        return slice(None)
    if isinstance(frames, slice):
        return frames
    if isinstance(frames, (int, np.integer)):
        index = int(frames) + (n if frames < 0 else 0)
        if not 0 <= index < n:
            raise NxgidError(f"frame {int(frames)} does not exist; there are {n} frames")
        return slice(index, index + 1)
    array = np.asarray(frames, dtype=np.int64)
    array = np.where(array < 0, array + n, array)
    if array.size and (array.min() < 0 or array.max() >= n):
        raise NxgidError(f"frames {list(frames)} out of range; there are {n} frames")
    return array


def _axis(data, name: str) -> Axis:
    """Rebuild a regular axis from its bin centres."""
    centres = np.asarray(data[name][()], dtype=np.float64)
    unit = _AXIS_UNITS.get(_text(data[name].attrs.get("units", "")), "A^-1")
    step = float(centres[1] - centres[0]) if centres.size > 1 else 1.0
    return Axis(name, float(centres[0] - step / 2), float(centres[-1] + step / 2),
                int(centres.size), unit)


def _entry_names(root) -> list[str]:
    """Every top-level group, each followed by the groups of its ``other_results``."""
    names = []
    for name in root:
        names.append(name)
        nested = root[name].get(nx.OTHER_RESULTS) if hasattr(root[name], "get") else None
        if nested is not None and hasattr(nested, "keys"):
            names += [f"{name}/{nx.OTHER_RESULTS}/{child}" for child in nested]
    return names


def _entry_info(root, name: str) -> EntryInfo | None:
    entry = root.get(name)
    expected = "NXcollection" if f"/{nx.OTHER_RESULTS}/" in name else "NXentry"
    if entry is None or _text(entry.attrs.get("NX_class", "")) != expected:
        return None
    data = entry.get(entry.attrs.get("default", nx.DATA)) if "default" in entry.attrs \
        else entry.get(nx.DATA)
    if data is None or not hasattr(data, "attrs"):
        return None
    signal = data.attrs.get("signal")
    signal = _text(signal) if signal is not None else None
    if signal not in nx.RESULT_NAMES or signal not in data:
        return None
    axes_attr = [_text(a) for a in np.atleast_1d(data.attrs.get("axes", []))]
    axes = tuple(a for a in axes_attr if a != nx.FRAME_AXIS and a in data)
    definition = _text(entry["definition"][()]) if "definition" in entry else ""
    title = _text(entry["title"][()]) if "title" in entry else ""
    shape = tuple(int(s) for s in data[signal].shape)
    shape = (committed_frames(entry), *shape[1:])
    return EntryInfo(name, signal, shape, axes, definition, title)
