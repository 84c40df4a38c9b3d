"""Raw detector frames as stored, for ``nxgid plot`` of an image file, a raw stack or a
scan entry, and the ``pixel_mask`` bits a NeXus file carries for its detector."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nxgid.errors import MissingError, NxgidError
from nxgid.names import PIXEL_MASK_USER


@dataclass
class FrameView:
    image: np.ndarray
    #: ``pixel_mask`` bits to draw over it (None: no mask asked for).
    bits: np.ndarray | None
    #: What the picture shows, e.g. "frame 2 of film_s001.nxs:/f1/data/data".
    label: str


def _nx_class(group) -> str:
    value = group.attrs.get("NX_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def pixel_masks(path: Path) -> dict[str, np.ndarray]:
    """Every NXdetector ``pixel_mask`` of an HDF5 file, by HDF5 path (empty if none or
    if the file is not HDF5)."""
    import h5py

    path = Path(path)
    if not (path.is_file() and h5py.is_hdf5(path)):
        return {}
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if (isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1] == "pixel_mask"
                    and _nx_class(obj.parent) == "NXdetector"):
                found[name] = obj[()]
        f.visititems(visit)
    return found


def scan_entries(path: Path) -> list[str]:
    """The NXentry groups of a NeXus file that link or hold raw frames at
    ``data/data`` (the entries f1, f2… of a scan file), in file order."""
    import h5py

    if not h5py.is_hdf5(path):
        return []
    with h5py.File(path, "r") as f:
        return [name for name, group in f.items()
                if isinstance(group, h5py.Group) and _nx_class(group) == "NXentry"
                and "data" in group and isinstance(group["data"], h5py.Group)
                and "data" in group["data"]]


def load_frame(path: Path, *, entry: str | None = None, frame: int | None = None,
               mask: str | None = None) -> FrameView:
    """One raw frame (or the mean of all, *frame* None) of an image file, a raw stack
    or a scan file's entry (*entry*, default its first), with the mask asked for: None,
    ``"file"`` (the pixel_mask the file itself carries for that entry) or a mask file
    (a NeXus file with a pixel_mask, or an image: non-zero = masked)."""
    from nxgid.images.series import open_series, read_image

    path = Path(path)
    entries = scan_entries(path) if path.is_file() else []
    dataset = None
    if entries:
        entry = entry or entries[0]
        if entry not in entries:
            raise MissingError(f"{path}: no entry {entry!r} with frames; entries: "
                               f"{', '.join(entries)}")
        dataset = f"/{entry}/data/data"
    elif entry is not None:
        raise NxgidError(f"{path}: --entry {entry!r} names an entry of a scan file or of "
                         "converted results; this file holds raw frames only")
    series = open_series([path], dataset=dataset)
    where = f"{path.name}:{dataset}" if dataset else path.name
    if frame is None:
        image = series.read(0) if len(series) == 1 else series.mean()
        label = where if len(series) == 1 else f"mean of {len(series)} frames of {where}"
    else:
        if not -len(series) <= frame < len(series):
            raise NxgidError(f"--frame {frame}: {where} has {len(series)} frame(s)")
        index = frame % len(series)
        image, label = series.read(index), f"frame {index} of {where}"
    bits = None
    if mask == "file":
        masks = pixel_masks(path)
        key = next((k for k in masks if entry and k.startswith(f"{entry}/")), None) \
            or next(iter(masks), None)
        if key is None:
            raise MissingError(f"{path}: carries no NXdetector pixel_mask; give --mask "
                               "MASKFILE (a configuration, a scan file or a mask image)")
        bits = masks[key]
    elif mask is not None:
        masks = pixel_masks(Path(mask))
        if masks:
            bits = next(iter(masks.values()))
        else:
            given = np.asarray(read_image(mask))
            bits = np.where(given != 0, PIXEL_MASK_USER, 0).astype(np.int32)
    if bits is not None and np.shape(bits) != image.shape:
        raise NxgidError(f"{mask if mask != 'file' else path}: the mask is "
                         f"{'×'.join(map(str, np.shape(bits)))} pixels, the frames "
                         f"{'×'.join(map(str, image.shape))} (rows×cols)")
    return FrameView(np.asarray(image), bits, label)
