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
:mod:`nxgid.names`. Each entry is made and fed by :mod:`nxgid.nexus.entries`; the
per-frame bookkeeping (committed frames, repairs) is :mod:`nxgid.nexus.frames`.

pygid's reader rejects a whole file when one of its top-level groups holds a result it
does not know, so such results (``img_gid_exit``) go into the collection
``other_results`` of an entry holding a pygid result converted from the same frames
(with its data and conversion record; the instrument and sample are the host's). Only a
block with no pygid result at all puts them at the top.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from nxgid import names as nx
from nxgid.conversion.result import Result
from nxgid.errors import BusyError, ExistsError, NxgidError
from nxgid.geometry.detector import DetectorGeometry
from nxgid.nexus.entries import append, commit, compatible, create_entry, iso, now_iso
from nxgid.nexus.frames import (  # re-exported: the names other modules know them by
    TEXT_BYTES,
    check_variable_name,
    committed_frames,
    cut_to_committed,
    frame_datasets,
    hold_metadata_until_flush,
    nxgid_entry_paths,
    read_text,
    repair_lengths,
    scan_variables,
    truncate_frames,
)
from nxgid.nexus.h5 import nx_group

__all__ = ["COMPRESSIONS", "DEFAULT_COMPRESSION", "TEXT_BYTES", "EntryMetadata",
           "FrameBlock", "InstrumentInfo", "NexusWriter", "check_variable_name",
           "committed_frames", "compression_options", "conversion_signature",
           "cut_to_committed", "frame_datasets", "hold_metadata_until_flush", "iso",
           "now_iso", "nxgid_entry_paths", "pixel_mask_bits", "read_text",
           "repair_lengths", "scan_variables", "truncate_frames"]

WriteMode = Literal["create", "append", "overwrite"]
MODES: tuple[str, ...] = ("create", "append", "overwrite")
COMPRESSIONS: tuple[str, ...] = ("gzip", "none", "bitshuffle-lz4", "bitshuffle-zstd")
#: gzip (deflate, level 1, with shuffle) is built into every HDF5 library: pygid, the
#: mlgid tools, silx, h5py and H5Web (h5wasm) read it without any plugin. bitshuffle is
#: faster but needs hdf5plugin (h5py) and a plugin h5wasm lacks: it reads as an error
#: or as wrong numbers there (benchmarks/bench_compression.py).
DEFAULT_COMPRESSION = "gzip"


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
    #: The reduction recipe (:meth:`nxgid.experiment.recipe.Recipe.as_dict`) the entry was made
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


def compression_options(name: str) -> dict:
    """h5py dataset keywords for a compression name (see :data:`COMPRESSIONS`)."""
    if name in ("bitshuffle-lz4", "bitshuffle-zstd"):
        import hdf5plugin

        return dict(hdf5plugin.Bitshuffle(cname=name.split("-")[1]))
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
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


class NexusWriter:
    """Appends blocks of converted results to one nxgid NeXus file (one writer per file).

    *mode*: ``"create"`` refuses an existing file, ``"append"`` adds frames to an
    existing file (or creates it), ``"overwrite"`` replaces an existing file once the
    new one is complete.
    """

    def __init__(self, path: str | os.PathLike, metadata: EntryMetadata, *,
                 mode: WriteMode = "create", compression: str = DEFAULT_COMPRESSION
                 ) -> None:
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
        from nxgid.safety.partials import clear_stale, partial_path

        clear_stale(self.path)  # left by a writer of this output that was killed
        self._temporary: Path | None = None
        if mode == "append" and self.path.exists():
            try:
                self._file = h5py.File(self.path, "r+")
            except BlockingIOError:
                raise BusyError(f"{self.path} is open in another process; try again when "
                                "it is closed") from None
            except OSError as exc:
                raise NxgidError(f"{self.path}: cannot be opened for appending: "
                                 f"{str(exc).splitlines()[0]}") from None
            self._file.attrs.setdefault("NX_class", "NXroot")
            hold_metadata_until_flush(self._file)
            repair_lengths(self._file)
        else:
            self._temporary = partial_path(self.path)
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
        existing = set(nxgid_entry_paths(self._file))
        default = self._file.attrs.get("default")
        targets: dict = {}
        previous: dict[str, int] = {}
        times: dict[str, tuple[str, str]] = {}
        try:
            # pygid's results first: an entry of theirs hosts the others of the block
            host = None
            for name in sorted(results, key=lambda r: r not in nx.PYGID_RESULTS):
                targets[name] = self._entry_for(results[name], host)
                if host is None and name in nx.PYGID_RESULTS and \
                        "/" not in targets[name].name.strip("/"):
                    host = targets[name]
            previous = {entry.name: entry[nx.DATA][nx.FRAME_AXIS].shape[0]
                        for entry in targets.values()}
            times = {entry.name: (read_text(entry["start_time"]),
                                  read_text(entry["end_time"]))
                     for entry in targets.values()}
            for name, result in results.items():
                append(targets[name], result, frames, self._compression)
            self._file.flush()
            # commit: the frame axis grows last, once everything else is on disk, so a
            # writer killed at any moment leaves frame_ind counting whole frames only
            for entry in dict.fromkeys(targets.values()):
                commit(entry, n)
            self._file.flush()
        except BaseException:
            # back to the state before the block: earlier frames only, no new entries
            for entry in targets.values():
                if entry.name.lstrip("/") in existing:
                    truncate_frames(entry, previous.get(entry.name, committed_frames(entry)))
                    for key, value in zip(("start_time", "end_time"),
                                          times.get(entry.name, ()), strict=False):
                        entry[key][()] = value
            for path in sorted(set(nxgid_entry_paths(self._file)) - existing, reverse=True):
                del self._file[path]
            for entry in self._file.values():  # collections left empty
                nested = entry.get(nx.OTHER_RESULTS) if hasattr(entry, "get") else None
                if nested is not None and not len(nested):
                    del entry[nx.OTHER_RESULTS]
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

    def _entry_for(self, result: Result, host=None):
        """The entry this result appends to, created if none matches. A result pygid
        does not know goes to the ``other_results`` of *host* (the block's first pygid
        entry: converted from the same frames) when there is one, and matches only the
        results kept there; names are unique in the file (``img_gid_exit_2``)."""
        signature = conversion_signature(result.process)
        paths = nxgid_entry_paths(self._file)
        nested = result.name not in nx.PYGID_RESULTS and host is not None
        if nested:
            prefix = f"{host.name.strip('/')}/{nx.OTHER_RESULTS}/"
            candidates = [path for path in paths if path.startswith(prefix)]
        else:
            candidates = [path for path in paths if "/" not in path]
        for path in candidates:
            entry = self._file[path]
            if compatible(entry, result, signature):
                return entry
        parent = self._file
        if nested:
            parent = nx_group(host, nx.OTHER_RESULTS, "NXcollection")
            parent.attrs["description"] = (
                "results pygid's reader does not know (it rejects a file with any other "
                "top-level entry): their data and conversion record; the instrument and "
                "sample are this entry's")
        taken = {path.rsplit("/", 1)[-1] for path in paths} | set(self._file)
        base = result.name
        name, suffix = base, 1
        while name in taken:
            suffix += 1
            name = f"{base}_{suffix}"
        entry = create_entry(parent, name, result, self.metadata, signature,
                             self._compression, nested=nested)
        if not nested and ("default" not in self._file.attrs or
                           self._file.attrs["default"] not in self._file):
            self._file.attrs["default"] = name
        return entry
