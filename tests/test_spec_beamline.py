"""The ``spec`` beamline: a SPEC file written here with CBF image folders, and every real
SPEC file shipped in spec2nexus' data folder (scans from public beamlines)."""

from __future__ import annotations

import math
import os
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nxgid.beamlines.base import RawScan, ScanLogs
from nxgid.beamlines.spec import SpecBeamLine, iso_time, requested_points
from nxgid.errors import MissingError, NxgidError, SettingsError

SPEC = """\
#F S1.spec
#E 1705309200
#D Mon Jan 15 10:00:00 2024
#C S1  User = tester
#O0 phi  chi  Theta  omega
#O1 ai  temp

#S 1  ascan  phi 0 10  4 1
#D Mon Jan 15 10:05:00 2024
#T 1  (Seconds)
#P0 5 90 0.5 1
#P1 0.2 300
#N 5
#L phi  mon  Seconds  temp  det
0 1000 1 299.5 10
2.5 1001 1 299.6 11
5 1002 1 299.7 12
7.5 1003 1 299.8 13
10 1004 1 299.9 14

#S 2  ascan  ai 0.1 0.3  2 2
#D Mon Jan 15 10:10:00 2024
#T 2  (Seconds)
#P0 6 91 0.6 2
#P1 0.1 301
#N 3
#L ai  Monitor  det
0.1 500 1
0.2 510 2
0.3 520 3

#S 3  ascan  phi 0 10  10 1
#D Mon Jan 15 10:15:00 2024
#P0 7 92 0.7 3
#P1 0.2 302
#N 3
#L phi  mon  Seconds  det
0 900 1 1
1 901 1 2
2 902 1 3
#C Mon Jan 15 10:15:05 2024.  Scan aborted after 3 points.

#S 4  ascan  phi 0 1  1 1
#D Mon Jan 15 10:20:00 2024
#P0 8 93 0.8 4
#P1 0.2 303
#N 2
#L phi  mon  det
0 1 1
1 2 2

#F S1.spec
#E 1705312800
#D Mon Jan 15 11:00:00 2024
#O0 ai  Theta
#O1 phi  temp

#S 5  ascan  chi 80 90  1 1
#D Mon Jan 15 11:05:00 2024
#P0 0.3 12.5
#P1 45 310
#N 2
#L chi  mon  det
80 700 1
90 701 2

#S 2  ascan  chi 80 90  1 1
#D Mon Jan 15 11:10:00 2024
#P0 0.3 12.5
#P1 45 310
#N 2
#L chi  mon  det
80 700 1
90 701 2
"""

#: Images per scan folder (scan 4 has no folder, scan 5 an empty one).
IMAGES = {1: 5, 2: 2, 3: 3, 5: 0}


def _write_cbf(path: Path, value: int) -> None:
    from fabio.cbfimage import CbfImage

    CbfImage(data=np.full((4, 6), value, dtype=np.int32)).write(str(path))


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    root.mkdir()
    (root / "S1.spec").write_text(SPEC)
    for scan, count in IMAGES.items():
        folder = root / f"S1_{scan:03d}"
        folder.mkdir()
        for i in range(count):
            _write_cbf(folder / f"S1_{scan:03d}_{i:05d}.cbf", i)
        (folder / "notes.txt").write_text("not an image")
    return root


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _by_name(scans: list[RawScan]) -> dict[str, RawScan]:
    return {s.scan: s for s in scans}


def _check_scans(beamline: SpecBeamLine) -> None:
    scans = beamline.raw_scans("S1", "l1")
    assert [s.scan for s in scans] == ["s001", "s002", "s003", "s004", "s005", "s002.2"]
    found = _by_name(scans)
    assert all(s.label == "l1" for s in scans)
    assert found["s001"].skipped is None
    assert [p.name for p in found["s001"].entries["f1"]] == [
        f"S1_001_{i:05d}.cbf" for i in range(5)]
    assert found["s001"].source["command"] == "ascan phi 0 10 4 1"
    assert found["s001"].source["spec_scan"] == "1.1"
    assert found["s001"].source["state"] == "complete"
    assert found["s002"].skipped is None and len(found["s002"].entries["f1"]) == 2
    # an aborted scan is listed, with its state
    assert found["s003"].skipped is None
    assert found["s003"].source["state"] == "aborted after 3 of 11 points"
    assert "no image folder" in found["s004"].skipped
    assert "S1_004" in found["s004"].skipped
    assert "no image files" in found["s005"].skipped
    # the second `#S 2` has its own name, but the same folder as the first `#S 2`
    assert found["s002.2"].source["spec_scan"] == "2.2"
    assert "also that of SPEC scan 2.1" in found["s002.2"].skipped
    for scan in scans:
        assert scan.skipped is None or "\n" not in scan.skipped

    logs = beamline.logs(found["s001"])
    assert logs.start_time == "2024-01-15T10:05:00"
    assert logs.monitor == [1000, 1001, 1002, 1003, 1004]
    assert logs.counting_time_s == [1, 1, 1, 1, 1]
    assert logs.temperature_K == pytest.approx([299.5, 299.6, 299.7, 299.8, 299.9])
    assert logs.angles_deg["phi"] == [0, 2.5, 5, 7.5, 10]  # scanned: the column
    assert logs.angles_deg["chi"] == [90] * 5  # not scanned: #P, once per frame
    assert logs.angles_deg["theta"] == [0.5] * 5  # "th" → "Theta" of #O
    assert logs.angles_deg["omega"] == [1] * 5
    assert logs.angles_deg["incidence_angle"] == [0.2] * 5
    assert logs.table["det"] == [10, 11, 12, 13, 14]
    assert logs.warnings == []

    # more SPEC points than images: per frame, with a warning naming both numbers
    logs = beamline.logs(found["s002"])
    assert logs.warnings == ["scan 2: 2 images, 3 SPEC points"]
    assert logs.monitor == [500, 510]  # "Monitor": a fallback of the default "mon"
    assert logs.counting_time_s == [2, 2]  # no column: the #T preset
    assert logs.temperature_K == [301, 301]  # no column: the `temp` positioner
    assert logs.angles_deg["incidence_angle"] == [0.1, 0.2]
    assert logs.angles_deg["phi"] == [6, 6]
    assert logs.table["ai"] == [0.1, 0.2, 0.3]  # the table stays as SPEC wrote it

    logs = beamline.logs(found["s003"])
    assert logs.warnings == ["scan 3: aborted after 3 of 11 points"]
    assert logs.monitor == [900, 901, 902]
    assert logs.temperature_K == [302] * 3

    # the #O block changed mid-file: scan 5 uses the second one
    logs = beamline.logs(RawScan("s005", "l1", source=found["s005"].source))
    assert logs.angles_deg["chi"] == [80, 90]
    assert logs.angles_deg["phi"] == [45, 45]
    assert logs.angles_deg["theta"] == [12.5, 12.5]
    assert logs.angles_deg["incidence_angle"] == [0.3, 0.3]
    assert logs.temperature_K == [310, 310]
    assert "omega" not in logs.angles_deg
    assert logs.start_time == "2024-01-15T11:05:00"


def test_spec_file_with_image_folders(raw: Path) -> None:
    _check_scans(SpecBeamLine(raw))


def test_read_only_raw_tree(raw: Path) -> None:
    before = _snapshot(raw)
    paths = [raw, *raw.rglob("*")]
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in paths}
    try:
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        beamline = SpecBeamLine(raw)
        _check_scans(beamline)
        beamline.close()
        _check_scans(beamline)  # reopens the SPEC file
        if os.geteuid() != 0:  # root writes anyway; elsewhere the tree is truly read-only
            with pytest.raises(PermissionError):
                (raw / "probe").write_text("")
    finally:
        for path in sorted(paths, key=lambda p: len(p.parts)):
            path.chmod(modes[path])
    assert _snapshot(raw) == before


def test_settings_and_keywords(raw: Path) -> None:
    (raw / "S1.spec").rename(raw / "S1_run.spc")
    settings = SimpleNamespace(beamline={"spec_file": "{sample}_*.spc", "monitor": "det",
                                         "motors": {"chi": "", "theta": "phi"}})
    beamline = SpecBeamLine(raw, settings, temperature="temp", temperature_unit="C")
    found = _by_name(beamline.raw_scans("S1", "l1"))
    logs = beamline.logs(found["s001"])
    assert logs.monitor == [10, 11, 12, 13, 14]
    assert "chi" not in logs.angles_deg
    assert logs.angles_deg["theta"] == logs.angles_deg["phi"] == [0, 2.5, 5, 7.5, 10]
    assert logs.temperature_K == pytest.approx([t + 273.15 for t in
                                                (299.5, 299.6, 299.7, 299.8, 299.9)])
    # an explicit monitor name has no fallbacks
    logs = SpecBeamLine(raw, settings, monitor="nothing").logs(found["s001"])
    assert logs.monitor is None


def test_errors_are_one_line(raw: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingError, match="no SPEC file for S2/l1"):
        SpecBeamLine(raw).raw_scans("S2", "l1")
    (raw / "S3.spec").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(NxgidError, match="cannot be read as a SPEC file") as caught:
        SpecBeamLine(raw).raw_scans("S3", "l1")
    assert "\n" not in str(caught.value)
    with pytest.raises(SettingsError, match="image_folder"):
        SpecBeamLine(raw, image_folder="{sample}_{number}")
    with pytest.raises(SettingsError, match="temperature_unit"):
        SpecBeamLine(raw, temperature_unit="F")
    with pytest.raises(NxgidError, match="not a SPEC scan"):
        SpecBeamLine(raw).logs(RawScan("s001", "l1"))
    with pytest.raises(NxgidError, match=r"SPEC scan 9\.1 .* cannot be read"):
        SpecBeamLine(raw).logs(RawScan("s009", "l1", source={
            "spec_file": str(raw / "S1.spec"), "spec_scan": "9.1"}))


@pytest.mark.parametrize(("text", "expected"), [
    ("Wed Jun 16 18:27:39 2010", "2010-06-16T18:27:39"),
    ("Thu Mar  6 07:45:33 2014", "2014-03-06T07:45:33"),
    ("1505468350.0", "2017-09-15T09:39:10+00:00"),
    ("sometime", "sometime"),
])
def test_iso_time(text: str, expected: str) -> None:
    assert iso_time(text) == expected


@pytest.mark.parametrize(("command", "expected"), [
    ("ascan th 0 1 20 1", 21), ("a2scan th 0 1 tth 0 2 10 1", 11), ("dscan x -1 1 4 1", 5),
    ("mesh x 0 1 2 y 0 1 3 1", 12), ("hklscan 1 1 1 1 2.8 3 200 1", 201),
    ("hklmesh H 1.9 2.1 100 K 1.9 2.1 100 -800000", 10201), ("loopscan 10 1", 10),
    ("timescan 1", None), ("ascan th", None), ("", None),
])
def test_requested_points(command: str, expected: int | None) -> None:
    assert requested_points(command) == expected


# --- real SPEC files from public beamlines ---------------------------------------------


def _real_files() -> list[Path]:
    try:
        import spec2nexus
    except ImportError:
        return []
    folder = Path(spec2nexus.__file__).parent / "data"
    return sorted(p for p in folder.iterdir() if p.is_file())


def _is_spec(path: Path) -> bool:
    from silx.io.specfile import SpecFile

    try:
        SpecFile(str(path)).close()
    except Exception:
        return False
    return True


REAL = [p for p in _real_files() if _is_spec(p)]


def test_real_files_are_there() -> None:
    if not _real_files():
        pytest.skip("spec2nexus (the dev extra) is not installed")
    assert len(REAL) >= 10


@pytest.mark.parametrize("path", REAL, ids=[p.name for p in REAL])
def test_real_spec_file(path: Path, tmp_path: Path) -> None:
    root = tmp_path / "raw"
    root.mkdir()
    shutil.copy(path, root / path.name)
    (root / path.name).chmod(0o444)
    root.chmod(0o555)
    try:
        beamline = SpecBeamLine(root, spec_file=path.name)
        scans = beamline.raw_scans("any", "l1")
        assert scans
        for scan in scans:  # no image folders: every scan is skipped, with one reason
            assert scan.skipped and "\n" not in scan.skipped
            assert scan.scan.startswith("s") and scan.source["spec_scan"]
            try:
                logs = beamline.logs(RawScan(scan.scan, "l1", source=scan.source))
            except NxgidError as exc:
                assert "\n" not in str(exc)
                continue
            assert isinstance(logs, ScanLogs)
            points = int(scan.source["points"])
            for values in (logs.monitor, logs.counting_time_s, logs.temperature_K,
                           *logs.angles_deg.values()):
                assert values is None or len(values) == points
            assert all(len(v) == points for v in logs.table.values())
            assert all("\n" not in w for w in logs.warnings)
    finally:
        root.chmod(0o755)


def _real(name: str) -> Path:
    found = [p for p in REAL if p.name == name]
    if not found:
        pytest.skip(f"{name} is not in this spec2nexus")
    return found[0]


def test_real_quirks(tmp_path: Path) -> None:
    # an aborted hklscan (33-BM, APS)
    path = _real("33bm_spec.dat")
    beamline = SpecBeamLine(path.parent, spec_file=path.name)
    found = _by_name(beamline.raw_scans("any", "l1"))
    assert found["s014"].source["state"] == "aborted after 185 of 201 points"
    logs = beamline.logs(found["s001"])
    assert logs.monitor is not None and len(logs.monitor) == 61  # the "I0" column
    assert logs.start_time == "2010-06-16T18:27:39"
    assert set(logs.angles_deg) >= {"phi", "chi", "theta"}
    # '#L' written with single spaces (6-ID-D): the labels are split, Monitor found
    path = _real("user6idd.dat")
    beamline = SpecBeamLine(path.parent, spec_file=path.name)
    logs = beamline.logs(_by_name(beamline.raw_scans("any", "l1"))["s002"])
    assert len(logs.table) == 25 and "Monitor" in logs.table and logs.warnings == []
    assert logs.monitor is not None and len(logs.monitor) == 55
    assert not any(map(math.isnan, logs.monitor))
    # repeated scan numbers (Bluesky's SPEC writer)
    path = _real("20220311-161530.dat")
    names = [s.scan for s in SpecBeamLine(path.parent, spec_file=path.name)
             .raw_scans("any", "l1")]
    assert len(names) == len(set(names)) and "s002.2" in names
