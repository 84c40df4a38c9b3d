"""Whole-frame chunks compressed in threads and written directly.

HDF5 runs its filters (shuffle, deflate) in the writing thread, one chunk after the
other, under the library's lock: with gzip, the default every reader has, that was
most of the time of a conversion (docs/performance.md: 115 ms a frame of which 100 ms
writing, for a Pilatus 2M q map with errors).
Here the frames of a block are shuffled and deflated in a thread pool — zlib and ISA-L
release the GIL — and each compressed chunk is handed to HDF5 with ``H5Dwrite_chunk``,
which skips the pipeline. The bytes are what HDF5's own shuffle + deflate filters read
back: the same stream format, so every reader decodes them.

ISA-L (``isal``) deflates faster than zlib at the same level, into a stream zlib reads
(measured: that conversion 70.6 ms a frame with zlib in threads, 38.0 with ISA-L);
without it the standard library's zlib is used.
"""

from __future__ import annotations

import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

try:  # ISA-L's zlib-compatible deflate
    from isal import isal_zlib as _deflate_module
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _deflate_module = zlib


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1),
                              thread_name_prefix="nxgid-deflate")


def _level(dataset) -> int | None:
    """The deflate level when *dataset* is chunked one frame per chunk with exactly
    shuffle + deflate (what the direct path writes), else None."""
    chunks = dataset.chunks
    if chunks is None or chunks[0] != 1 or tuple(chunks[1:]) != tuple(dataset.shape[1:]):
        return None
    if dataset.compression != "gzip" or not dataset.shuffle or dataset.fletcher32 \
            or dataset.scaleoffset is not None:
        return None
    plist = dataset.id.get_create_plist()
    if plist.get_nfilters() != 2:  # shuffle and deflate, nothing else
        return None
    return int(dataset.compression_opts)


def _shuffled_deflate(frame: np.ndarray, level: int) -> bytes:
    """HDF5's shuffle filter (byte *k* of every element together) then deflate."""
    frame = np.ascontiguousarray(frame)
    size = frame.dtype.itemsize
    raw = frame.view(np.uint8).reshape(-1, size).T.tobytes() if size > 1 else frame.tobytes()
    return _deflate_module.compress(raw, level)


def grow_frames(dataset, values: np.ndarray) -> None:
    """Append *values* (frames × the dataset's frame shape) to *dataset*: compressed in
    threads and written chunk by chunk when the dataset allows it, else through h5py."""
    values = np.asarray(values, dtype=dataset.dtype)
    start = dataset.shape[0]
    level = _level(dataset)
    dataset.resize(start + values.shape[0], axis=0)
    if level is None or values.shape[0] == 0:
        dataset[start:] = values
        return
    zeros = (0,) * (values.ndim - 1)
    pending = [_pool().submit(_shuffled_deflate, frame, level) for frame in values]
    for index, future in enumerate(pending):
        dataset.id.write_direct_chunk((start + index, *zeros), future.result())
