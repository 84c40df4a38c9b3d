"""Detector frames from image files, read lazily and in constant memory.

:func:`open_series` turns file names and glob patterns into an :class:`ImageSeries`: the
frames of all files, concatenated in natural file order, optionally narrowed by a frame
selection (``"0:100"``, ``"-10:"``, ``"0,3,7:9"``). Opening reads headers only, never
pixels; frames are then read one file at a time, a few frames in memory at most.
:func:`read_image` reads one 2-D image (mask, dark, flat), averaging multi-frame files.
Frames are (rows, cols) arrays in detector counts, exactly as stored. Formats:

* all fabio formats. EDF: every frame. TIFF: every page; uncompressed ones via fabio's
  ``TiffIO`` (page cache off), compressed ones (LZW, deflate, PackBits) via PIL, since
  fabio reads only their first page and decodes 16-bit PackBits wrongly. CBF: fabio reads
  one binary section, i.e. one frame per file (as detectors write them). Other formats:
  fabio's ``nframes`` frames; their first frame is decoded when the series is opened.
* HDF5/NeXus (``.h5 .hdf5 .hdf .nxs .nx5`` or an HDF5 signature), read-only, with the
  ``hdf5plugin`` filters (bitshuffle/LZ4): the ``dataset`` given, else one found by
  :func:`_find_datasets` (Eiger ``data_NNNNNN`` parts are concatenated). A 2-D dataset is
  one frame, a 3-D one frames × rows × cols.
* ``.npy`` arrays, 2-D or 3-D (memory-mapped).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import fabio
import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4 HDF5 filters)
import numpy as np
from fabio.cbfimage import CbfImage
from fabio.edfimage import EdfImage
from fabio.TiffIO import TiffIO
from fabio.tifimage import TifImage

from nxgid.errors import MissingError, NxgidError
from nxgid.safety.deadline import call_with_deadline
from nxgid.safety.formats import (
    DamagedFileError,
    check_cbf,
    check_edf_frames,
    check_edf_header,
    looks_like_cbf,
    looks_like_edf,
)
from nxgid.safety.paths import check_regular_file
from nxgid.safety.quiet import library_errors

HDF5_SUFFIXES = frozenset({".h5", ".hdf5", ".hdf", ".nxs", ".nx5"})
_EIGER_PART = re.compile(r"data_\d{6}")
_RUN_BYTES = 64 << 20  # largest HDF5 read of consecutive frames (bounded by one chunk too)
_TIFF_KINDS = {1: "u", 2: "i", 3: "f", 4: "u"}  # TIFF SampleFormat → numpy kind
_FRAMES_FORM = "an index or start:stop[:step], comma-separated (e.g. 5, 0:100, -10:, 0,3,7:9)"


@dataclass(frozen=True)
class FrameOrigin:
    """Where a frame comes from: ``index`` is the 0-based frame number inside ``path``.

    For HDF5 files ``dataset`` is the HDF5 path of the dataset holding the frame; in Eiger
    master files ``index`` counts through all ``data_NNNNNN`` datasets of the file.
    """

    path: Path
    index: int
    dataset: str | None = None


@dataclass(frozen=True)
class _Source:
    """One file: its reader ``kind``, frame count, frame shape and stored dtype."""

    path: Path
    kind: str  # "hdf5", "npy", "tiff" (TiffIO), "pil", "fabio"
    nframes: int
    shape: tuple[int, int]
    dtype: np.dtype
    parts: tuple[tuple[str, int, int], ...] = ()  # HDF5: (dataset path, frames, ndim)

    def locate(self, index: int) -> tuple[str | None, int, int]:
        """Frame ``index`` of the file → (dataset, its ndim, index inside that dataset)."""
        for name, count, ndim in self.parts:
            if index < count:
                return name, ndim, index
            index -= count
        return None, 0, index


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if not text and isinstance(exc, AssertionError):  # fabio's decoders check with assert
        return "its data do not decode (corrupt or cut)"
    return text or type(exc).__name__


def _natural_key(path: Path) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(path)))


def _expand(inputs: Sequence[str | Path]) -> list[Path]:
    """File names and glob patterns → existing files, deduplicated, in natural order."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            raise NxgidError(f"{item}: is a directory, expected an image file or a pattern")
        if path.exists():
            found.append(path)  # a pipe or a device is refused by _probe
        elif any(c in str(item) for c in "*?["):
            hits = [Path(h) for h in glob.glob(str(path), recursive=True) if Path(h).is_file()]
            if not hits:
                raise MissingError(f"{item}: no file matches this pattern")
            found.extend(hits)
        else:
            raise MissingError(f"{item}: no such file")
    unique: dict[Path, Path] = {}
    for path in sorted(found, key=_natural_key):
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def parse_frames(text: str, nframes: int) -> list[int]:
    """A frame selection (0-based, Python-slice-like, steps > 0) → frame numbers in order.

    Explicit indices and slice bounds must lie within the series (negative ones count
    from the end); a frame may be selected only once.
    """
    chosen: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        fields = item.split(":")
        try:
            if len(fields) > 3 or not item:
                raise ValueError
            values = [int(f) if f.strip() else None for f in fields]
        except ValueError:
            raise NxgidError(f"frame selection {text!r}: {item!r} is not {_FRAMES_FORM}") \
                from None
        # an index must name a frame; a slice bound may also be the end of the series
        last = nframes - 1 if len(values) == 1 else nframes
        for value in values[:2]:
            if value is not None and not -nframes <= value <= last:
                raise NxgidError(f"frame selection {text!r}: {value} is out of range; the "
                                 f"series has {nframes} frames (0 to {nframes - 1})")
        if len(values) == 1:
            chosen.append(values[0] % nframes)
            continue
        step = values[2] if len(values) == 3 and values[2] is not None else 1
        if step <= 0:
            raise NxgidError(f"frame selection {text!r}: step {step} in {item!r} must be > 0")
        chosen.extend(range(*slice(values[0], values[1], step).indices(nframes)))
    if not chosen:
        raise NxgidError(f"frame selection {text!r} selects no frames of {nframes}")
    if len(set(chosen)) != len(chosen):
        twice = next(i for i in chosen if chosen.count(i) > 1)
        raise NxgidError(f"frame selection {text!r} selects frame {twice} more than once")
    return chosen


# --- probing: frame count, shape and dtype from headers ---------------------------------


def _guarded(path: Path, function, *args):
    """``function(*args)`` for a third-party reader of *path*: in a thread with a
    deadline (:mod:`nxgid.safety.deadline`), the errors the library logs meanwhile turned
    into one error naming the file instead of its silent repair."""
    def run():
        with library_errors() as errors:
            try:
                value = function(*args)
            except StopIteration:
                raise NxgidError(f"{path}: holds fewer frames than its header says") \
                    from None
        if errors:
            raise DamagedFileError(f"{path}: {errors[0]}")
        return value
    return call_with_deadline(run, what=str(path))


def _probe(path: Path, dataset: str | None) -> _Source:
    check_regular_file(path, "an image file")
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            count = array.shape[0] if array.ndim == 3 else 1
            return _checked(path, "npy", count, array.shape, array.dtype)
        if path.suffix.lower() in HDF5_SUFFIXES or h5py.is_hdf5(path):
            return _probe_hdf5(path, dataset)
        with open(path, "rb") as stream:
            head = stream.read(16)
        if looks_like_cbf(path, head):
            check_cbf(path)
        elif looks_like_edf(path, head):
            check_edf_header(path)
        return _guarded(path, _probe_fabio, path)
    except NxgidError:
        raise
    except Exception as exc:
        raise NxgidError(f"{path}: cannot be read as an image: {_one_line(exc)}") from exc


def _checked(path: Path, kind: str, count: int, shape: tuple, dtype: np.dtype,
             parts: tuple = ()) -> _Source:
    if len(shape) not in (2, 3) or (len(shape) == 3 and kind not in ("npy", "hdf5")):
        raise NxgidError(f"{path}: holds an array of shape {tuple(shape)}, expected "
                         "(rows, cols) or (frames, rows, cols)")
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise NxgidError(f"{path}: holds {dtype} values, expected numbers")
    rows, cols = (int(n) for n in shape[-2:])
    return _Source(path, kind, int(count), (rows, cols), dtype.newbyteorder("="), parts)


def _probe_fabio(path: Path) -> _Source:
    try:
        head = fabio.openheader(str(path))
    except Exception:  # let fabio.open below report what is wrong
        head = None
    if isinstance(head, TifImage):
        with TiffIO(str(path), cache_length=0) as tif:
            count, info = tif.getNumberOfImages(), tif.getInfo(0)
        bits, kind = info["nBits"], _TIFF_KINDS.get(info["sampleFormat"])
        if not isinstance(bits, int) or kind is None or info["colormap"] is not None:
            raise NxgidError(f"{path}: is a colour TIFF, expected a grey-scale detector image")
        if not info["compression"]:
            return _checked(path, "tiff", count, (info["nRows"], info["nColumns"]),
                            np.dtype(f"{kind}{bits // 8}"))
        from PIL import Image  # compressed TIFF: decode the first page for its dtype

        with Image.open(path) as image:
            first = np.asarray(image)
            return _checked(path, "pil", getattr(image, "n_frames", 1), first.shape,
                            first.dtype)
    if isinstance(head, EdfImage):
        check_edf_frames(path, head)
        frames = [head.get_frame(i) for i in range(head.nframes)]  # headers only
        dtype = np.result_type(*(frame.dtype for frame in frames))  # shapes: checked on read
        return _checked(path, "fabio", len(frames), frames[0].shape, dtype)
    if isinstance(head, CbfImage) and getattr(head, "_dtype", None) is not None:
        return _checked(path, "fabio", 1, head.shape, head._dtype)
    with fabio.open(str(path)) as image:  # other formats: decodes the first frame
        return _checked(path, "fabio", image.nframes, image.shape, image.dtype)


def _size(shape: tuple) -> str:
    return "×".join(str(n) for n in shape)


def _probe_hdf5(path: Path, dataset: str | None) -> _Source:
    with h5py.File(path, "r") as f:  # read-only: raw data is never written
        if dataset is not None:
            names = [posixpath.join("/", dataset)]
            if _dataset(f, path, names[0]) is None:
                raise MissingError(f"{path}: no dataset {names[0]!r} in this file")
        elif not (names := _find_datasets(f, path)):
            raise NxgidError(f"{path}: no detector dataset found (NeXus @default signal, "
                             "NXdetector/data, /entry/data/data[_NNNNNN], any 2-D/3-D numeric "
                             "dataset); name it explicitly (--dataset)")
        parts, dtypes, shape = [], [], None
        for name in names:
            ds = _dataset(f, path, name)
            if ds.ndim not in (2, 3) or ds.dtype.kind not in "biuf":
                raise NxgidError(f"{path}: dataset {name} holds {ds.dtype} of shape {ds.shape},"
                                 " expected numbers of shape (rows, cols) or (frames, rows, cols)")
            if shape is not None and ds.shape[-2:] != shape:
                raise NxgidError(f"{path}: dataset {name} has {_size(ds.shape[-2:])}-pixel "
                                 f"frames, expected {_size(shape)} like {names[0]}")
            shape = ds.shape[-2:]
            parts.append((name, ds.shape[0] if ds.ndim == 3 else 1, ds.ndim))
            dtypes.append(ds.dtype)
    count = sum(n for _, n, _ in parts)
    return _checked(path, "hdf5", count, shape, np.result_type(*dtypes), tuple(parts))


def _dataset(f: h5py.File, path: Path, name: str) -> h5py.Dataset | None:
    """The dataset at ``name``, None if absent; MissingError for a dangling external link."""
    parent_name, leaf = posixpath.split(posixpath.join("/", name).rstrip("/"))
    parent = f.get(parent_name)
    if not isinstance(parent, h5py.Group) or not leaf:
        return None
    link = parent.get(leaf, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        target = path.parent / link.filename
        if not target.exists():
            raise MissingError(f"{path}: {name} links to {target}, which does not exist")
        try:
            obj = parent[leaf]
        except (KeyError, OSError):
            raise NxgidError(f"{path}: {name} links to {link.path} in {target}, which "
                             "cannot be opened (not an HDF5 file, or no such dataset "
                             "there)") from None
        return obj if isinstance(obj, h5py.Dataset) else None
    obj = parent.get(leaf)
    return obj if isinstance(obj, h5py.Dataset) else None


def _attr(obj: h5py.HLObject, key: str) -> str | None:
    value = obj.attrs.get(key)
    value = value.item() if isinstance(value, np.ndarray) and value.size == 1 else value
    value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None if value is None else str(value)


def _find_datasets(f: h5py.File, path: Path) -> list[str] | None:
    """The detector dataset(s) of a file; the first of these that holds numbers in ≥ 2-D:
    NeXus @default chain → NXdata @signal; the first NXdetector's ``data``;
    ``/entry/data/data``; all ``/entry/data/data_NNNNNN``; the largest 2-D/3-D dataset."""

    def frames(names: list[str]) -> list[str] | None:
        datasets = [_dataset(f, path, name) for name in names]
        ok = all(ds is not None and ds.ndim >= 2 and ds.dtype.kind in "biuf" for ds in datasets)
        return names if names and ok else None

    group: h5py.Group = f
    for _ in range(4):  # root → entry → (subentry) → NXdata
        if _attr(group, "NX_class") == "NXdata" and (signal := _attr(group, "signal")):
            if found := frames([posixpath.join(group.name, signal)]):
                return found
            break
        default = _attr(group, "default")
        child = group.get(default) if default else None
        if not isinstance(child, h5py.Group) or child.name == group.name:
            break
        group = child
    detectors: list[str] = []
    f.visititems(lambda name, obj: detectors.append(f"/{name}/data") or True
                 if isinstance(obj, h5py.Group) and _attr(obj, "NX_class") == "NXdetector"
                 and "data" in obj else None)  # True stops the visit at the first detector
    if found := frames(detectors) or frames(["/entry/data/data"]):
        return found
    eiger = f.get("/entry/data")
    if isinstance(eiger, h5py.Group) and (found := frames(
            [f"/entry/data/{k}" for k in sorted(eiger) if _EIGER_PART.fullmatch(k)])):
        return found
    sizes: list[tuple[int, str]] = []
    f.visititems(lambda name, obj: sizes.append((obj.size, f"/{name}"))
                 if isinstance(obj, h5py.Dataset) and obj.ndim in (2, 3)
                 and obj.dtype.kind in "biuf" else None)
    return [max(sizes)[1]] if sizes else None


# --- reading -------------------------------------------------------------------------


def _frames_hdf5(source: _Source, indices: list[int]) -> Iterator[np.ndarray]:
    """HDF5 frames; consecutive ones are read together, up to one chunk (≤ _RUN_BYTES)."""
    with h5py.File(source.path, "r") as f:
        pos = 0
        while pos < len(indices):
            name, ndim, first = source.locate(indices[pos])
            ds = f[name]
            if ndim == 2:
                yield ds[()]
                pos += 1
                continue
            limit = min(ds.chunks[0] if ds.chunks else 1,
                        _RUN_BYTES // max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:]))))
            run = 1
            while (run < limit and pos + run < len(indices) and first + run < len(ds)
                   and indices[pos + run] == indices[pos] + run):
                run += 1
            yield from ds[first:first + run]
            pos += run


def _frames(source: _Source, indices: list[int]) -> Iterator[np.ndarray]:
    """Frames ``indices`` of one file as stored; the file is open only while iterating."""
    if source.kind == "hdf5":
        yield from _frames_hdf5(source, indices)
    elif source.kind == "npy":
        array = np.load(source.path, mmap_mode="r", allow_pickle=False)
        for index in indices:
            yield np.array(array if array.ndim == 2 else array[index])
    elif source.kind == "tiff":
        with TiffIO(str(source.path), cache_length=0) as tif:  # no cache of decoded pages
            for index in indices:
                yield tif.getData(index)
    elif source.kind == "pil":
        from PIL import Image

        with Image.open(source.path) as image:
            for index in indices:
                image.seek(index)
                yield np.array(image)
    else:
        with fabio.open(str(source.path)) as image:
            for index in indices:
                frame = image.get_frame(index)
                data = frame.data
                frame.data = None  # EdfImage would keep every decoded frame
                yield data


def _close(frames: Iterator[np.ndarray]) -> None:
    with contextlib.suppress(ValueError):  # still running in an abandoned reader thread
        frames.close()  # type: ignore[attr-defined]


def _read(source: _Source, indices: list[int]) -> Iterator[np.ndarray]:
    """:func:`_frames` with one-line errors and a check of every frame's shape; frames
    of fabio, TIFF and PIL files are read under a deadline (see :func:`_guarded`)."""
    frames = _frames(source, indices)
    guarded = source.kind in ("fabio", "tiff", "pil")
    try:
        for index in indices:
            try:
                frame = _guarded(source.path, next, frames) if guarded else next(frames)
            except NxgidError:
                raise
            except Exception as exc:
                raise NxgidError(f"{source.path}: cannot read frame {index}: "
                                 f"{_one_line(exc)}") from exc
            if frame.shape != source.shape:
                raise NxgidError(f"{source.path}: frame {index} is {_size(frame.shape)} "
                                 f"pixels, expected {_size(source.shape)}")
            yield frame
    finally:
        _close(frames)


class ImageSeries:
    """The selected frames of a list of image files, read lazily; see :func:`open_series`.

    ``len()`` is the number of selected frames, ``shape`` the (rows, cols) frame shape,
    ``dtype`` the stored pixel type (promoted over files); every frame returned has it.
    """

    def __init__(self, sources: Sequence[_Source], selection: Sequence[int] | None = None):
        self._sources = list(sources)
        starts = np.cumsum([0] + [s.nframes for s in self._sources])
        total = int(starts[-1])
        chosen = range(total) if selection is None else selection
        where = np.searchsorted(starts, chosen, side="right") - 1
        self._frames = [(int(w), int(i - starts[w])) for w, i in zip(where, chosen, strict=True)]
        self.shape: tuple[int, int] = self._sources[0].shape
        self.dtype: np.dtype = np.result_type(*(s.dtype for s in self._sources))

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def files(self) -> list[Path]:
        """The files of the series, in order (including files with no selected frame)."""
        return [s.path for s in self._sources]

    @property
    def file_dtypes(self) -> dict[Path, np.dtype]:
        """The pixel type stored in each file (``dtype`` promotes over them)."""
        return {s.path: s.dtype for s in self._sources}

    def skip(self, frames: int) -> ImageSeries:
        """The series without its first *frames* selected frames (no header re-read)."""
        if frames == 0:
            return self
        starts = np.cumsum([0] + [s.nframes for s in self._sources])
        return ImageSeries(self._sources,
                           [int(starts[w]) + i for w, i in self._frames[frames:]])

    @property
    def origins(self) -> list[FrameOrigin]:
        """Where each selected frame comes from, in order."""
        return [self._origin(w, i) for w, i in self._frames]

    def _origin(self, which: int, index: int) -> FrameOrigin:
        source = self._sources[which]
        return FrameOrigin(source.path, index, source.locate(index)[0])

    def iter_frames(self) -> Iterator[tuple[np.ndarray, FrameOrigin]]:
        """Yield (frame (rows, cols), origin) for each selected frame, one file open at a time."""
        for which, run in itertools.groupby(self._frames, key=lambda item: item[0]):
            indices = [index for _, index in run]
            with contextlib.closing(_read(self._sources[which], indices)) as frames:
                for frame, index in zip(frames, indices, strict=True):
                    yield frame.astype(self.dtype, copy=False), self._origin(which, index)

    def iter_blocks(self, block_frames: int) -> Iterator[tuple[np.ndarray, list[FrameOrigin]]]:
        """Yield (stack (k, rows, cols), origins) with 1 ≤ k ≤ ``block_frames``, in order."""
        if block_frames < 1:
            raise ValueError(f"block_frames must be ≥ 1, got {block_frames}")
        stack, origins, left = None, [], len(self)
        for frame, origin in self.iter_frames():
            if stack is None:
                stack = np.empty((min(block_frames, left), *self.shape), self.dtype)
            stack[len(origins)] = frame
            origins.append(origin)
            if len(origins) == len(stack):
                yield stack, origins
                stack, origins, left = None, [], left - len(origins)

    def read(self, i: int) -> np.ndarray:
        """Selected frame ``i`` (negative counts from the end; IndexError past the end)."""
        which, index = self._frames[i]
        with contextlib.closing(_read(self._sources[which], [index])) as frames:
            return next(frames).astype(self.dtype, copy=False)

    def mean(self) -> np.ndarray:
        """Mean of the selected frames, float64 (rows, cols), accumulated frame by frame."""
        total = np.zeros(self.shape, dtype=np.float64)
        for frame, _ in self.iter_frames():
            total += frame
        return total / len(self)


def open_series(inputs: Sequence[str | Path], *, dataset: str | None = None,
                frames: str | None = None) -> ImageSeries:
    """Files/glob patterns → an :class:`ImageSeries`; only headers are read here.

    ``dataset`` is the HDF5 path used in HDF5 files (ignored for other formats);
    ``frames`` selects frames of the concatenated series (see :func:`parse_frames`).
    """
    paths = _expand(inputs)
    if not paths:
        raise MissingError("no image files given")
    sources = [_probe(path, dataset) for path in paths]
    for source in sources[1:]:
        if source.shape != sources[0].shape:
            raise NxgidError(f"{source.path}: frames are {_size(source.shape)} pixels "
                             f"(rows×cols), expected {_size(sources[0].shape)} like "
                             f"{sources[0].path}")
    total = sum(s.nframes for s in sources)
    if total == 0:
        raise NxgidError(f"{paths[0]}: the files hold no frames")
    selection = parse_frames(frames, total) if frames is not None else None
    return ImageSeries(sources, selection)


def read_image(path: str | Path, *, dataset: str | None = None,
               reduce: str | None = "mean") -> np.ndarray:
    """One 2-D (rows, cols) image: a single frame as stored, or the float64 mean of a
    multi-frame file (``reduce="mean"``; ``reduce=None`` makes that an error)."""
    if reduce not in ("mean", None):
        raise ValueError(f"reduce must be 'mean' or None, got {reduce!r}")
    path = Path(path).expanduser()
    series = ImageSeries([_probe(path, dataset)])  # _probe refuses what is not a file
    if len(series) == 0:
        raise NxgidError(f"{path}: holds no frames, expected an image")
    if len(series) == 1:
        return series.read(0)
    if reduce is None:
        raise NxgidError(f"{path}: holds {len(series)} frames, expected a single image")
    return series.mean()
