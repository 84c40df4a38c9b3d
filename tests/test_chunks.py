"""Frames compressed in threads and written as whole chunks read back exactly, through
HDF5's own shuffle + deflate filters (what every reader uses)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from nxgid.nexus.chunks import _level, grow_frames


def _dataset(f, name, frame_shape, dtype=np.float32, **options):
    return f.create_dataset(name, shape=(0, *frame_shape), maxshape=(None, *frame_shape),
                            chunks=(1, *frame_shape), dtype=dtype, **options)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint16])
def test_direct_chunks_read_back_exactly(tmp_path, dtype):
    rng = np.random.default_rng(2)
    frames = (rng.poisson(30, (5, 37, 53)) * 1.5).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        frames[:, :4] = np.nan  # empty bins
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        data = _dataset(f, "maps", frames.shape[1:], dtype, compression="gzip",
                        compression_opts=1, shuffle=True)
        assert _level(data) == 1  # the direct path applies
        grow_frames(data, frames[:3])
        grow_frames(data, frames[3:])
    with h5py.File(path, "r") as f:
        back = f["maps"][()]
        assert f["maps"].id.get_chunk_info(0).filter_mask == 0
        stored = sum(f["maps"].id.get_chunk_info(i).size for i in range(5))
    assert np.array_equal(back, frames, equal_nan=np.issubdtype(dtype, np.floating))
    assert stored < frames.nbytes  # really compressed


def test_other_layouts_take_the_ordinary_path(tmp_path):
    frames = np.arange(2 * 6 * 4, dtype=np.float32).reshape(2, 6, 4)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        plain = _dataset(f, "plain", (6, 4))
        lz = f.create_dataset("two", shape=(0, 6, 4), maxshape=(None, 6, 4),
                              chunks=(2, 6, 4), compression="gzip", dtype=np.float32)
        checked = _dataset(f, "checked", (6, 4), compression="gzip", shuffle=True,
                           fletcher32=True)
        for dataset in (plain, lz, checked):
            assert _level(dataset) is None
            grow_frames(dataset, frames)
            assert np.array_equal(dataset[()], frames)
