"""Detector masks as NXdetector ``pixel_mask`` bitfields, for ``nxgid mask``.

A mask is an int32 (rows, cols) bitfield: bit 0 (:data:`~nxgid.names.PIXEL_MASK_GAP`)
marks the detector's own gaps (its pyFAI mask), bit 8
(:data:`~nxgid.names.PIXEL_MASK_USER`) what the user masked, so the two stay
distinguishable; other bits are kept as they are (a pixel is ignored if any of the low 16
bits is set). Shapes are in pixel units with x = column and y = row; pixel (r, c) has its
centre at (x, y) = (c + 0.5, r + 0.5), and a shape covers the pixels whose centres it
contains: a :class:`Rect` x,y,w,h those in [x, x+w) × [y, y+h), a :class:`Circle` those
within r of its centre, a :class:`Polygon` those inside by the even-odd rule (left and
bottom edges in, right and top edges out, so a rectangular polygon equals the Rect).
:func:`edit_mask` applies one ``nxgid mask`` invocation to a bitfield, as a pure function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from nxgid.errors import NxgidError
from nxgid.names import PIXEL_MASK_GAP, PIXEL_MASK_USER
from nxgid.plot.frames import MASKED_BITS, mask_summary  # noqa: F401  (nxgid mask's counts)

_GAP, _USER = np.int32(PIXEL_MASK_GAP), np.int32(PIXEL_MASK_USER)


def _size(shape: Sequence[int]) -> str:
    return "×".join(str(int(n)) for n in shape)


def _g(values: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in values)


class _Shape:
    """Common part of the shapes: validation, the option text, the clipped pixel set."""

    # Subclasses define: _values() → the numbers of the option value; _fits(values) →
    # whether finite *values* suit the shape; _box() → bounding box (x0, y0, x1, y1);
    # _inside(x, y) → True for the (broadcast) points the shape covers.
    option: ClassVar[str]  # the CLI option, e.g. "--rect"
    form: ClassVar[str]  # what its value must be

    def __post_init__(self) -> None:
        values = self._values()
        if not (all(map(math.isfinite, values)) and self._fits(values)):
            raise NxgidError(f"{self.option} {_g(values)!r}: expected {self.form}")

    def __str__(self) -> str:
        return f"{self.option} {_g(self._values())}"

    @classmethod
    def _parse(cls, text: str) -> list[float]:
        """The option value → its numbers; NxgidError naming option, value and form."""
        try:
            values = [float(part) for part in str(text).split(",")]
        except ValueError:
            values = []
        if not (values and all(map(math.isfinite, values)) and cls._fits(values)):
            raise NxgidError(f"{cls.option} {text!r}: expected {cls.form}")
        return values

    def pixels(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean (rows, cols) array: True where the pixel centre lies in the shape.

        Parts outside the detector are clipped; NxgidError if no pixel is covered (a shape
        entirely outside the detector, or too small to contain a pixel centre).
        """
        rows, cols = (int(n) for n in shape)
        x0, y0, x1, y1 = self._box()
        out = np.zeros((rows, cols), dtype=bool)
        # only the rows/columns whose centres may lie in the bounding box are tested
        c0, c1 = max(0, math.floor(x0 - 0.5)), min(cols, math.ceil(x1 - 0.5) + 1)
        r0, r1 = max(0, math.floor(y0 - 0.5)), min(rows, math.ceil(y1 - 0.5) + 1)
        if c0 < c1 and r0 < r1:
            x = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5
            y = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5
            out[r0:r1, c0:c1] = self._inside(x, y)
        if not out.any():
            outside = x1 <= 0 or y1 <= 0 or x0 >= cols or y0 >= rows
            where = "lies outside" if outside else "covers no pixel centre of"
            raise NxgidError(f"{self} masks no pixel: it {where} the {_size(shape)}-pixel "
                             f"(rows×cols) detector (x 0–{cols}, y 0–{rows}; pixel (r, c) has "
                             "its centre at x = c + 0.5, y = r + 0.5)")
        return out


@dataclass(frozen=True)
class Rect(_Shape):
    """Pixels whose centres lie in [x, x+w) × [y, y+h) (x = column, y = row)."""

    x: float
    y: float
    w: float
    h: float
    option: ClassVar[str] = "--rect"
    form: ClassVar[str] = "x,y,w,h (4 numbers, w and h > 0)"

    def _values(self) -> tuple[float, ...]:
        return self.x, self.y, self.w, self.h

    @classmethod
    def _fits(cls, values: Sequence[float]) -> bool:
        return len(values) == 4 and values[2] > 0 and values[3] > 0

    def _box(self) -> tuple[float, float, float, float]:
        return self.x, self.y, self.x + self.w, self.y + self.h

    def _inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return ((x >= self.x) & (x < self.x + self.w)) & ((y >= self.y) & (y < self.y + self.h))


@dataclass(frozen=True)
class Circle(_Shape):
    """Pixels whose centres lie within r of (x, y) (boundary included)."""

    x: float
    y: float
    r: float
    option: ClassVar[str] = "--circle"
    form: ClassVar[str] = "x,y,r (3 numbers, r > 0)"

    def _values(self) -> tuple[float, ...]:
        return self.x, self.y, self.r

    @classmethod
    def _fits(cls, values: Sequence[float]) -> bool:
        return len(values) == 3 and values[2] > 0

    def _box(self) -> tuple[float, float, float, float]:
        return self.x - self.r, self.y - self.r, self.x + self.r, self.y + self.r

    def _inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x - self.x) ** 2 + (y - self.y) ** 2 <= self.r**2


@dataclass(frozen=True)
class Polygon(_Shape):
    """Pixels whose centres lie inside the polygon by the even-odd (crossing-number) rule;
    *points* are (x, y) vertices, the polygon closes itself."""

    points: tuple[tuple[float, float], ...]
    option: ClassVar[str] = "--polygon"
    form: ClassVar[str] = "x1,y1,x2,y2,… (pairs of numbers, at least 3 points)"

    def _values(self) -> tuple[float, ...]:
        if any(len(point) != 2 for point in self.points):
            return (math.nan,)  # refused by __post_init__
        return tuple(float(v) for point in self.points for v in point)

    @classmethod
    def _fits(cls, values: Sequence[float]) -> bool:
        return len(values) >= 6 and len(values) % 2 == 0

    def _box(self) -> tuple[float, float, float, float]:
        xs, ys = zip(*self.points, strict=True)
        return min(xs), min(ys), max(xs), max(ys)

    def _inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        inside = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
        points = tuple(self.points)
        for (xi, yi), (xj, yj) in zip(points, points[1:] + points[:1], strict=True):
            if yi == yj:
                continue  # a horizontal edge is never crossed
            crosses = (yi > y) != (yj > y)
            # x < the edge's x at height y, as a product (exact for half-integer points)
            left = ((x - xi) * (yj - yi) - (xj - xi) * (y - yi)) * (1 if yj > yi else -1) < 0
            inside ^= crosses & left
        return inside


Shape = Rect | Circle | Polygon


def parse_rect(text: str) -> Rect:
    """``"x,y,w,h"`` (the ``--rect`` option) → :class:`Rect`."""
    return Rect(*Rect._parse(text))


def parse_circle(text: str) -> Circle:
    """``"x,y,r"`` (the ``--circle`` option) → :class:`Circle`."""
    return Circle(*Circle._parse(text))


def parse_polygon(text: str) -> Polygon:
    """``"x1,y1,x2,y2,…"`` (the ``--polygon`` option, ≥ 3 points) → :class:`Polygon`."""
    values = Polygon._parse(text)
    return Polygon(tuple(zip(values[::2], values[1::2], strict=True)))


def _masked(array: np.ndarray) -> np.ndarray:
    """Non-zero = masked; for integer arrays, any of the low 16 bits set."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array.copy()
    if np.issubdtype(array.dtype, np.integer):
        return (array.astype(np.int64) & MASKED_BITS) != 0
    return array != 0


def _check_shape(array: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if tuple(array.shape) != tuple(shape):
        hint = " (transposed?)" if tuple(array.shape) == tuple(shape)[::-1] else ""
        raise NxgidError(f"{what} is {_size(array.shape)} pixels (rows×cols), but the "
                         f"detector is {_size(shape)}{hint}")


def gap_bits(detector_mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """int32 (rows, cols) with bit 0 set on the detector's gaps (non-zero in its mask)."""
    bits = np.zeros(shape, dtype=np.int32)
    if detector_mask is not None:
        detector_mask = np.asarray(detector_mask)
        _check_shape(detector_mask, shape, "the detector's own mask")
        bits[detector_mask != 0] = _GAP
    return bits


def edit_mask(current: np.ndarray, *, gaps: np.ndarray | None,
              shapes: Sequence[Shape] = (), imported: Sequence[np.ndarray] = (),
              below: float | None = None, image: np.ndarray | None = None,
              replace: bool = False, clear: bool = False) -> np.ndarray:
    """One ``nxgid mask`` edit of the bitfield *current*; a new int32 array is returned.

    In order: ``replace`` keeps only the gap bit (bit 0) of *current*, dropping the user
    bit and every other bit alike; ``clear`` removes bit 8 everywhere; bit 0 is then set
    exactly from *gaps* (non-zero = gap) if given, else kept from *current* (a boolean
    *current* counts as all user mask); finally bit 8 is set on the pixels of *shapes*, of
    the *imported* masks (non-zero = masked; integer ones: any of the low 16 bits) and of
    *image* at or below *below* — gaps excepted, which are masked already and often read
    0 or -1, so that the user count means something. *current* is never modified.
    """
    current = np.asarray(current)
    if current.ndim != 2 or not (current.dtype == bool
                                 or np.issubdtype(current.dtype, np.integer)):
        raise NxgidError(f"the current mask holds {current.dtype} of shape {current.shape}, "
                         "expected an integer (rows, cols) pixel_mask")
    shape = (int(current.shape[0]), int(current.shape[1]))
    if current.dtype == bool:  # a plain mask: all of it user-masked
        bits = np.where(current, _USER, np.int32(0)).astype(np.int32)
    else:
        bits = current.astype(np.int32, copy=True)
    if replace:
        bits &= _GAP
    if clear:
        bits &= ~_USER
    if gaps is not None:
        bits = (bits & ~_GAP) | gap_bits(gaps, shape)
    user = np.zeros(shape, dtype=bool)
    for item in shapes:
        user |= item.pixels(shape)
    for array in imported:
        array = np.asarray(array)
        _check_shape(array, shape, "an imported mask")
        user |= _masked(array)
    if below is not None:
        if image is None:
            raise NxgidError("--below needs the powder image of a calibration, and this "
                             "configuration has none (an imported PONI carries no image): "
                             "calibrate it with `nxgid calibrate NAME --image FILE`, or "
                             "mask the pixels of an image with --import FILE")
        image = np.asarray(image)
        _check_shape(image, shape, "the calibration image")
        user |= (image <= below) & ((bits & _GAP) == 0)
    bits[user] |= _USER
    return bits


def import_mask(path: str | Path, shape: tuple[int, int], *,
                dataset: str | None = None) -> np.ndarray:
    """A mask file (any fabio format, .npy, HDF5 with *dataset* or one found) → boolean
    (rows, cols), True = masked: non-zero, or for integers any of the low 16 bits set."""
    from nxgid.images.series import read_image

    array = read_image(path, dataset=dataset, reduce=None)
    _check_shape(array, shape, f"{path}: the mask")
    return _masked(array)


def write_mask_preview(bits: np.ndarray, image: np.ndarray | None, path: str | Path,
                       title: str = "") -> Path:
    """PNG of the mask over the calibration *image* (:func:`nxgid.plot.frames.
    draw_detector_image`)."""
    from nxgid.plot.frames import draw_detector_image

    return draw_detector_image(image, bits, path, title=title,
                               image_name="the calibration image")

