"""The demo's safety step: requests that would harm data, refused by the real command.

Each request runs ``nxgid`` in a child process, as a user would at the beamline, with the
demo's site settings (``NXGID_HOME``), and must end with exit status 2, one line
``error: …`` on stderr naming the culprit, and every file it names exactly as it was:

* converting a raw stack "into itself" (``-o`` the input, ``--overwrite``);
* a CBF file cut inside its binary header, on which fabio loops forever: refused within
  seconds;
* a stack written into the raw tree, which nxgid only reads;
* a configuration that is not HDF5 at all.

See ``docs/data-safety.md`` for all the promises and the test corpus behind them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Refusal:
    what: str
    status: int
    seconds: float
    message: str
    #: Whether stderr was one ``error:`` line and the files it names are unchanged.
    kept: bool


def _digest(paths: list[Path]) -> dict[Path, str | None]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in paths}


def _nxgid(site_home: Path, args: list[str], cwd: Path) -> tuple[int, str, float]:
    env = {**os.environ, "NXGID_HOME": str(site_home)}
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", "from nxgid.cli.main import main; main()",
                          *args], capture_output=True, text=True, env=env, cwd=cwd,
                         timeout=120)
    return run.returncode, run.stderr, time.perf_counter() - start


def run_safety_step(directory: Path, site_home: Path, experiment_root: Path,
                    raw_stack: Path, poni: Path, good_cbf: Path, raw_directory: Path
                    ) -> list[Refusal]:
    """Run the refused requests of the module docstring; the scratch files they need
    go to ``DIR/hostile`` (never into the raw tree)."""
    scratch = directory / "hostile"
    scratch.mkdir(exist_ok=True)
    data = good_cbf.read_bytes()
    cut = scratch / "cut_in_header.cbf"
    cut.write_bytes(data[:data.find(b"--CIF-BINARY-FORMAT-SECTION--") + 100])
    not_hdf5 = experiment_root / "configurations" / "garbage.nxs"
    not_hdf5.write_text("this is not an HDF5 file\n")
    convert = ["convert", "--poni", str(poni), "--incidence", "0.12", "--no-progress"]
    requests = [
        ("a raw stack converted into itself",
         [*convert, str(raw_stack), "-o", str(raw_stack), "--overwrite"], [raw_stack]),
        ("a CBF cut inside its binary header",
         [*convert, str(cut), "-o", str(scratch / "cut.nxs")], [cut, scratch / "cut.nxs"]),
        ("a stack written into the raw tree",
         ["stack", str(good_cbf), "-o", str(raw_directory / "stack.h5"), "--no-progress"],
         [raw_directory / "stack.h5"]),
        ("a configuration that is not HDF5",
         ["config", "show", "garbage"], [not_hdf5]),
    ]
    refusals = []
    try:
        for what, args, files in requests:
            before = _digest(files)
            status, stderr, seconds = _nxgid(site_home, args, experiment_root)
            lines = [line for line in stderr.splitlines() if line.strip()]
            kept = len(lines) == 1 and lines[0].startswith("error: ") \
                and _digest(files) == before
            refusals.append(Refusal(what, status, seconds, lines[0] if lines else "", kept))
    finally:
        not_hdf5.unlink(missing_ok=True)
    return refusals
