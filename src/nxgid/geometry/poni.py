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


class PoniKeys(dict):
    """``key → value`` of a PONI file, with :attr:`lines`: the line each key is on."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[str, int] = {}

    def where(self, path: Path, key: str) -> str:
        """``PONI file P, line N`` for messages about *key* (the file alone if unknown)."""
        base = key.split()[0]  # "Detector_config pixel1" is on Detector_config's line
        line = self.lines.get(base)
        return f"PONI file {path}" + (f", line {line}" if line else "")


def read_poni_keys(path: Path) -> PoniKeys:
    """``key: value`` lines of a PONI file (comments and blank lines skipped)."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise PoniError(f"PONI file {path}: {size} bytes, expected a small text file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise PoniError(f"PONI file {path}: not a text file (expected 'Key: value' lines "
                        "as pyFAI writes them)") from None
    keys = PoniKeys()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PoniError(f"PONI file {path}, line {number}: {line[:40]!r} is not "
                            "'Key: value'")
        keys[key.strip()] = value.strip()
        keys.lines[key.strip()] = number
    if not keys:
        raise PoniError(f"PONI file {path}: empty, expected the keys "
                        + ", ".join(GEOMETRY_KEYS))
    return keys


def _number(keys: PoniKeys, path: Path, key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PoniError(f"{keys.where(path, key)}: {key} is {text!r}, expected a number") \
            from None
    if not math.isfinite(value):
        raise PoniError(f"{keys.where(path, key)}: {key} is {text}, expected a finite "
                        "number")
    return value


def check_poni(path: Path) -> PoniKeys:
    """The keys of a PONI file after checking them; :class:`PoniError` names the first
    problem: a missing key, a value that is not a finite number, a distance, wavelength
    or pixel size that is not positive, a detector configuration that is not JSON."""
    keys = read_poni_keys(path)
    missing = [key for key in GEOMETRY_KEYS if key not in keys]
    if missing:
        raise PoniError(f"PONI file {path}: no {missing[0]} (expected "
                        + ", ".join(GEOMETRY_KEYS) + "; pyFAI would assume a value)")
    for key in GEOMETRY_KEYS:
        value = _number(keys, path, key, keys[key])
        if key in POSITIVE_KEYS and value <= 0:
            raise PoniError(f"{keys.where(path, key)}: {key} is {keys[key]} m, expected a "
                            "positive value")
    pixels: list[tuple[str, object]] = []
    if "Detector_config" in keys:
        try:
            config = json.loads(keys["Detector_config"])
        except json.JSONDecodeError as exc:
            raise PoniError(f"{keys.where(path, 'Detector_config')}: Detector_config is "
                            f"not JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(config, dict):
            raise PoniError(f"{keys.where(path, 'Detector_config')}: Detector_config is "
                            f"{keys['Detector_config']!r}, expected a JSON object")
        pixels += [(f"Detector_config {name}", config[name])
                   for name in ("pixel1", "pixel2") if name in config]
    pixels += [(name, keys[name]) for name in ("PixelSize1", "PixelSize2") if name in keys]
    if "Detector" not in keys and len(pixels) < 2:
        raise PoniError(f"PONI file {path}: no Detector (nor PixelSize1 and PixelSize2)")
    for name, value in pixels:
        size = _number(keys, path, name, str(value))
        if size <= 0:
            raise PoniError(f"{keys.where(path, name)}: {name} (pixel size) is {value} m, "
                            "expected a positive value")
    return keys

