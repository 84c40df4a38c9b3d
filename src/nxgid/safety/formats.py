"""Image headers checked before a reader trusts them.

fabio believes what a header says: it loops forever looking for the data of a CBF cut
inside its binary header, pads an EDF whose data is shorter than its header says with
zeros (logging an error nobody sees), and allocates whatever size a header declares.
These checks read the header bytes themselves and compare them with the file's size, so
a damaged file is reported with what is wrong before any reader sees it.
"""

from __future__ import annotations

import re
from pathlib import Path

from nxgid.errors import NxgidError

CBF_SECTION = b"--CIF-BINARY-FORMAT-SECTION--"
CBF_DATA_START = b"\x0c\x1a\x04\xd5"
#: Where a CBF's binary section must start (Pilatus and Eiger headers are a few kB).
CBF_HEADER_LIMIT = 1 << 20
#: Largest frame a header may declare (elements): 2**31, beyond any area detector.
MAX_FRAME_ELEMENTS = 1 << 31


class DamagedFileError(NxgidError):
    """A file whose header and contents disagree (cut, padded or corrupt)."""


def looks_like_cbf(path: Path, head: bytes) -> bool:
    return path.suffix.lower() == ".cbf" or head.startswith(b"###CBF")


def _cbf_keys(block: bytes) -> dict[str, str]:
    keys = {}
    for line in block.splitlines():
        key, sep, value = line.decode("ascii", "replace").partition(":")
        if sep:
            keys[key.strip()] = value.strip().strip('"')
    return keys


def _positive_int(path: Path, keys: dict[str, str], key: str, required: bool = True
                  ) -> int | None:
    text = keys.get(key)
    if text is None:
        if required:
            raise DamagedFileError(f"{path}: CBF binary header has no {key}")
        return None
    if not re.fullmatch(r"\d{1,15}", text) or int(text) <= 0:
        raise DamagedFileError(f"{path}: CBF {key} is {text!r}, expected a positive whole "
                               "number")
    return int(text)


def check_cbf(path: Path) -> None:
    """A CBF's binary section is complete and its declared sizes fit the file."""
    size = path.stat().st_size
    with open(path, "rb") as stream:
        head = stream.read(min(size, CBF_HEADER_LIMIT))
    section = head.find(CBF_SECTION)
    if section < 0:
        what = "is empty" if size == 0 else (
            f"has no binary section ({CBF_SECTION.decode()}) in its first "
            f"{min(size, CBF_HEADER_LIMIT)} bytes")
        raise DamagedFileError(f"{path}: {what}; expected a CBF image (cut or not a CBF?)")
    start = head.find(CBF_DATA_START, section)
    if start < 0:
        raise DamagedFileError(f"{path}: the CBF binary header ends without its "
                               "start-of-data marker; the file is cut")
    keys = _cbf_keys(head[section:start])
    binary = _positive_int(path, keys, "X-Binary-Size")
    fastest = _positive_int(path, keys, "X-Binary-Size-Fastest-Dimension")
    second = _positive_int(path, keys, "X-Binary-Size-Second-Dimension")
    elements = _positive_int(path, keys, "X-Binary-Number-of-Elements", required=False)
    available = size - (start + len(CBF_DATA_START))
    if binary > available:
        raise DamagedFileError(f"{path}: CBF X-Binary-Size is {binary} bytes, but the file "
                               f"holds only {available} bytes of data; the file is cut")
    pixels = fastest * second
    if pixels > MAX_FRAME_ELEMENTS:
        raise DamagedFileError(f"{path}: CBF declares a {second}×{fastest} frame, more "
                               f"than {MAX_FRAME_ELEMENTS} pixels; the header is corrupt")
    if elements is not None and elements != pixels:
        raise DamagedFileError(f"{path}: CBF X-Binary-Number-of-Elements is {elements}, "
                               f"but the dimensions make {second}×{fastest} = {pixels}")
    compressed = "byte_offset" in keys.get("conversions", "").lower() or \
        "BYTE_OFFSET" in head[section:start].decode("ascii", "replace")
    if compressed and binary < pixels:  # byte offset: at least one byte per pixel
        raise DamagedFileError(f"{path}: CBF holds {binary} bytes for {pixels} pixels, "
                               "fewer than byte-offset compression can encode; the header "
                               "is corrupt")


def looks_like_edf(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in (".edf", ".ehf") or head.lstrip()[:1] == b"{"


#: Largest EDF header read (fabio's own limit is similar; real ones are a few kB).
EDF_HEADER_LIMIT = 1 << 20


def check_edf_header(path: Path) -> None:
    """The first EDF header is closed and its dimensions are positive whole numbers."""
    with open(path, "rb") as stream:
        head = stream.read(EDF_HEADER_LIMIT)
    if not head:
        raise DamagedFileError(f"{path}: is empty; expected an EDF image")
    opening = head.find(b"{")
    closing = head.find(b"}", opening)
    if opening < 0 or opening > 16:
        raise DamagedFileError(f"{path}: does not start with an EDF header '{{'")
    if closing < 0:
        raise DamagedFileError(f"{path}: the EDF header is not closed by '}}' in its first "
                               f"{len(head)} bytes; the file is cut or not an EDF file")
    keys = {}
    for item in head[opening + 1:closing].decode("latin-1").split(";"):
        key, sep, value = item.partition("=")
        if sep:
            keys[key.strip().lower()] = value.strip()
    for key in ("dim_1", "dim_2"):
        text = keys.get(key)
        if text is not None and (not re.fullmatch(r"\d{1,9}", text) or int(text) == 0):
            raise DamagedFileError(f"{path}: EDF {key.capitalize()} is {text!r}, expected a "
                                   "positive whole number")


def check_edf_frames(path: Path, image) -> None:
    """Every frame of a fabio ``EdfImage`` (headers read) has the data its header says."""
    size = path.stat().st_size
    for index in range(image.nframes):
        frame = image._frames[index] if hasattr(image, "_frames") else image.get_frame(index)
        start = getattr(frame, "start", None)
        compressed = getattr(frame, "_data_compression", None)
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "_dtype", None) or getattr(frame, "dtype", None)
        if start is None or compressed or shape is None or dtype is None:
            continue
        need = int(dtype.itemsize) * int(shape[0]) * int(shape[1])
        if getattr(frame, "bfname", None):  # data in a separate binary file
            continue
        available = size - int(start)
        if available < need:
            where = f" frame {index}" if image.nframes > 1 else ""
            raise DamagedFileError(
                f"{path}:{where} header says {shape[0]}×{shape[1]} {dtype} pixels "
                f"({need} bytes), but the file holds only {max(available, 0)} bytes of "
                "data; the file is cut")
