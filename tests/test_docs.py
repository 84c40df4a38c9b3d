"""The docs run as written: every ``bash`` block of the README's Quick start and of
docs/walkthrough.md, in order, in one fresh shell per document, with the installed
``nxgid`` command, a fresh home and nothing else — so the docs cannot drift from the code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def bash_blocks(markdown: str, section: str | None = None) -> list[str]:
    """The ``bash`` blocks of *markdown*, or of its ``## section`` (up to the next
    ``## `` heading)."""
    if section is not None:
        start = markdown.index(f"\n## {section}\n")
        end = markdown.find("\n## ", start + 1)
        markdown = markdown[start:end if end > 0 else None]
    return BLOCK.findall(markdown)


def run_blocks(blocks: list[str], folder: Path) -> subprocess.CompletedProcess:
    """The blocks as one bash script that stops at the first failing command."""
    home = folder / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("NXGID_") and key not in {"XDG_CONFIG_HOME", "VIRTUAL_ENV"}}
    env["HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "100"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    return subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=900)


def _report(result: subprocess.CompletedProcess) -> str:
    return (f"exit {result.returncode}\n--- stdout (end)\n{result.stdout[-4000:]}\n"
            f"--- stderr (end)\n{result.stderr[-4000:]}")


def test_the_blocks_are_found():
    readme = bash_blocks((ROOT / "README.md").read_text(encoding="utf-8"), "Quick start")
    walk = bash_blocks((ROOT / "docs" / "walkthrough.md").read_text(encoding="utf-8"))
    assert len(readme) == 2 and "nxgid examples inputs" in readme[0]
    assert "nxgid convert" in readme[1]
    assert len(walk) >= 10 and "nxgid examples inputs" in walk[0]


def test_a_failing_block_stops_the_run(tmp_path):
    result = run_blocks(["nxgid scan list nowhere", "touch reached"], tmp_path)
    assert result.returncode == 2 and not (tmp_path / "reached").exists()
    assert result.stderr.startswith("error: ")


@pytest.mark.slow
def test_the_readme_quick_start_runs_as_written(tmp_path):
    blocks = bash_blocks((ROOT / "README.md").read_text(encoding="utf-8"), "Quick start")
    result = run_blocks(blocks, tmp_path)
    assert result.returncode == 0, _report(result)
    assert "Traceback" not in result.stderr and "error:" not in result.stderr, _report(result)
    out = result.stdout
    # the calibration finds the true geometry of the example LaB6 image (283 mm)
    distance_mm = float(re.search(r"distance ([\d.]+) mm, PONI", out).group(1))
    assert distance_mm == pytest.approx(283.0, abs=0.1)
    # every scan reduced, nothing failed; the reduced file validates
    assert re.search(r"^\d+ done$", out, re.M), _report(result)
    assert "f1_reduced.nxs: valid (" in out
    root = tmp_path / "home" / "nxgid-start"
    experiment = root / "2026-11-ID10-pentacene"
    for scan in ("s001", "s002", "s001-s002", "s003", "s004"):
        reduced = experiment / "pentacene-SiO2" / "as-grown" / scan / "f1_reduced.nxs"
        with h5py.File(reduced, "r") as f:
            assert f["img_gid_q/data/img_gid_q"].shape[0] == 4, scan
    # reduced files carry the scan's own sample name and, for the SPEC scans, the
    # measurement start (#D), not the time the frames were stacked
    as_grown = experiment / "pentacene-SiO2" / "as-grown"
    with h5py.File(as_grown / "s003" / "f1_reduced.nxs", "r") as f:
        assert f["img_gid_q/sample/name"][()].decode() == "pentacene-SiO2"
        start = f["img_gid_q/start_time"][()].decode()
    assert start.startswith("2026-11-23T09:30:00"), start
    with h5py.File(as_grown / "s001" / "f1_reduced.nxs", "r") as f:
        assert f["img_gid_q/sample/name"][()].decode() == "pentacene-SiO2"
    for picture in (root / "map.png", root / "frame.png", experiment / "f1.png"):
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
    assert "reduced  img_gid_q: s001/f1_reduced.nxs:/img_gid_q/data/img_gid_q" in out
    header = (root / "profiles.csv").read_text().splitlines()[0]
    assert header.startswith('"q_gid_pol (A^-1)","intensity frame 0"'), header
    with h5py.File(root / "s001.nxs", "r") as f:
        assert f["img_gid_q/data/img_gid_q"].shape[0] == 4
        assert f["img_gid_q/sample/name"][()].decode() == "PEN-SiO2-042"


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tmp_path):
    blocks = bash_blocks((ROOT / "docs" / "walkthrough.md").read_text(encoding="utf-8"))
    result = run_blocks(blocks, tmp_path)
    assert result.returncode == 0, _report(result)
    assert "Traceback" not in result.stderr and "error:" not in result.stderr, _report(result)
    out = result.stdout
    experiment = tmp_path / "home" / "nxgid-walk" / "2026-11-ID10-pentacene"
    assert (experiment / "calibrations" / "gid.poni").is_file()
    assert (experiment / "pentacene-SiO2" / "as-grown" / "pentacene-SiO2_s003-s004.nxs").is_file()
    assert re.search(r"^\d+ done$", out, re.M), _report(result)
    assert "failed" not in out.split("nxgid status")[-1]
    # --mask configurations/gid.nxs: the configuration's user masks, not its gaps
    import numpy as np

    with h5py.File(experiment / "configurations" / "gid.nxs", "r") as f:
        user = (f["entry/instrument/detector/pixel_mask"][()] & 256) != 0
    with h5py.File(experiment.parent / "s001_by_hand.nxs", "r") as f:
        written = f["img_gid_q/instrument/detector/mask"][()]
    assert user.sum() > 1000
    assert np.array_equal((written & 256) != 0, user)
