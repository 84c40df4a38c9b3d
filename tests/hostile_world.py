"""A small beamtime to attack: the world the hostile-input corpus runs every case in.

The world is built once through the real ``nxgid`` command (site settings, an experiment
with a calibrated Pilatus 100k configuration, a sample, a raw tree with a SPEC file and
a CBF folder, one imported scan) and copied to the same absolute path before each case,
so that every case starts from the same bytes and absolute paths (the database and the
scan files record some) stay true.

:func:`snapshot` hashes everything a command must leave alone: the experiment, the raw
tree, the site folder and an outside folder, with file contents, symlink targets, modes
and (for the raw tree) modification times.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NXGID = str(Path(sys.executable).with_name("nxgid"))
DETECTOR_SHAPE = (195, 487)  # Pilatus 100k: rows, cols
SPEC_TEXT = """#F film.spec
#E 1795424400
#D Mon Nov 23 09:00:00 2026
#O0 th  ai

#S 1  loopscan 3 1
#D Mon Nov 23 09:10:00 2026
#P0 0.0 0.15
#N 3
#L Epoch  Seconds  I0
1 1 100000
2 1 100000
3 1 100000
"""


@dataclass(frozen=True)
class World:
    """Paths of one world; ``base`` holds everything."""

    base: Path

    @property
    def site(self) -> Path:
        return self.base / "site"

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def exp(self) -> Path:
        return self.base / "analysis" / "exp"

    @property
    def raw(self) -> Path:
        return self.base / "raw" / "exp"

    @property
    def outside(self) -> Path:
        return self.base / "outside"

    @property
    def scan_dir(self) -> Path:
        return self.exp / "film" / "rt" / "s001"

    @property
    def scan_file(self) -> Path:
        return self.exp / "film" / "rt" / "film_s001.nxs"

    @property
    def configuration(self) -> Path:
        return self.exp / "configurations" / "gid.nxs"

    @property
    def database(self) -> Path:
        return self.exp / "tasks" / "nxdatabase.db"

    @property
    def good_cbf(self) -> Path:
        return self.raw / "film_001" / "frame_00001.cbf"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NXGID_")}
        env.update(NXGID_HOME=str(self.site), HOME=str(self.home), COLUMNS="120",
                   PYTHONWARNINGS="")
        return env

    def nxgid(self, *args: str, cwd: Path | None = None, timeout: float = 120,
              input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([NXGID, *args], cwd=cwd or self.exp, env=self.env(),
                              capture_output=True, text=True, timeout=timeout, input=input)


def write_cbf(path: Path, frame: np.ndarray) -> Path:
    import fabio

    path.parent.mkdir(parents=True, exist_ok=True)
    fabio.cbfimage.CbfImage(data=frame.astype(np.int32)).write(str(path))
    return path


def frames(count: int, shape: tuple[int, int] = DETECTOR_SHAPE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(10, (count, *shape)).astype(np.int32)


def write_poni(path: Path, **overrides: str | None) -> Path:
    """A PONI file for the Pilatus 100k; a key given as None is left out."""
    values: dict[str, str | None] = {
        "poni_version": "2.1",
        "Detector": "Pilatus100k",
        "Detector_config": '{"orientation": 3}',
        "Distance": "0.2",
        "Poni1": "0.01",
        "Poni2": "0.04",
        "Rot1": "0.0",
        "Rot2": "0.0",
        "Rot3": "0.0",
        "Wavelength": "1e-10",
    }
    values.update(overrides)
    path.write_text("# a PONI file\n" + "".join(
        f"{key}: {value}\n" for key, value in values.items() if value is not None))
    return path


def build(base: Path) -> World:
    """Build the world at *base* (must not exist) through the nxgid command."""
    world = World(base)
    for folder in (world.site, world.home, world.raw, world.outside, world.base / "analysis"):
        folder.mkdir(parents=True)
    for index, frame in enumerate(frames(3), start=1):
        write_cbf(world.raw / "film_001" / f"frame_{index:05d}.cbf", frame)
    (world.raw / "film.spec").write_text(SPEC_TEXT)
    poni = write_poni(world.outside / "good.poni")
    shutil.copy2(world.good_cbf, world.outside / "good.cbf")
    steps = [
        ("settings", "init", "--source", "ESRF", "--instrument", "spec",
         "--analysis-home", str(world.base / "analysis"), "--raw-home", str(world.base / "raw")),
        ("experiment", "new", "exp"),
        ("sample", "new", "film", "rt"),
        ("config", "new", "gid", "--detector", "Pilatus100k", "--distance", "200",
         "--incidence", "0.15"),
        ("calibrate", "gid", "--import-poni", str(poni)),
        ("import", "film", "rt", "--config", "gid"),
        ("recipe", "set", "img_gid_q", "q_xy=-0.5:2.2:120, q_z=-0.1:1.6:80"),
    ]
    for step in steps:
        cwd = world.exp if world.exp.is_dir() else world.base
        run = world.nxgid(*step, cwd=cwd)
        if run.returncode != 0:
            raise RuntimeError(f"building the world: nxgid {' '.join(step)}: {run.stderr}")
    shutil.copy2(world.scan_dir / "f1.h5", world.outside / "in.h5")
    run = world.nxgid("convert", str(world.good_cbf), "--poni", str(poni), "--incidence",
                      "0.15", "--bins", "q_xy=100", "--bins", "q_z=80", "--no-progress",
                      "-o", str(world.outside / "reduced.nxs"))
    if run.returncode != 0:
        raise RuntimeError(f"building the world: nxgid convert: {run.stderr}")
    return world


def restore(template: Path, base: Path) -> World:
    """A fresh copy of the world at *base* (its previous contents removed)."""
    if base.exists():
        subprocess.run(["chmod", "-R", "u+rwX", str(base)], check=False)
        shutil.rmtree(base)
    shutil.copytree(template, base, symlinks=True)
    return World(base)


#: Files a failed command may still touch: lock files (empty, created to serialise
#: writers) and the experiment log (which records what was tried).
def _ignored(path: Path) -> bool:
    """Lock files, the log (checked separately: appended only) and SQLite's WAL and shared
    memory files, which SQLite itself creates next to a WAL database any reader opens."""
    return (path.name.endswith((".lock", ".db-wal", ".db-shm"))
            or path.name == "nxlogger.log")


def _database_digest(path: Path) -> str | None:
    """Digest of the SQL dump of an SQLite file (with its WAL), read from a copy so that
    the look changes nothing; None when it does not open as a database."""
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("", "-wal"):
            source = path.with_name(path.name + suffix)
            if source.is_file():
                shutil.copyfile(source, Path(tmp) / ("copy.db" + suffix))
        try:
            connection = sqlite3.connect(Path(tmp) / "copy.db")
            try:
                dump = "\n".join(connection.iterdump())
            finally:
                connection.close()
        except sqlite3.DatabaseError:
            return None
    return hashlib.sha256(dump.encode()).hexdigest()


def snapshot(world: World) -> dict[str, str]:
    """Path (relative to the world) → digest of what is there."""
    state: dict[str, str] = {}
    for top in (world.site, world.exp, world.base / "raw", world.outside):
        for folder, dirs, files in os.walk(top, followlinks=False):
            for name in sorted(dirs + files):
                path = Path(folder) / name
                key = str(path.relative_to(world.base))
                if _ignored(path):
                    continue
                info = path.lstat()
                if path.is_symlink():
                    state[key] = f"link:{os.readlink(path)}"
                elif path.is_dir():
                    state[key] = f"dir:{oct(info.st_mode)}"
                elif path.is_file():
                    digest = (path.suffix == ".db" and _database_digest(path)) \
                        or hashlib.sha256(path.read_bytes()).hexdigest()
                    raw = key.startswith("raw")
                    state[key] = f"file:{oct(info.st_mode)}:{digest}" + (
                        f":{info.st_mtime_ns}" if raw else "")
                else:
                    state[key] = f"special:{oct(info.st_mode)}"
    return state


def log_text(world: World) -> str:
    path = world.exp / "tasks" / "nxlogger.log"
    return path.read_text() if path.exists() else ""
