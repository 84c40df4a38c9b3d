"""``nxgid plot`` of raw frames: an image file, a raw stack, a scan entry, with a mask."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from nxgid.errors import NxgidError
from nxgid.names import PIXEL_MASK_GAP, PIXEL_MASK_USER
from nxgid.nexus.detector_frames import load_frame

PNG = b"\x89PNG\r\n\x1a\n"


def _scan_like(path, frames: np.ndarray, bits: np.ndarray):
    """A file laid out as a scan file: entry f1 with frames and its detector's mask."""
    with h5py.File(path, "w") as f:
        entry = f.create_group("f1")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data["data"] = frames
        detector = entry.create_group("instrument/detector")
        detector.attrs["NX_class"] = "NXdetector"
        detector["pixel_mask"] = bits
    return path


@pytest.fixture
def frames():
    rng = np.random.default_rng(1)
    return rng.poisson(20, size=(3, 40, 30)).astype(np.int32)


@pytest.fixture
def bits():
    bits = np.zeros((40, 30), np.int32)
    bits[10, :] = PIXEL_MASK_GAP
    bits[:5, 20:25] = PIXEL_MASK_USER
    return bits


def test_a_scan_entry_frame_and_its_own_mask(tmp_path, frames, bits):
    path = _scan_like(tmp_path / "film_s001.nxs", frames, bits)
    view = load_frame(path, entry="f1", frame=-1, mask="file")
    assert np.array_equal(view.image, frames[-1]) and np.array_equal(view.bits, bits)
    assert view.label == "frame 2 of film_s001.nxs:/f1/data/data"
    mean = load_frame(path)
    assert np.allclose(mean.image, frames.mean(axis=0)) and mean.bits is None
    with pytest.raises(NxgidError, match="has 3 frame"):
        load_frame(path, frame=3)
    with pytest.raises(NxgidError, match="no entry 'f2'"):
        load_frame(path, entry="f2")


def test_an_image_file_with_a_mask_image(tmp_path, frames):
    import fabio

    image = tmp_path / "img.cbf"
    fabio.cbfimage.CbfImage(data=frames[0]).write(str(image))
    hot = np.zeros((40, 30), np.uint8)
    hot[3, 4] = 1
    np.save(tmp_path / "hot.npy", hot)
    view = load_frame(image, mask=str(tmp_path / "hot.npy"))
    assert np.array_equal(view.image, frames[0])
    assert np.argwhere(view.bits).tolist() == [[3, 4]] and view.bits[3, 4] == PIXEL_MASK_USER
    with pytest.raises(NxgidError, match="carries no NXdetector pixel_mask"):
        load_frame(image, mask="file")
    np.save(tmp_path / "small.npy", hot[:10])
    with pytest.raises(NxgidError, match="the mask is 10×30 pixels, the frames 40×30"):
        load_frame(image, mask=str(tmp_path / "small.npy"))


def test_nxgid_plot_draws_raw_frames(tmp_path, frames, bits, nxgid):
    path = _scan_like(tmp_path / "film_s001.nxs", frames, bits)
    out = tmp_path / "f1.png"
    done = nxgid(["plot", str(path), "--entry", "f1", "--frame", "0", "--mask", "-o",
                  str(out)])
    assert done.exit_code == 0, done.output
    assert out.read_bytes()[:8] == PNG
    assert "frame 0 of film_s001.nxs:/f1/data/data, with its mask" in done.stdout
    again = nxgid(["plot", str(path), "--linear", "-o", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    linear = nxgid(["plot", str(path), "--linear", "-o", str(out), "--overwrite"])
    assert linear.exit_code == 0 and "mean of 3 frames" in linear.stdout
