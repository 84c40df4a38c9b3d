"""PONI files checked where they enter: every key present, every number sane.

pyFAI reads a PONI file leniently: a missing ``Distance`` becomes 1 m, a negative one is
kept, ``nan`` is a number. A calibration is the geometry of every map made from it, so
nxgid reads the keys itself first and refuses a file that does not describe a detector
that can exist, naming the file and the key.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from nxgid.errors import NxgidError

#: Keys every PONI file must give (pyFAI's names), each a finite number.
GEOMETRY_KEYS = ("Distance", "Poni1", "Poni2", "Rot1", "Rot2", "Rot3", "Wavelength")
#: Of those, the ones that must be positive.
POSITIVE_KEYS = ("Distance", "Wavelength")
#: Largest PONI file read (a real one is well under 1 kB).
MAX_BYTES = 1 << 20


class PoniError(NxgidError):
    """A PONI file that does not describe a usable geometry."""


def read_poni_keys(path: Path) -> dict[str, str]:
    """``key: value`` lines of a PONI file (comments and blank lines skipped)."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise PoniError(f"PONI file {path}: {size} bytes, expected a small text file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise PoniError(f"PONI file {path}: not a text file (expected 'Key: value' lines "
                        "as pyFAI writes them)") from None
    keys: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PoniError(f"PONI file {path}: line {line[:40]!r} is not 'Key: value'")
        keys[key.strip()] = value.strip()
    if not keys:
        raise PoniError(f"PONI file {path}: empty, expected the keys "
                        + ", ".join(GEOMETRY_KEYS))
    return keys


def _number(path: Path, key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PoniError(f"PONI file {path}: {key} is {text!r}, expected a number") from None
    if not math.isfinite(value):
        raise PoniError(f"PONI file {path}: {key} is {text}, expected a finite number")
    return value


def check_poni(path: Path) -> dict[str, str]:
    """The keys of a PONI file after checking them; :class:`PoniError` names the first
    problem: a missing key, a value that is not a finite number, a distance, wavelength
    or pixel size that is not positive, a detector configuration that is not JSON."""
    keys = read_poni_keys(path)
    missing = [key for key in GEOMETRY_KEYS if key not in keys]
    if missing:
        raise PoniError(f"PONI file {path}: no {missing[0]} (expected "
                        + ", ".join(GEOMETRY_KEYS) + "; pyFAI would assume a value)")
    for key in GEOMETRY_KEYS:
        value = _number(path, key, keys[key])
        if key in POSITIVE_KEYS and value <= 0:
            unit = "m"
            raise PoniError(f"PONI file {path}: {key} is {keys[key]} {unit}, expected a "
                            "positive value")
    pixels: list[tuple[str, object]] = []
    if "Detector_config" in keys:
        try:
            config = json.loads(keys["Detector_config"])
        except json.JSONDecodeError as exc:
            raise PoniError(f"PONI file {path}: Detector_config is not JSON ({exc.msg} at "
                            f"character {exc.pos})") from None
        if not isinstance(config, dict):
            raise PoniError(f"PONI file {path}: Detector_config is {keys['Detector_config']!r}"
                            ", expected a JSON object")
        pixels += [(f"Detector_config {name}", config[name])
                   for name in ("pixel1", "pixel2") if name in config]
    pixels += [(name, keys[name]) for name in ("PixelSize1", "PixelSize2") if name in keys]
    if "Detector" not in keys and len(pixels) < 2:
        raise PoniError(f"PONI file {path}: no Detector (nor PixelSize1 and PixelSize2)")
    for name, value in pixels:
        size = _number(path, name, str(value))
        if size <= 0:
            raise PoniError(f"PONI file {path}: {name} (pixel size) is {value} m, expected "
                            "a positive value")
    return keys

