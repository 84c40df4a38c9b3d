"""nxgid.experiment.stack: image series → one crash-safe, resumable HDF5 stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from fabio.cbfimage import CbfImage
from fabio.edfimage import EdfImage
from fabio.tifimage import TifImage

from nxgid.errors import ExistsError, MissingError, NxgidError
from nxgid.experiment import stack
from nxgid.experiment.stack import DATA_PATH, partial_path, stack_images
from nxgid.images.series import open_series

SHAPE = (5, 7)
BITSHUFFLE = 32008


class Boom(Exception):
    """An injected failure."""


def _frames(rng: np.random.Generator, n: int, dtype=np.int32) -> list[np.ndarray]:
    high = min(np.iinfo(dtype).max, 2**31 - 1)
    return [rng.integers(0, high, SHAPE).astype(dtype) for _ in range(n)]


def _write_edf(path: Path, frames: list[np.ndarray]) -> None:
    image = EdfImage(data=frames[0])
    for frame in frames[1:]:
        image.append_frame(data=frame)
    image.write(str(path))


@pytest.fixture
def raw(tmp_path: Path) -> tuple[Path, list[tuple[str, int, np.ndarray]]]:
    """A multi-frame EDF, two TIFFs and two CBFs (int32); expected (file, index, frame)."""
    folder = tmp_path / "raw"
    folder.mkdir()
    rng = np.random.default_rng(7)
    expected = []
    multi = _frames(rng, 3)
    _write_edf(folder / "a_multi.edf", multi)
    expected += [(str(folder / "a_multi.edf"), i, f) for i, f in enumerate(multi)]
    for name in ("b_001.tif", "b_002.tif"):
        frame = _frames(rng, 1)[0]
        TifImage(data=frame).write(str(folder / name))
        expected.append((str(folder / name), 0, frame))
    for name in ("c_001.cbf", "c_002.cbf"):
        frame = _frames(rng, 1)[0]
        CbfImage(data=frame).write(str(folder / name))
        expected.append((str(folder / name), 0, frame))
    return folder, expected


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "f1.h5"


def _read(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        data = f["entry/data"]
        return {name: data[name][()] for name in ("data", "frame_number", "source_file",
                                                  "frame_ind")}


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_stack_values_provenance_and_storage(raw, out):
    folder, expected = raw
    before = _snapshot(folder)
    calls = []
    summary = stack_images([folder / "*"], out, block_frames=2,
                           progress=lambda done, total: calls.append((done, total)))
    assert (summary.output, summary.frames, summary.files, summary.resumed_from) == \
        (out, 7, 5, 0)
    assert summary.bytes == out.stat().st_size and summary.note == ""
    assert calls == [(2, 7), (4, 7), (6, 7), (7, 7)]
    assert sorted(p.name for p in out.parent.iterdir()) == ["f1.h5"]  # no partial left
    stored = _read(out)
    assert stored["data"].dtype == np.int32
    for i, (path, index, frame) in enumerate(expected):
        np.testing.assert_array_equal(stored["data"][i], frame)
        assert stored["frame_number"][i] == index
        assert stored["source_file"][i].decode() == path
    np.testing.assert_array_equal(stored["frame_ind"], np.arange(7))
    with h5py.File(out, "r") as f:
        signal_ds = f[DATA_PATH]
        assert signal_ds.chunks == (1, *SHAPE)
        assert signal_ds.maxshape == (None, *SHAPE)
        plist = signal_ds.id.get_create_plist()
        assert BITSHUFFLE in [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        text = h5py.check_string_dtype(f["entry/data/source_file"].dtype)
        assert (text.encoding, text.length) == ("utf-8", 1024)
        assert f["entry/data/frame_number"].dtype == np.int64
    assert _snapshot(folder) == before  # sources untouched


def test_nexus_structure_and_read_back(raw, out):
    folder, expected = raw
    stack_images([folder / "*"], out)
    with h5py.File(out, "r") as f:
        assert f.attrs["NX_class"] == "NXroot" and f.attrs["default"] == "entry"
        assert f["entry"].attrs["NX_class"] == "NXentry"
        assert f["entry"].attrs["default"] == "data"
        data = f["entry/data"]
        assert data.attrs["NX_class"] == "NXdata" and data.attrs["signal"] == "data"
        assert list(data.attrs["axes"]) == ["frame_ind", ".", "."]
        assert f["entry/instrument"].attrs["NX_class"] == "NXinstrument"
        detector = f["entry/instrument/detector"]
        assert detector.attrs["NX_class"] == "NXdetector"
        assert isinstance(detector.get("data", getlink=True), h5py.HardLink)
        assert detector["data"] == f[DATA_PATH]
        assert f[DATA_PATH].attrs["target"] == DATA_PATH
    series = open_series([out])
    assert (len(series), series.shape, series.dtype) == (7, SHAPE, np.int32)
    for i, (frame, origin) in enumerate(series.iter_frames()):
        np.testing.assert_array_equal(frame, expected[i][2])
        assert origin.dataset == DATA_PATH


def test_uint32_kept_and_frame_selection(tmp_path, out):
    rng = np.random.default_rng(3)
    frames = _frames(rng, 4, np.uint32)
    frames[0][0, 0] = 2**32 - 1
    for i, frame in enumerate(frames):
        TifImage(data=frame).write(str(tmp_path / f"img_{i}.tif"))
    summary = stack_images([tmp_path / "img_*.tif"], out, frames="0,2:4")
    stored = _read(out)
    assert summary.frames == 3 and stored["data"].dtype == np.uint32
    np.testing.assert_array_equal(stored["data"], np.stack([frames[0], frames[2], frames[3]]))
    assert [Path(s.decode()).name for s in stored["source_file"]] == \
        ["img_0.tif", "img_2.tif", "img_3.tif"]


def test_existing_output_refused_and_untouched(raw, out):
    folder, _ = raw
    out.write_bytes(b"precious")
    with pytest.raises(ExistsError, match="exists"):
        stack_images([folder / "*"], out)
    assert out.read_bytes() == b"precious"
    assert not partial_path(out).exists()


def test_overwrite_replaces_only_when_complete(raw, out):
    folder, expected = raw
    out.write_bytes(b"old")

    def fail_second(done: int, total: int) -> None:
        if done > 2:
            raise Boom

    with pytest.raises(Boom):
        stack_images([folder / "*"], out, overwrite=True, block_frames=2,
                     progress=fail_second)
    assert out.read_bytes() == b"old" and partial_path(out).exists()
    summary = stack_images([folder / "*"], out, overwrite=True, block_frames=2)
    assert summary.resumed_from == 4
    np.testing.assert_array_equal(_read(out)["data"], np.stack([e[2] for e in expected]))
    assert not partial_path(out).exists()


def test_dtype_mismatch_refused_before_writing(tmp_path, out):
    rng = np.random.default_rng(1)
    _write_edf(tmp_path / "a.edf", _frames(rng, 2, np.uint16))
    TifImage(data=_frames(rng, 1)[0]).write(str(tmp_path / "b.tif"))
    with pytest.raises(NxgidError) as caught:
        stack_images([tmp_path / "a.edf", tmp_path / "b.tif"], out)
    message = str(caught.value)
    assert "b.tif" in message and "int32" in message and "uint16" in message
    assert list(out.parent.iterdir()) == []


def test_missing_input_and_output_in_inputs(raw, out):
    folder, _ = raw
    with pytest.raises(MissingError):
        stack_images([folder / "a_multi.edf", folder / "nope.tif"], out)
    with pytest.raises(NxgidError, match="input"):
        stack_images([folder / "*"], folder / "b_001.tif", overwrite=True)
    assert list(out.parent.iterdir()) == []


def test_resume_after_exception_between_blocks(raw, out, tmp_path):
    folder, _ = raw
    clean = tmp_path / "clean.h5"
    stack_images([folder / "*"], clean, block_frames=2)
    before = _snapshot(folder)

    def fail_after_two(done: int, total: int) -> None:
        if done == 4:
            raise Boom

    with pytest.raises(Boom):
        stack_images([folder / "*"], out, block_frames=2, progress=fail_after_two)
    assert not out.exists() and partial_path(out).exists()
    summary = stack_images([folder / "*"], out, block_frames=2)
    assert (summary.resumed_from, summary.frames, summary.note) == (4, 7, "")
    _assert_same(_read(out), _read(clean))
    assert _snapshot(folder) == before


def test_resume_after_exception_inside_a_block(raw, out, tmp_path, monkeypatch):
    folder, _ = raw
    clean = tmp_path / "clean.h5"
    stack_images([folder / "*"], clean, block_frames=3)
    grow = stack._grow

    def failing(dataset, values):
        if dataset.name.endswith("/source_file") and dataset.shape[0] >= 3:
            raise Boom
        grow(dataset, values)

    monkeypatch.setattr(stack, "_grow", failing)
    with pytest.raises(Boom):
        stack_images([folder / "*"], out, block_frames=3)
    with h5py.File(partial_path(out), "r") as f:  # block 2 begun, not committed
        assert f["entry/data/frame_ind"].shape == (3,)
        assert f["entry/data/data"].shape[0] == 6
    monkeypatch.setattr(stack, "_grow", grow)
    summary = stack_images([folder / "*"], out, block_frames=3)
    assert summary.resumed_from == 3
    _assert_same(_read(out), _read(clean))


def test_changed_source_restarts(raw, out):
    folder, _ = raw

    def fail(done: int, total: int) -> None:
        raise Boom

    with pytest.raises(Boom):
        stack_images([folder / "*"], out, block_frames=2, progress=fail)
    new = np.full(SHAPE, 42, np.int32)
    TifImage(data=new).write(str(folder / "b_001.tif"))
    os.utime(folder / "b_001.tif", ns=(1, 1))  # a change the size alone would not show
    summary = stack_images([folder / "*"], out, block_frames=2)
    assert summary.resumed_from == 0 and "other inputs" in summary.note
    np.testing.assert_array_equal(_read(out)["data"][3], new)

    with pytest.raises(Boom):  # another frame selection is another stack too
        stack_images([folder / "*"], out, overwrite=True, block_frames=2, progress=fail)
    summary = stack_images([folder / "*"], out, overwrite=True, frames="1:")
    assert summary.resumed_from == 0 and summary.frames == 6 and summary.note


def test_unreadable_partial_is_discarded(raw, out):
    folder, _ = raw
    partial_path(out).write_bytes(b"not hdf5")
    summary = stack_images([folder / "*"], out)
    assert summary.resumed_from == 0 and "not readable" in summary.note


_KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from nxgid.experiment import stack

    mode, output, pattern = sys.argv[1:]

    def die(*_):
        os.kill(os.getpid(), signal.SIGKILL)

    progress = die if mode == "after_commit" else None
    if mode != "after_commit":
        name = {"mid_block": "/frame_number", "before_commit": "/frame_ind"}[mode]
        grow = stack._grow

        def killing(dataset, values):
            if dataset.name.endswith(name) and dataset.shape[0] >= 2:
                die()
            grow(dataset, values)

        stack._grow = killing
    stack.stack_images([pattern], Path(output), block_frames=2, progress=progress)
""")


@pytest.mark.parametrize("mode", ["after_commit", "before_commit", "mid_block"])
def test_resume_after_sigkill(raw, out, tmp_path, mode):
    folder, _ = raw
    clean = tmp_path / "clean.h5"
    stack_images([folder / "*"], clean, block_frames=2)
    before = _snapshot(folder)
    run = subprocess.run([sys.executable, "-c", _KILLER, mode, str(out), str(folder / "*")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert not out.exists()
    with h5py.File(partial_path(out), "r") as f:  # as of the last flush
        assert f["entry/data/frame_ind"].shape == (2,)
        assert len(f["entry/data/data"]) == (4 if mode == "before_commit" else 2)
    summary = stack_images([folder / "*"], out, block_frames=2)
    assert summary.resumed_from == 2 and summary.note == ""
    _assert_same(_read(out), _read(clean))
    assert _snapshot(folder) == before


@pytest.mark.skipif(os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE",
                    reason="HDF5 file locking is off")
def test_partial_in_use_by_another_process_is_left_alone(raw, out):
    folder, _ = raw

    def fail(done: int, total: int) -> None:
        raise Boom

    with pytest.raises(Boom):
        stack_images([folder / "*"], out, block_frames=2, progress=fail)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, h5py; f = h5py.File(sys.argv[1], 'r+'); "
         "print('ready', flush=True); sys.stdin.read()", str(partial_path(out))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(NxgidError, match="another process"):
            stack_images([folder / "*"], out, block_frames=2)
    finally:
        holder.communicate("", timeout=60)
    assert partial_path(out).exists() and not out.exists()
    assert stack_images([folder / "*"], out, block_frames=2).resumed_from == 2
