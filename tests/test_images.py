"""Reading detector frames from image files: nxgid.images.series."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import fabio
import h5py
import hdf5plugin
import numpy as np
import pytest
from fabio.cbfimage import CbfImage
from fabio.edfimage import EdfImage
from fabio.TiffIO import TiffIO

from nxgid.errors import MissingError, NxgidError
from nxgid.images.series import FrameOrigin, ImageSeries, open_series, parse_frames, read_image

SHAPE = (6, 8)  # rows, cols


def frame(i: int, dtype=np.float32) -> np.ndarray:
    """Frame ``i``: value i + a ramp along the columns, distinct for every frame."""
    return (np.full(SHAPE, i) + np.arange(SHAPE[1]) / 10).astype(dtype)


def write_edf(path: Path, values: list[int], dtype=np.float32) -> Path:
    image = EdfImage(data=frame(values[0], dtype))
    for i in values[1:]:
        image.append_frame(data=frame(i, dtype))
    image.write(str(path))
    return path


def write_tiff(path: Path, values: list[int], dtype=np.uint16) -> Path:
    """A (multi-page) TIFF written with fabio's TiffIO: 'wb+' creates, 'rb+' appends."""
    for n, i in enumerate(values):
        with TiffIO(str(path), mode="rb+" if n else "wb+") as tif:
            tif.writeImage(frame(i, np.float64).round().astype(dtype) + i)
    return path


def write_h5(path: Path, values: list[int], name: str = "entry/data/data") -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset(name, data=np.stack([frame(i, np.uint32) + i for i in values]),
                         chunks=(1, *SHAPE), **hdf5plugin.Bitshuffle(cname="lz4"))
    return path


def stamp(paths: list[Path]) -> list[tuple[int, str]]:
    return [(p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]


def all_frames(series: ImageSeries) -> list[np.ndarray]:
    return [f for f, _ in series.iter_frames()]


# --- fabio formats ----------------------------------------------------------------------


def test_multiframe_edf_reads_every_frame_in_order(tmp_path: Path) -> None:
    path = write_edf(tmp_path / "stack.edf", [0, 1, 2, 3, 4])
    series = open_series([path])
    assert len(series) == 5 and series.shape == SHAPE and series.dtype == np.float32
    frames = all_frames(series)
    for i, data in enumerate(frames):
        np.testing.assert_array_equal(data, frame(i))
    assert series.origins == [FrameOrigin(path, i) for i in range(5)]
    np.testing.assert_array_equal(series.read(3), frame(3))
    np.testing.assert_allclose(series.mean(), np.mean([frame(i) for i in range(5)], axis=0))


def test_multipage_tiff_reads_every_page(tmp_path: Path) -> None:
    path = write_tiff(tmp_path / "pages.tif", [0, 1, 2])
    assert fabio.open(str(path)).nframes == 3  # fabio sees the three pages too
    series = open_series([path])
    assert len(series) == 3 and series.dtype == np.uint16
    for i, data in enumerate(all_frames(series)):
        np.testing.assert_array_equal(data, frame(i, np.float64).round().astype(np.uint16) + i)


@pytest.mark.parametrize("compression", ["tiff_lzw", "packbits"])
def test_compressed_multipage_tiff_reads_every_page(tmp_path: Path, compression: str) -> None:
    """fabio reads only the first page of LZW TIFFs and decodes 16-bit PackBits wrongly."""
    from PIL import Image

    pages = [(frame(i, np.float64) * 100).astype(np.uint16) for i in range(3)]
    images = [Image.fromarray(p) for p in pages]
    path = tmp_path / "packed.tif"
    images[0].save(path, save_all=True, append_images=images[1:], compression=compression)
    series = open_series([path])
    assert len(series) == 3 and series.dtype == np.uint16
    for data, page in zip(all_frames(series), pages, strict=True):
        np.testing.assert_array_equal(data, page)


def test_cbf_holds_one_frame(tmp_path: Path) -> None:
    """fabio's CbfImage reads one binary section: a .cbf file is one frame (as detectors
    write them); a series of CBF files is the usual multi-frame case."""
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"scan_{i + 1}.cbf")
        CbfImage(data=frame(i, np.int32) * 7).write(str(paths[-1]))
    assert fabio.open(str(paths[0])).nframes == 1
    series = open_series([str(tmp_path / "scan_*.cbf")])
    assert len(series) == 3 and series.dtype == np.int32
    for i, data in enumerate(all_frames(series)):
        np.testing.assert_array_equal(data, frame(i, np.int32) * 7)


def test_unreadable_file_is_a_one_line_error(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image\n" * 20)
    with pytest.raises(NxgidError, match=r"notes\.txt: cannot be read as an image: "):
        open_series([junk])
    with pytest.raises(NxgidError, match=r"notes\.txt: cannot be read as an image: "):
        read_image(junk)


# --- HDF5 / NeXus -----------------------------------------------------------------------


def test_bitshuffle_lz4_stack_reads_back_exactly(tmp_path: Path) -> None:
    path = write_h5(tmp_path / "stack.h5", list(range(7)))
    with h5py.File(path, "r") as f:
        plist = f["entry/data/data"].id.get_create_plist()
        assert [plist.get_filter(i)[0] for i in range(plist.get_nfilters())] == [32008]
    series = open_series([path])
    assert len(series) == 7 and series.dtype == np.uint32
    for i, (data, origin) in enumerate(series.iter_frames()):
        np.testing.assert_array_equal(data, frame(i, np.uint32) + i)
        assert origin == FrameOrigin(path, i, "/entry/data/data")


def make_eiger(tmp_path: Path) -> Path:
    """A Dectris-like master file: /entry/data/data_00000N → external data files."""
    master = tmp_path / "scan_master.h5"
    for n, values in ((1, [0, 1, 2]), (2, [3, 4])):
        write_h5(tmp_path / f"scan_data_00000{n}.h5", values)
    with h5py.File(master, "w") as f:
        f.create_group("entry/instrument/detector").attrs["NX_class"] = "NXdetector"
        f["entry/instrument/detector/x_pixel_size"] = 75e-6
        group = f.create_group("entry/data")
        group.attrs["NX_class"] = "NXdata"
        for n in (1, 2):
            group[f"data_00000{n}"] = h5py.ExternalLink(f"scan_data_00000{n}.h5",
                                                        "/entry/data/data")
    return master


def test_hdf5_multi_frame_chunks_and_2d_datasets(tmp_path: Path) -> None:
    """Consecutive frames are read a chunk at a time; any selection gives the right frames."""
    path = tmp_path / "chunky.h5"
    data = np.stack([frame(i, np.uint32) + i for i in range(10)])
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", data=data, chunks=(4, *SHAPE),
                         **hdf5plugin.Bitshuffle(cname="lz4"))
    for frames in ("1:9", "::3", "9,2,3,4,0", "-1"):
        picked = parse_frames(frames, 10)
        series = open_series([path], frames=frames)
        np.testing.assert_array_equal(np.stack(all_frames(series)), data[picked])
        assert [o.index for o in series.origins] == picked


def test_eiger_master_concatenates_its_data_files(tmp_path: Path) -> None:
    master = make_eiger(tmp_path)
    series = open_series([master])
    assert series.files == [master] and len(series) == 5
    for i, data in enumerate(all_frames(series)):
        np.testing.assert_array_equal(data, frame(i, np.uint32) + i)
    assert [(o.index, o.dataset) for o in series.origins] == [
        (0, "/entry/data/data_000001"), (1, "/entry/data/data_000001"),
        (2, "/entry/data/data_000001"), (3, "/entry/data/data_000002"),
        (4, "/entry/data/data_000002")]
    picked = open_series([master], frames="2:4")
    np.testing.assert_array_equal(np.stack(all_frames(picked)),
                                  np.stack([frame(i, np.uint32) + i for i in (2, 3)]))


def test_eiger_missing_data_file_is_named(tmp_path: Path) -> None:
    master = make_eiger(tmp_path)
    (tmp_path / "scan_data_000002.h5").unlink()
    with pytest.raises(MissingError, match=r"scan_data_000002\.h5"):
        open_series([master])


def make_nexus(path: Path) -> Path:
    """NeXus file: @default chain to a 3-D signal, plus a larger 1-D decoy and 2-D junk."""
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs.update(NX_class="NXentry", default="plot")
        plot = entry.create_group("plot")
        plot.attrs.update(NX_class="NXdata", signal="counts")
        plot["counts"] = np.stack([frame(i, np.float64) for i in range(3)])
        entry["decoy"] = np.arange(100_000, dtype=np.float64)
        entry["big_2d"] = np.zeros((50, 50))
        entry["other"] = np.stack([frame(10, np.float64)] * 2)
    return path


def test_nexus_default_chain_finds_the_signal(tmp_path: Path) -> None:
    path = make_nexus(tmp_path / "sample.nxs")
    series = open_series([path])
    assert len(series) == 3 and series.origins[0].dataset == "/entry/plot/counts"
    np.testing.assert_array_equal(series.read(-1), frame(2, np.float64))
    explicit = open_series([path], dataset="/entry/other")
    assert len(explicit) == 2 and explicit.origins[1] == FrameOrigin(path, 1, "/entry/other")
    with pytest.raises(MissingError, match=r"sample\.nxs: no dataset '/entry/nothing'"):
        open_series([path], dataset="/entry/nothing")
    with pytest.raises(NxgidError, match=r"/entry/decoy holds float64 of shape \(100000,\)"):
        open_series([path], dataset="entry/decoy")


def test_hdf5_fallbacks_detector_then_largest(tmp_path: Path) -> None:
    detector = tmp_path / "detector.h5"
    with h5py.File(detector, "w") as f:
        f["entry/instrument/pilatus/data"] = np.stack([frame(i) for i in range(2)])
        f["entry/instrument/pilatus"].attrs["NX_class"] = b"NXdetector"
        f["entry/zzz/bigger"] = np.zeros((4, *SHAPE))
    assert open_series([detector]).origins[0].dataset == "/entry/instrument/pilatus/data"
    plain = tmp_path / "plain.hdf"
    with h5py.File(plain, "w") as f:
        f["a/small"] = np.zeros((3, 4))
        f["b/image"] = frame(4)  # 2-D: one frame, the largest 2-D/3-D dataset
        f["b/image_big_1d"] = np.zeros(10_000)
    series = open_series([plain])
    assert len(series) == 1 and series.origins == [FrameOrigin(plain, 0, "/b/image")]
    np.testing.assert_array_equal(read_image(plain), frame(4))


def test_hdf5_without_image_data_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "log.h5"
    with h5py.File(path, "w") as f:
        f["entry/temperature"] = np.arange(10.0)
    with pytest.raises(NxgidError, match=r"log\.h5: no detector dataset found"):
        open_series([path])


# --- series: globs, selections, shapes, blocks ----------------------------------------


def test_glob_natural_order_and_duplicates(tmp_path: Path) -> None:
    for n in (10, 2, 1):
        write_edf(tmp_path / f"img_{n}.edf", [n])
    series = open_series([str(tmp_path / "img_*.edf"), tmp_path / "img_2.edf"])
    assert series.files == [tmp_path / f"img_{n}.edf" for n in (1, 2, 10)]
    assert [float(f[0, 0]) for f in all_frames(series)] == [1.0, 2.0, 10.0]
    with pytest.raises(MissingError, match=r"nope_\*\.edf: no file matches"):
        open_series([str(tmp_path / "nope_*.edf")])
    with pytest.raises(MissingError, match=r"absent\.edf: no such file"):
        open_series([tmp_path / "img_1.edf", tmp_path / "absent.edf"])


@pytest.fixture
def three_files(tmp_path: Path) -> list[Path]:
    """Frames 0-2 in a.edf, 3 in b.tif (2 pages: 3, 4), 5-7 in c.h5: 8 frames."""
    return [write_edf(tmp_path / "a.edf", [0, 1, 2]), write_tiff(tmp_path / "b.tif", [3, 4]),
            write_h5(tmp_path / "c.h5", [5, 6, 7])]


@pytest.mark.parametrize(("frames", "expected"), [
    ("1:4", [("a", 1), ("a", 2), ("b", 0)]),
    ("-2:", [("c", 1), ("c", 2)]),
    ("0,2", [("a", 0), ("a", 2)]),
    ("5", [("c", 0)]),
    (":6:2", [("a", 0), ("a", 2), ("b", 1)]),
    ("7, 3:5", [("c", 2), ("b", 0), ("b", 1)]),
])
def test_frame_selection_over_several_files(three_files: list[Path], frames: str,
                                            expected: list[tuple[str, int]]) -> None:
    series = open_series(three_files, frames=frames)
    assert len(series) == len(expected)
    assert [(o.path.stem, o.index) for o in series.origins] == expected
    assert [(o.path.stem, o.index) for _, o in series.iter_frames()] == expected
    assert series.dtype == np.float64  # float32 EDF, uint16 TIFF, uint32 HDF5: promoted
    first = series.read(0)
    assert first.dtype == np.float64 and first.shape == SHAPE


@pytest.mark.parametrize(("frames", "message"), [
    ("8", r"8 is out of range; the series has 8 frames"),
    ("-9:", r"-9 is out of range"),
    ("0:9", r"9 is out of range"),
    ("a", r"'a' is not an index or start:stop\[:step\]"),
    ("1:2:3:4", r"is not an index"),
    ("1,,2", r"'' is not an index"),
    ("::0", r"step 0"),
    ("5:2", r"selects no frames"),
    ("0:3,2", r"selects frame 2 more than once"),
])
def test_bad_frame_selections(three_files: list[Path], frames: str, message: str) -> None:
    with pytest.raises(NxgidError, match=message):
        open_series(three_files, frames=frames)


def test_parse_frames_is_slice_like() -> None:
    assert parse_frames("10:", 12) == [10, 11]
    assert parse_frames(":5:2", 12) == [0, 2, 4]
    assert parse_frames("-1", 12) == [11]
    assert parse_frames("0,3,7:9", 12) == [0, 3, 7, 8]


def test_shape_mismatch_names_the_file(tmp_path: Path) -> None:
    good = write_edf(tmp_path / "a.edf", [0])
    bad = tmp_path / "b.edf"
    EdfImage(data=np.zeros((5, 8), np.float32)).write(str(bad))
    with pytest.raises(NxgidError, match=r"b\.edf: frames are 5×8 pixels \(rows×cols\), "
                                         r"expected 6×8 like .*a\.edf"):
        open_series([good, bad])


def test_frame_of_another_shape_inside_a_file_is_named(tmp_path: Path) -> None:
    image = EdfImage(data=frame(0))
    image.append_frame(data=np.zeros((5, 8), np.float32))
    image.write(str(tmp_path / "mixed.edf"))
    series = open_series([tmp_path / "mixed.edf"])
    with pytest.raises(NxgidError, match=r"mixed\.edf: frame 1 is 5×8 pixels, expected 6×8"):
        list(series.iter_frames())


def test_iter_blocks_sizes(three_files: list[Path]) -> None:
    series = open_series(three_files)
    blocks = list(series.iter_blocks(3))
    assert [b.shape for b, _ in blocks] == [(3, *SHAPE), (3, *SHAPE), (2, *SHAPE)]
    assert all(b.dtype == np.float64 for b, _ in blocks)
    assert [o for _, origins in blocks for o in origins] == series.origins
    np.testing.assert_array_equal(blocks[2][0][1], frame(7, np.uint32) + 7)
    with pytest.raises(ValueError, match="block_frames"):
        next(series.iter_blocks(0))


def test_memory_stays_bounded_for_a_long_hdf5_series(tmp_path: Path) -> None:
    rows, cols, count = 256, 256, 200
    path = tmp_path / "long.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("entry/data/data", (count, rows, cols), np.uint32,
                              chunks=(1, rows, cols), **hdf5plugin.Bitshuffle(cname="lz4"))
        for i in range(count):
            ds[i] = i
    frame_bytes = rows * cols * 4
    series = open_series([path])
    tracemalloc.start()
    try:
        seen = 0
        for block, _ in series.iter_blocks(4):
            assert block[-1, 0, 0] == seen + len(block) - 1
            seen += len(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    # the caller's previous block (4), the block being filled (4), a frame or two in flight
    assert peak < 12 * frame_bytes  # not 200 frames


@pytest.mark.parametrize("suffix", [".edf", ".tif"])
def test_memory_stays_bounded_for_long_multiframe_files(tmp_path: Path, suffix: str) -> None:
    """fabio caches decoded frames (EdfImage: all of them, TiffIO: 20); the readers don't."""
    rows, cols, count = 128, 128, 60
    path = tmp_path / f"long{suffix}"
    if suffix == ".edf":
        image = EdfImage(data=np.zeros((rows, cols), np.float32))
        for i in range(1, count):
            image.append_frame(data=np.full((rows, cols), i, np.float32))
        image.write(str(path))
        del image
    else:
        for i in range(count):
            with TiffIO(str(path), mode="rb+" if i else "wb+") as tif:
                tif.writeImage(np.full((rows, cols), i, np.float32))
    series = open_series([path])
    tracemalloc.start()
    try:
        values = [float(f[0, 0]) for f, _ in series.iter_frames()]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert values == list(range(count))
    assert peak < 10 * rows * cols * 4


def test_opening_reads_no_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frame counts and shapes come from headers: no frame is decoded by open_series."""
    paths = [write_edf(tmp_path / "a.edf", [0, 1]), write_tiff(tmp_path / "b.tif", [2]),
             write_h5(tmp_path / "c.h5", [3])]
    CbfImage(data=frame(4, np.int32)).write(str(tmp_path / "d.cbf"))
    paths.append(tmp_path / "d.cbf")

    def forbidden(*args, **kwargs):
        raise AssertionError("pixels read while opening")

    monkeypatch.setattr(TiffIO, "getData", forbidden)
    monkeypatch.setattr(CbfImage, "read", forbidden)
    monkeypatch.setattr(h5py.Dataset, "__getitem__", forbidden)
    unpack = fabio.edfimage.EdfFrame._unpack

    def guarded_unpack(self):  # EdfImage() itself unpacks an empty, file-less frame
        if self.file is not None and self._data is None:
            forbidden()
        return unpack(self)

    monkeypatch.setattr(fabio.edfimage.EdfFrame, "_unpack", guarded_unpack)
    series = open_series(paths)
    assert len(series) == 5


# --- read_image and raw-data safety -----------------------------------------------------


def test_read_image_formats(tmp_path: Path) -> None:
    mask = np.eye(*SHAPE, dtype=np.int8)
    np.save(tmp_path / "mask.npy", mask)
    got = read_image(tmp_path / "mask.npy")
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, mask)
    tif = write_tiff(tmp_path / "dark.tif", [3])
    np.testing.assert_array_equal(read_image(tif), frame(3, np.float64).round() + 3)
    edf = write_edf(tmp_path / "flat.edf", [1, 2, 6])
    flat = read_image(edf)
    assert flat.dtype == np.float64
    np.testing.assert_allclose(flat, np.mean([frame(i) for i in (1, 2, 6)], axis=0))
    with pytest.raises(NxgidError, match=r"flat\.edf: holds 3 frames, expected a single"):
        read_image(edf, reduce=None)
    with pytest.raises(MissingError, match=r"gone\.npy: no such file"):
        read_image(tmp_path / "gone.npy")
    np.save(tmp_path / "cube.npy", np.stack([mask, 3 * mask]))
    np.testing.assert_array_equal(read_image(tmp_path / "cube.npy"), 2.0 * mask)
    np.save(tmp_path / "line.npy", np.arange(5))
    with pytest.raises(NxgidError, match=r"line\.npy: holds an array of shape \(5,\)"):
        read_image(tmp_path / "line.npy")


def test_raw_files_are_not_modified(tmp_path: Path, three_files: list[Path]) -> None:
    master = make_eiger(tmp_path)
    nexus = make_nexus(tmp_path / "sample.nxs")
    files = [*three_files, master, nexus, *sorted(tmp_path.glob("scan_data_*.h5"))]
    before = stamp(files)
    for paths in (three_files, [master], [nexus]):
        series = open_series(paths)
        list(series.iter_blocks(2))
        series.mean()
    read_image(nexus)
    assert stamp(files) == before
