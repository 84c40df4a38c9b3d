"""On-disk cache of resolved targets and pixel→bin maps.

The key is a hash of everything that defines a map: the geometry (pyFAI config), the
sample, the requested targets, the q unit, the corrections, and the mask, dark and
flat arrays (hashed by content), plus the incidence angle of each map and the cache
format version. A hit skips computing pixel coordinates and building maps. Files are
written to a temporary name and renamed, so a crash never leaves a half-written entry;
an unreadable entry is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from nxgid.conversion.binmap import BinMap
from nxgid.conversion.grid import Axis, Target

log = logging.getLogger("nxgid.conversion")

#: Bump when the map layout or binning rules change.
FORMAT_VERSION = 2  # 2: footprint bins, adaptive splitting, chi turn per target
_ARRAYS = ("indptr", "pixels", "weights", "entry_norm", "entry_dark", "norm", "dark",
           "counts")


def array_digest(array: np.ndarray | None) -> str | None:
    if array is None:
        return None
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(array.view(np.uint8).ravel())
    digest.update(f"{array.dtype}{array.shape}".encode())
    return digest.hexdigest()[:24]


def make_key(record: dict) -> str:
    text = json.dumps({"format": FORMAT_VERSION, **record}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class MapCache:
    """A directory of cached conversions: ``<key>.json`` (targets) and
    ``<key>-<angle>.npz`` (maps of one incidence angle)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).expanduser()

    def _write(self, path: Path, write) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=self.directory)
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # --- targets ------------------------------------------------------------------------

    def load_targets(self, key: str) -> list[Target] | None:
        path = self.directory / f"{key}.json"
        try:
            data = json.loads(path.read_text())
            return [Target(t["name"], tuple(Axis(**a) for a in t["axes"]),
                           tuple(tuple(c) for c in t["cuts"]), float(t["chi_from_deg"]))
                    for t in data]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable map cache entry %s: %s", path, exc)
            return None

    def save_targets(self, key: str, targets: list[Target]) -> None:
        data = [{"name": t.name,
                 "axes": [{f.name: getattr(a, f.name) for f in fields(a)} for a in t.axes],
                 "cuts": [list(c) for c in t.cuts], "chi_from_deg": t.chi_from_deg}
                for t in targets]
        self._write(self.directory / f"{key}.json",
                    lambda tmp: Path(tmp).write_text(json.dumps(data)))

    # --- maps -----------------------------------------------------------------------------

    @staticmethod
    def _map_path(directory: Path, key: str, angle: float) -> Path:
        return directory / f"{key}-{angle!r}.npz"

    def load_maps(self, key: str, angle: float, targets: list[Target]
                  ) -> dict[str, BinMap] | None:
        path = self._map_path(self.directory, key, angle)
        try:
            with np.load(path, allow_pickle=False) as data:
                return {t.name: BinMap(target=t, **{n: data[f"{t.name}/{n}"] for n in _ARRAYS})
                        for t in targets}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable map cache entry %s: %s", path, exc)
            return None

    def save_maps(self, key: str, angle: float, maps: dict[str, BinMap]) -> None:
        arrays = {f"{name}/{n}": getattr(m, n) for name, m in maps.items() for n in _ARRAYS}

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        self._write(self._map_path(self.directory, key, angle), write)
