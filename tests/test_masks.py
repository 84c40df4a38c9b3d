"""Detector masks: shape rules and the NXdetector pixel_mask bit layout (nxgid.experiment.masks)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from fabio.edfimage import EdfImage
from fabio.tifimage import TifImage
from matplotlib.path import Path as MplPath

from nxgid.errors import MissingError, NxgidError
from nxgid.experiment.masks import (
    Circle,
    Polygon,
    Rect,
    edit_mask,
    gap_bits,
    import_mask,
    mask_summary,
    parse_circle,
    parse_polygon,
    parse_rect,
    write_mask_preview,
)
from nxgid.names import PIXEL_MASK_GAP, PIXEL_MASK_USER

SHAPE = (10, 12)  # rows, cols
PNG = b"\x89PNG\r\n\x1a\n"


def cells(mask: np.ndarray) -> set[tuple[int, int]]:
    """The (row, col) pairs where *mask* is True."""
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(mask), strict=True)}


def box(rows: range, cols: range) -> set[tuple[int, int]]:
    return {(r, c) for r in rows for c in cols}


def detector_gaps() -> np.ndarray:
    """A pyFAI-like detector mask (int8, 1 = gap): row 5 is a gap between modules."""
    mask = np.zeros(SHAPE, dtype=np.int8)
    mask[5] = 1
    return mask


# --- shapes: pixel sets -----------------------------------------------------------------


def test_rect_covers_pixel_centres_in_half_open_box():
    assert cells(parse_rect("2,3,4,2").pixels(SHAPE)) == box(range(3, 5), range(2, 6))
    # centre of column 2 is x = 2.5: in [2.5, 3.5), column 3's centre 3.5 is not
    assert cells(parse_rect("2.5,3,1,1").pixels(SHAPE)) == {(3, 2)}
    assert cells(parse_rect("2.6,3.4,1,1").pixels(SHAPE)) == {(3, 3)}
    assert cells(parse_rect(" 0 , 0 , 12 , 10 ").pixels(SHAPE)) == box(range(10), range(12))


def test_rect_partly_outside_is_clipped():
    assert cells(parse_rect("-5,-5,7,6").pixels(SHAPE)) == {(0, 0), (0, 1)}
    assert cells(parse_rect("10,8,100,100").pixels(SHAPE)) == box(range(8, 10), range(10, 12))
    assert parse_rect("-1e6,-1e6,2e6,2e6").pixels(SHAPE).all()


def test_circle_covers_pixel_centres_within_radius():
    assert cells(parse_circle("5,5,1").pixels(SHAPE)) == box(range(4, 6), range(4, 6))
    # centred on pixel (5, 5): its 4 neighbours lie exactly at r (included), diagonals not
    assert cells(parse_circle("5.5,5.5,1").pixels(SHAPE)) == {
        (5, 5), (4, 5), (6, 5), (5, 4), (5, 6)}
    assert cells(parse_circle("0,0,1.2").pixels(SHAPE)) == {(0, 0)}  # clipped at the corner
    assert cells(parse_circle("11.5,9.5,0.1").pixels(SHAPE)) == {(9, 11)}


def test_polygon_even_odd_rule():
    # a rectangular polygon covers exactly the pixels of the equivalent rect
    rect = parse_rect("2,3,4,2").pixels(SHAPE)
    assert np.array_equal(parse_polygon("2,3,6,3,6,5,2,5").pixels(SHAPE), rect)
    assert np.array_equal(parse_polygon("2,5,6,5,6,3,2,3").pixels(SHAPE), rect)  # clockwise
    # triangle x + y < 4: centres on the hypotenuse (c + r + 1 = 4) are outside
    assert cells(parse_polygon("0,0,4,0,0,4").pixels(SHAPE)) == {
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)}
    # concave L: the notch is not covered
    ell = parse_polygon("0,0,4,0,4,2,2,2,2,4,0,4").pixels(SHAPE)
    assert cells(ell) == box(range(0, 2), range(0, 4)) | box(range(2, 4), range(0, 2))
    # clipped at the detector edges
    assert cells(parse_polygon("-3,-3,3,-3,3,3,-3,3").pixels(SHAPE)) == box(range(3), range(3))


def test_polygon_agrees_with_matplotlib_off_the_boundary():
    points = [(0.3, 1.1), (10.7, 0.2), (6.1, 4.9), (11.9, 9.3), (1.3, 8.2), (3.7, 4.4)]
    text = ",".join(f"{x},{y}" for x, y in points)
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    centres = np.column_stack([cols.ravel() + 0.5, rows.ravel() + 0.5])
    expected = MplPath(points).contains_points(centres).reshape(SHAPE)
    assert np.array_equal(parse_polygon(text).pixels(SHAPE), expected)
    assert 10 < expected.sum() < expected.size


@pytest.mark.parametrize("shape, what", [
    (parse_rect("20,0,5,5"), "--rect 20,0,5,5 masks no pixel: it lies outside the 10×12"),
    (parse_rect("0,-5,3,5"), "--rect 0,-5,3,5 masks no pixel: it lies outside"),
    (parse_circle("-5,-5,2"), "--circle -5,-5,2 masks no pixel: it lies outside"),
    (parse_polygon("13,0,20,0,20,5"), "--polygon 13,0,20,0,20,5 masks no pixel: it lies"),
    (parse_rect("0.6,0,0.3,5"), "--rect 0.6,0,0.3,5 masks no pixel: it covers no pixel centre"),
    (parse_polygon("1,1,5,5,9,9"), "--polygon 1,1,5,5,9,9 masks no pixel: it covers no"),
])
def test_shape_masking_nothing_is_an_error(shape, what):
    with pytest.raises(NxgidError) as info:
        shape.pixels(SHAPE)
    assert str(info.value).startswith(what)
    assert "(rows×cols) detector (x 0–12, y 0–10" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(NxgidError, match="masks no pixel"):
        edit_mask(np.zeros(SHAPE, np.int32), gaps=None, shapes=[shape])


@pytest.mark.parametrize("parse, text, expected", [
    (parse_rect, "1,2,3", "--rect '1,2,3': expected x,y,w,h (4 numbers, w and h > 0)"),
    (parse_rect, "1,2,3,4,5", "--rect '1,2,3,4,5': expected x,y,w,h"),
    (parse_rect, "1,2,0,3", "--rect '1,2,0,3': expected x,y,w,h"),
    (parse_rect, "1,2,3,-3", "--rect '1,2,3,-3': expected x,y,w,h"),
    (parse_rect, "a,b,c,d", "--rect 'a,b,c,d': expected x,y,w,h"),
    (parse_rect, "1,,2,3", "--rect '1,,2,3': expected x,y,w,h"),
    (parse_rect, "1,2,3,nan", "--rect '1,2,3,nan': expected x,y,w,h"),
    (parse_rect, "", "--rect '': expected x,y,w,h"),
    (parse_circle, "1,2", "--circle '1,2': expected x,y,r (3 numbers, r > 0)"),
    (parse_circle, "1,2,-1", "--circle '1,2,-1': expected x,y,r"),
    (parse_circle, "1,2,inf", "--circle '1,2,inf': expected x,y,r"),
    (parse_polygon, "1,2,3,4", "--polygon '1,2,3,4': expected x1,y1,x2,y2,… (pairs of "
                               "numbers, at least 3 points)"),
    (parse_polygon, "1,2,3,4,5", "--polygon '1,2,3,4,5': expected x1,y1,x2,y2,…"),
    (parse_polygon, "1,2,3,4,5,x", "--polygon '1,2,3,4,5,x': expected x1,y1,x2,y2,…"),
])
def test_bad_shape_strings_are_one_line_errors(parse, text, expected):
    with pytest.raises(NxgidError) as info:
        parse(text)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_shapes_are_frozen_and_validated():
    rect = parse_rect("1,2,3,4")
    assert rect == Rect(1, 2, 3, 4) and str(rect) == "--rect 1,2,3,4"
    assert parse_circle("1.5,2,3") == Circle(1.5, 2, 3)
    assert parse_polygon("0,0,1,0,1,1") == Polygon(((0, 0), (1, 0), (1, 1)))
    with pytest.raises(AttributeError):
        rect.x = 5  # type: ignore[misc]
    with pytest.raises(NxgidError, match="--rect '1,2,-3,4': expected"):
        Rect(1, 2, -3, 4)
    with pytest.raises(NxgidError, match="--circle '1,2,0': expected"):
        Circle(1, 2, 0)
    with pytest.raises(NxgidError, match="--polygon '0,0,1,1': expected"):
        Polygon(((0, 0), (1, 1)))
    with pytest.raises(NxgidError, match="--polygon 'nan': expected"):
        Polygon(((0, 0), (1, 1, 2), (3, 3)))  # type: ignore[arg-type]


# --- bit layout --------------------------------------------------------------------------


def test_gap_bits():
    bits = gap_bits(detector_gaps(), SHAPE)
    assert bits.dtype == np.int32 and bits.shape == SHAPE
    assert cells(bits == PIXEL_MASK_GAP) == box(range(5, 6), range(12))
    assert cells(bits != 0) == cells(bits == PIXEL_MASK_GAP)
    assert not gap_bits(None, SHAPE).any() and gap_bits(None, SHAPE).dtype == np.int32
    with pytest.raises(NxgidError, match="detector's own mask is 12×10 pixels .* 10×12 "
                                         r"\(transposed\?\)"):
        gap_bits(np.zeros((12, 10)), SHAPE)


def test_gaps_in_bit_0_user_shapes_in_bit_8():
    current = np.zeros(SHAPE, np.int32)
    bits = edit_mask(current, gaps=detector_gaps(), shapes=[parse_rect("0,4,2,3")])
    assert bits.dtype == np.int32 and bits.shape == SHAPE
    assert cells(bits & PIXEL_MASK_GAP) == box(range(5, 6), range(12))
    assert cells(bits & PIXEL_MASK_USER) == box(range(4, 7), range(2))
    assert not np.any(bits & ~(PIXEL_MASK_GAP | PIXEL_MASK_USER))
    assert bits[5, 0] == PIXEL_MASK_GAP | PIXEL_MASK_USER == 257  # gap and user: both bits
    assert bits[5, 5] == PIXEL_MASK_GAP and bits[4, 0] == PIXEL_MASK_USER and bits[0, 0] == 0
    assert mask_summary(bits) == {"pixels": 120, "masked": 16, "gaps": 12, "user": 6,
                                  "other": 0, "percent": pytest.approx(100 * 16 / 120)}


def test_edits_accumulate_and_keep_other_bits():
    current = np.zeros(SHAPE, np.int32)
    current[9, 11] = 1 << 3  # a bit nxgid does not set (e.g. from another program)
    first = edit_mask(current, gaps=detector_gaps(), shapes=[parse_circle("0.5,0.5,0.1")])
    second = edit_mask(first, gaps=detector_gaps(), shapes=[parse_rect("11,0,1,1")])
    assert cells(second & PIXEL_MASK_USER) == {(0, 0), (0, 11)}
    assert second[9, 11] == 1 << 3
    assert mask_summary(second)["other"] == 1


def test_clear_drops_user_bit_and_keeps_gaps():
    bits = edit_mask(np.zeros(SHAPE, np.int32), gaps=detector_gaps(),
                     shapes=[parse_rect("0,0,12,10")])
    bits[0, 0] |= 1 << 3
    cleared = edit_mask(bits, gaps=detector_gaps(), clear=True)
    assert not np.any(cleared & PIXEL_MASK_USER)
    assert cells(cleared & PIXEL_MASK_GAP) == box(range(5, 6), range(12))
    assert cleared[0, 0] == 1 << 3  # other bits stay
    # clear first, then this call's shapes
    again = edit_mask(bits, gaps=None, clear=True, shapes=[parse_rect("1,1,1,1")])
    assert cells(again & PIXEL_MASK_USER) == {(1, 1)}
    assert cells(again & PIXEL_MASK_GAP) == box(range(5, 6), range(12))  # kept from bits


def test_replace_starts_again_from_the_gaps():
    bits = edit_mask(np.zeros(SHAPE, np.int32), gaps=detector_gaps(),
                     shapes=[parse_rect("0,0,3,3")])
    bits[9, 11] |= 1 << 3
    fresh = edit_mask(bits, gaps=detector_gaps(), replace=True, shapes=[parse_rect("9,9,1,1")])
    assert cells(fresh & PIXEL_MASK_USER) == {(9, 9)}
    assert cells(fresh & PIXEL_MASK_GAP) == box(range(5, 6), range(12))
    assert fresh[9, 11] == 0  # replace drops the other bits too
    # without gaps given, replace keeps the gap bits of the current mask
    kept = edit_mask(bits, gaps=None, replace=True)
    assert np.array_equal(kept, gap_bits(detector_gaps(), SHAPE))


def test_gaps_always_follow_the_detector():
    stale = np.zeros(SHAPE, np.int32)
    stale[0] = PIXEL_MASK_GAP | PIXEL_MASK_USER  # gaps of another detector, plus a user mask
    bits = edit_mask(stale, gaps=detector_gaps())
    assert cells(bits & PIXEL_MASK_GAP) == box(range(5, 6), range(12))
    assert cells(bits & PIXEL_MASK_USER) == box(range(1), range(12))
    bits = edit_mask(stale, gaps=gap_bits(detector_gaps(), SHAPE))  # bits or mask alike
    assert cells(bits & PIXEL_MASK_GAP) == box(range(5, 6), range(12))
    with pytest.raises(NxgidError, match="detector's own mask is 3×3 pixels"):
        edit_mask(stale, gaps=np.zeros((3, 3)))


def test_edit_mask_never_modifies_its_input():
    current = edit_mask(np.zeros(SHAPE, np.int32), gaps=detector_gaps(),
                        shapes=[parse_rect("0,0,4,4")])
    current[2, 2] |= 1 << 3
    before = current.copy()
    image = np.arange(120, dtype=np.float64).reshape(SHAPE)
    gaps = detector_gaps()
    for kwargs in ({}, {"clear": True}, {"replace": True}, {"below": 10, "image": image},
                   {"shapes": [parse_rect("5,5,3,3")]}):
        result = edit_mask(current, gaps=gaps, **kwargs)
        assert result is not current and not np.shares_memory(result, current)
        assert np.array_equal(current, before)
    assert np.array_equal(gaps, detector_gaps())


def test_edit_mask_accepts_a_boolean_mask_and_refuses_others():
    user = np.zeros(SHAPE, bool)
    user[1, 2] = True
    bits = edit_mask(user, gaps=None)
    assert bits.dtype == np.int32 and cells(bits == PIXEL_MASK_USER) == {(1, 2)}
    assert cells(bits != 0) == {(1, 2)}
    with pytest.raises(NxgidError, match="expected an integer"):
        edit_mask(np.zeros(SHAPE, np.float32), gaps=None)
    with pytest.raises(NxgidError, match="expected an integer"):
        edit_mask(np.zeros(12, np.int32), gaps=None)


# --- --below -----------------------------------------------------------------------------


def test_below_masks_pixels_at_or_below_the_value():
    image = np.full(SHAPE, 100.0)
    image[0, 0], image[1, 1], image[2, 2], image[3, 3] = -1, 0, 5, 5.0001
    image[4, 4] = np.nan
    bits = edit_mask(np.zeros(SHAPE, np.int32), gaps=detector_gaps(), below=5, image=image)
    assert cells(bits & PIXEL_MASK_USER) == {(0, 0), (1, 1), (2, 2)}
    # gaps (bit 0) are masked already and not counted again as user pixels
    image[5] = -1
    bits = edit_mask(np.zeros(SHAPE, np.int32), gaps=detector_gaps(), below=5, image=image)
    assert cells(bits & PIXEL_MASK_USER) == {(0, 0), (1, 1), (2, 2)}
    assert cells(bits & PIXEL_MASK_GAP) == box(range(5, 6), range(12))
    counts = np.arange(120, dtype=np.uint32).reshape(SHAPE)
    bits = edit_mask(np.zeros(SHAPE, np.int32), gaps=None, below=0, image=counts)
    assert cells(bits & PIXEL_MASK_USER) == {(0, 0)}


def test_below_needs_an_image_of_the_detector_shape():
    with pytest.raises(NxgidError) as info:
        edit_mask(np.zeros(SHAPE, np.int32), gaps=None, below=1)
    assert str(info.value).startswith("--below needs the powder image of a calibration")
    assert "an imported PONI carries no image" in str(info.value)
    assert "nxgid calibrate NAME --image FILE" in str(info.value)
    with pytest.raises(NxgidError, match=r"calibration image is 4×4 pixels .* 10×12"):
        edit_mask(np.zeros(SHAPE, np.int32), gaps=None, below=1, image=np.zeros((4, 4)))


# --- imported masks ------------------------------------------------------------------------


def user_mask(dtype=np.uint8) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=dtype)
    mask[2, 3] = mask[7, 0] = 1
    mask[9, 11] = {"u": 255, "i": -1, "f": 0.25, "b": True}[np.dtype(dtype).kind]
    return mask


EXPECTED = {(2, 3), (7, 0), (9, 11)}


def write_npy(path: Path, data: np.ndarray) -> Path:
    np.save(path, data)
    return path


def write_tif(path: Path, data: np.ndarray) -> Path:
    TifImage(data=data).write(str(path))
    return path


def write_edf(path: Path, data: np.ndarray) -> Path:
    EdfImage(data=data).write(str(path))
    return path


def write_h5(path: Path, data: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/instrument/mask", data=data)
    return path


@pytest.mark.parametrize("suffix, write, dtype", [
    (".npy", write_npy, bool), (".npy", write_npy, np.int32), (".npy", write_npy, np.float32),
    (".tif", write_tif, np.uint8), (".tif", write_tif, np.uint16),
    (".edf", write_edf, np.int8), (".edf", write_edf, np.float32),
    (".h5", write_h5, np.uint8), (".h5", write_h5, bool),
])
def test_import_mask_formats(tmp_path, suffix, write, dtype):
    path = write(tmp_path / f"mask{suffix}", user_mask(dtype))
    mask = import_mask(path, SHAPE)
    assert mask.dtype == bool and cells(mask) == EXPECTED
    bits = edit_mask(np.zeros(SHAPE, np.int32), gaps=detector_gaps(), imported=[mask])
    assert cells(bits & PIXEL_MASK_USER) == EXPECTED


def test_import_mask_integer_bits_and_explicit_dataset(tmp_path):
    data = np.zeros(SHAPE, np.int32)
    data[0, 0], data[0, 1], data[0, 2] = 1 << 15, 1 << 16, -(1 << 31)  # only bit 15 counts
    with h5py.File(tmp_path / "pixel_mask.nxs", "w") as f:
        f.create_dataset("entry/big", data=np.ones((20, 20), np.uint8))  # found first
        f.create_dataset("entry/instrument/detector/pixel_mask", data=data)
    mask = import_mask(tmp_path / "pixel_mask.nxs", SHAPE,
                       dataset="entry/instrument/detector/pixel_mask")
    assert cells(mask) == {(0, 0)}
    with pytest.raises(NxgidError, match=r"pixel_mask.nxs: the mask is 20×20 pixels"):
        import_mask(tmp_path / "pixel_mask.nxs", SHAPE)


@pytest.mark.parametrize("suffix, write", [
    (".npy", write_npy), (".tif", write_tif), (".edf", write_edf), (".h5", write_h5)])
def test_import_mask_of_wrong_shape_names_the_file(tmp_path, suffix, write):
    path = write(tmp_path / f"small{suffix}", np.zeros((4, 5), np.uint8))
    with pytest.raises(NxgidError) as info:
        import_mask(path, SHAPE)
    message = str(info.value)
    assert message == (f"{path}: the mask is 4×5 pixels (rows×cols), but the detector is 10×12")
    path = write(tmp_path / f"turned{suffix}", np.zeros((12, 10), np.uint8))
    with pytest.raises(NxgidError, match=r"turned.* 12×10 .* 10×12 \(transposed\?\)"):
        import_mask(path, SHAPE)


def test_import_mask_errors(tmp_path):
    with pytest.raises(MissingError, match=r"nothing\.npy: no such file"):
        import_mask(tmp_path / "nothing.npy", SHAPE)
    write_npy(tmp_path / "stack.npy", np.zeros((2, *SHAPE), np.uint8))
    with pytest.raises(NxgidError, match=r"stack\.npy: holds 2 frames, expected a single image"):
        import_mask(tmp_path / "stack.npy", SHAPE)
    with pytest.raises(NxgidError, match="an imported mask is 4×4 pixels"):
        edit_mask(np.zeros(SHAPE, np.int32), gaps=None, imported=[np.zeros((4, 4), bool)])


# --- preview -----------------------------------------------------------------------------


def sample_bits() -> np.ndarray:
    return edit_mask(np.zeros(SHAPE, np.int32), gaps=detector_gaps(),
                     shapes=[parse_circle("6,3,2"), parse_rect("0,0,12,1")])


@pytest.mark.parametrize("image", [
    None,
    np.arange(120, dtype=np.float64).reshape(SHAPE) - 20,  # some ≤ 0: log scale skips them
    np.zeros(SHAPE, np.uint16),  # nothing positive: linear scale
])
def test_preview_png(tmp_path, image):
    path = write_mask_preview(sample_bits(), image, tmp_path / "out" / "mask.png",
                              title="test mask")
    assert path == tmp_path / "out" / "mask.png"
    assert path.read_bytes()[:8] == PNG
    assert sorted(p.name for p in path.parent.iterdir()) == ["mask.png"]  # no partial left
    write_mask_preview(np.zeros(SHAPE, np.int32), image, path)  # overwrites
    assert path.read_bytes()[:8] == PNG


def test_preview_checks_the_image_shape(tmp_path):
    with pytest.raises(NxgidError, match="calibration image is 3×3 pixels"):
        write_mask_preview(sample_bits(), np.ones((3, 3)), tmp_path / "mask.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("with_image", [True, False])
def test_preview_of_a_large_detector_is_drawn_in_blocks(tmp_path, monkeypatch, with_image):
    import nxgid.plot.frames

    monkeypatch.setattr(nxgid.plot.frames, "_PREVIEW_PIXELS", 5)  # 10×12: 3×3 blocks of ≤ 4×4
    block = nxgid.plot.frames._blocks(sample_bits(), 4, np.bitwise_or)
    assert block.shape == (3, 3)
    assert block[1, 1] == PIXEL_MASK_GAP | PIXEL_MASK_USER  # row 5 (gap) and the circle
    assert block[1, 0] == PIXEL_MASK_GAP
    assert block[2, 2] == 0 and block[0, 2] == PIXEL_MASK_USER
    image = np.arange(120, dtype=np.float64).reshape(SHAPE) if with_image else None
    path = write_mask_preview(sample_bits(), image, tmp_path / "mask.png")
    assert path.read_bytes()[:8] == PNG
