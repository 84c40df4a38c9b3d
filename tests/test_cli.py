"""The command line: error contract (real processes), status, db, log, demo."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from nxgid.experiment import ScanRef, create_sample
from nxgid.experiment.logbook import follow, tail


def run_nxgid(*args: str, cwd: Path, env_home: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script in a real process: exit codes and stderr as users see."""
    env = {**os.environ, "NXGID_HOME": str(env_home)}
    exe = Path(sys.executable).with_name("nxgid")
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize(("args", "expected"), [
    (["status"], "is not inside an nxgid experiment"),
    (["experiment", "new", "bad/name"], "path separator"),
    (["settings", "set", "configuration.wavelength_A", "lots"], "[configuration] wavelength_A"),
    (["settings", "set", "nonsense.key", "1"], "unknown settings section"),
    (["log", "-n", "many"], "'many' is not a valid integer"),
    (["status", "--no-such-option"], "No such option"),
    (["-E", "/definitely/not/here", "status"], "is not inside an nxgid experiment"),
])
def test_expected_errors_are_one_line_exit_2(tmp_path, args, expected):
    result = run_nxgid(*args, cwd=tmp_path, env_home=tmp_path / "site")
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = run_nxgid("--debug", "status", cwd=tmp_path, env_home=tmp_path / "site")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "NotInExperimentError" in result.stderr


def test_broken_site_settings_name_the_file(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "settings.ini").write_text("[configuration]\ndistance_mm = far\n")
    result = run_nxgid("experiment", "new", "x", cwd=tmp_path, env_home=site)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {site / 'settings.ini'}: [configuration] distance_mm = 'far': "
        "Input should be a valid number, unable to parse string as a number")
    assert not (tmp_path / "x").exists()


def test_help_has_an_example_for_every_command(nxgid):
    import click

    from nxgid.cli.main import COMMANDS, cli

    def walk(command: click.Command, path: list[str]):
        yield path, command
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), [*path, name])

    seen = 0
    for path, command in walk(cli, []):
        if isinstance(command, click.Group) and path:
            continue  # the group's own help lists the examples of its commands
        result = nxgid([*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "nxgid " in result.stdout.split("Options:")[0] or not path, path
        assert "Example" in result.stdout or not path, f"no example in {path}"
        seen += 1
    assert seen >= len(COMMANDS)


def test_verbose_shows_info_on_stderr(sqlite_experiment, nxgid):
    quiet = nxgid(["-E", str(sqlite_experiment.root), "sample", "new", "a", "b"])
    assert quiet.stderr == ""
    loud = nxgid(["-v", "-E", str(sqlite_experiment.root), "sample", "new", "a", "c"])
    assert "info: created label a/c" in loud.stderr


def make_scan(exp, ref: ScanRef, entries: int) -> None:
    exp.label_dir(ref.sample, ref.label).mkdir(parents=True, exist_ok=True)
    with h5py.File(exp.scan_file(ref), "w") as handle:
        for index in range(1, entries + 1):
            handle.create_group(f"f{index}")


def test_db_sync_and_status(sqlite_experiment, nxgid):
    exp = sqlite_experiment
    create_sample(exp, "s1", "rt")
    make_scan(exp, ScanRef("s1", "rt", "a"), 2)
    exp.scan_dir(ScanRef("s1", "rt", "a")).mkdir()
    exp.raw_stack(ScanRef("s1", "rt", "a"), "f1").touch()
    empty = nxgid("status", cwd=exp.root)
    assert empty.exit_code == 0 and "no scans registered" in empty.stdout
    synced = nxgid("db sync s1/rt", cwd=exp.root)
    assert synced.exit_code == 0 and "1 added" in synced.stdout
    status = nxgid("status", cwd=exp.root)
    row = next(line for line in status.stdout.splitlines() if "s1/rt/a" in line)
    assert "f1, f2" in row and "1/2" in row and "yes" in row
    info = nxgid("db info", cwd=exp.root)
    assert "revision 0004" in info.stdout and "scans:    1" in info.stdout
    assert "registered scan" in exp.log_file.read_text()
    bad = nxgid("db sync s1/rt/a/b", cwd=exp.root)
    assert bad.exit_code == 2 and "SAMPLE[/LABEL[/SCAN]]" in bad.stderr


def test_log_tail_and_follow(sqlite_experiment, nxgid):
    exp = sqlite_experiment
    for i in range(30):
        create_sample(exp, f"s{i:02d}", "rt")
    shown = nxgid("log -n 5", cwd=exp.root)
    lines = shown.stdout.splitlines()
    assert len(lines) == 5 and lines[-1].endswith("created sample and label s29/rt")
    assert tail(exp.log_file, 1000)[0].endswith(f"created experiment exp at {exp.root}")

    got: list[str] = []

    def reader() -> None:
        got.extend(follow(exp.log_file, poll_s=0.05, stop_after_s=3.0))

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.5)
    create_sample(exp, "late", "rt")
    exp.log_file.rename(exp.log_file.with_suffix(".log.1"))  # rotation
    create_sample(exp, "after-rotation", "rt")
    thread.join()
    assert any("late/rt" in line for line in got)
    assert any("after-rotation/rt" in line for line in got)


def test_log_lines_have_time_level_and_scan(sqlite_experiment):
    import logging

    from nxgid.experiment.logbook import attach, scan_extra

    attach(sqlite_experiment)
    logging.getLogger("nxgid.test").warning("two\nlines", extra=scan_extra("a/b/c", "f2"))
    last = tail(sqlite_experiment.log_file, 1)[0]
    stamp, level, where, message = last.split(maxsplit=3)
    assert stamp[:2] == "20" and ("+" in stamp[19:] or "-" in stamp[19:])  # with time zone
    assert (level, where, message) == ("WARNING", "a/b/c:f2", "two | lines")


# --- the demo ----------------------------------------------------------------------------

def test_demo_builds_a_complete_experiment(tmp_path, nxgid, monkeypatch):
    from nxgid.demo.beamtime import EXPERIMENT, PLAN
    from nxgid.experiment import Experiment
    from nxgid.workflow.status import scan_status
    from nxgid.workflow.workspace import open_database

    user_site = tmp_path / "site"  # the user's own settings: must stay untouched
    result = nxgid(["--debug", "demo", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert not user_site.exists()
    exp = Experiment.open(tmp_path / "demo" / "analysis" / EXPERIMENT)
    from nxgid.demo.setup import SUMMED

    expected = {ScanRef(s, lab, sc) for s, labels in PLAN.items()
                for lab, scans in labels.items() for sc in scans}
    expected.add(ScanRef("pentacene-SiO2", "as-grown", SUMMED))
    expected.add(ScanRef("pentacene-SiO2", "as-grown", "s006"))  # measured in live mode
    assert set(exp.scans()) == expected
    assert len(PLAN) == 2
    site = tmp_path / "demo" / "site" / "settings.ini"
    with open_database(exp, site_path=site) as db:
        rows = scan_status(db)
    assert {r.scan for r in rows} == expected
    assert all(r.present and r.entries for r in rows)
    for ref in expected:
        assert f"{ref}" in result.stdout
        with h5py.File(exp.scan_file(ref), "r") as handle:
            link = handle["f1/data"].get("data", getlink=True)
            assert link.filename == f"{ref.scan}/f1.h5"  # relative, never absolute
    # the reciprocal-space step found every simulated spot where it belongs
    assert "spots found within half a bin of the truth: 10 of 10" in result.stdout
    # its simulated frames went through the convert path into valid reduced files
    from nxgid.nexus.reader import NexusFile

    reduced = NexusFile(exp.reduced_file(ScanRef("pentacene-SiO2", "as-grown", "s002"), "f1"))
    assert {"img_gid_q", "img_gid_pol", "rad_cut_gid"} <= set(reduced.results())
    stored = reduced.load("img_gid_q")
    assert list(stored.frame_values["incidence_angle_deg"]) == [0.08, 0.12, 0.16, 0.20]
    assert stored.frame_values["filename"][0] == str(
        exp.raw_stack(ScanRef("pentacene-SiO2", "as-grown", "s002"), "f1"))
    assert list(stored.frame_values["temperature"]) == pytest.approx([295.0, 295.1, 295.2,
                                                                      295.3])
    assert [layer.material for layer in reduced.sample().layers] == \
        ["pentacene", "silicon oxide", "silicon"]
    said = " ".join(result.stdout.split())  # as printed, without the console's wrapping
    # every output validated by `nxgid validate`: 7 reduced, 7 scan files, 1 configuration
    assert "`nxgid validate` on the 15 reduced, scan and configuration files: 15 valid" \
        in said and "exit status 0" in said
    # the default bins against the old moiré, in one picture
    bins_png = tmp_path / "demo" / "previews" / "default-bins.png"
    assert bins_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "with 0 empty bins in the covered region" in said
    hot = NexusFile(exp.reduced_file(ScanRef("pentacene-SiO2", "as-grown", "s005"), "f1"))
    assert list(hot.load("img_gid_q").frame_values["temperature"]) == pytest.approx(
        [340.0, 340.1, 340.2, 340.3])
    # the recipe and its hash went into every output; the demo's overrides took effect
    from nxgid.experiment.recipe import effective_recipe
    from nxgid.workflow.workspace import effective_settings

    recipe = effective_recipe(exp, effective_settings(exp, site_path=site), ScanRef(
        "pentacene-SiO2", "as-grown", "s002"))
    assert recipe.values.monitor_normalisation
    assert reduced.recipe()[1] == recipe.sha256
    # live mode: the scan measured after the reduction was reduced frame by frame
    live = ScanRef("pentacene-SiO2", "as-grown", "s006")
    grown = NexusFile(exp.reduced_file(live, "f1")).load("img_gid_q")
    assert grown.frames == 4
    assert list(grown.frame_values["temperature"]) == pytest.approx([360.0, 360.1, 360.2,
                                                                     360.3])
    assert "the reduced file grew to [1, 2, 3, 4] frames as they landed" in said
    assert "1 task(s) queued on 1 scan(s), 2 up to date" in said
    # a recipe change for P3HT-blend made its conversion stale; redone on a Dask cluster
    polymer = NexusFile(exp.reduced_file(ScanRef("P3HT-blend", "rt", "s004"), "f1"))
    assert polymer.load("img_gid_pseudopol", slice(0, 1)).intensity.shape == (1, 225, 520)
    assert "stale: convert P3HT-blend/rt/s004 f1; redone on a Dask cluster" in said
    assert "2 done, 0 failed" in said and said.count("dask worker") >= 1
    # the safety step: each harmful request refused by the real command, files unchanged
    # (the demo itself fails unless each gave exit 2, one error line and unchanged files)
    assert "data safety (docs/data-safety.md)" in said
    for what, blame in (("a raw stack converted into itself", "is also an input"),
                        ("a CBF cut inside its binary header", "cut_in_header.cbf"),
                        ("a stack written into the raw tree", "which nxgid only reads"),
                        ("a configuration that is not HDF5", "not an HDF5 file")):
        assert f"{what}: exit 2 in " in said, what
        assert blame in said, blame
    assert not (exp.configurations_dir / "garbage.nxs").exists()
    assert not any((tmp_path / "demo" / "raw").rglob("stack.h5"))
    # every task done by the two local workers, previews next to the reduced files
    assert "reduction workflow:" in result.stdout and "2 local worker processes" in \
        result.stdout
    with open_database(exp, site_path=site) as db:
        states = {t.status for row in scan_status(db) for t in row.tasks}
    assert states == {"done"}
    assert exp.preview_file(ScanRef("pentacene-SiO2", "as-grown", "s002"), "f1",
                            "img_gid_q").is_file()
    previews = sorted((tmp_path / "demo" / "previews").glob("*.png"))
    assert {p.stem for p in previews} >= {"img_gid_q", "img_gid_pol", "vert_cut_gid",
                                          "raw-frame-mask"}
    # hand-outs: the exported table holds the stored profile; the example inputs are there
    import csv

    first = ScanRef("pentacene-SiO2", "as-grown", "s001")
    with open(tmp_path / "demo" / "exports" / "s001_rad_cut_gid.csv", newline="") as f:
        rows = list(csv.reader(f))
    profile = NexusFile(exp.reduced_file(first, "f1")).result("rad_cut_gid").read()
    assert len(rows) == 1 + profile.x_axis.bins
    assert rows[0][0].startswith(profile.x_axis.name + " (")
    column = np.array([float(r[1]) if r[1] else np.nan for r in rows[1:]])
    assert np.allclose(column, profile.intensity[0], equal_nan=True)
    assert (tmp_path / "demo" / "inputs" / "lab6.cbf").is_file()
    assert "example inputs of the README's Quick start" in said
    # calibrated headless from the synthetic LaB6 image, 5 mm and 10 px from the start
    from nxgid.experiment.configuration import configuration_geometry

    assert "calibrated with LaB6" in result.stdout
    calibrated = configuration_geometry(exp.configuration_file("gid"))
    assert calibrated.distance_m == pytest.approx(0.285, rel=1e-3)
    assert (exp.calibrations_dir / "gid.poni").is_file()
    assert (exp.calibrations_dir / "gid_rings.png").is_file()
    # the summed scan is the frame-by-frame sum of its scans
    from nxgid.demo.setup import SUMMED_FROM

    first, second = (ScanRef("pentacene-SiO2", "as-grown", s) for s in SUMMED_FROM)
    with h5py.File(exp.raw_stack(ScanRef("pentacene-SiO2", "as-grown", SUMMED), "f1")) as s, \
            h5py.File(exp.raw_stack(first, "f1")) as a, \
            h5py.File(exp.raw_stack(second, "f1")) as b:
        np.testing.assert_array_equal(s["entry/data/data"][1],
                                      a["entry/data/data"][1].astype(np.int64)
                                      + b["entry/data/data"][1])
    # imported from a SPEC file with CBF folders and from an Eiger-style master file
    assert "s002 create 1 entry, 4 image file(s) stacked" in result.stdout
    assert "s004 create 1 entry, linked" in result.stdout
    with h5py.File(exp.scan_file(ScanRef("pentacene-SiO2", "as-grown", "s002"))) as f:
        assert list(f["f1/instrument/goniometer/incidence_angle_per_frame"][()]) == \
            [0.08, 0.12, 0.16, 0.20]
    # the status command works on it with the demo's own settings
    monkeypatch.setenv("NXGID_HOME", str(site.parent))
    status = nxgid("status", cwd=exp.root)
    assert status.exit_code == 0 and "P3HT-blend/rt/s004" in status.stdout
    # refusing to clobber; --overwrite rebuilds only a demo directory
    again = nxgid(["demo", str(tmp_path / "demo")])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    rebuilt = nxgid(["demo", str(tmp_path / "demo"), "--overwrite"])
    assert rebuilt.exit_code == 0, rebuilt.output
    other = tmp_path / "not-a-demo"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    refused = nxgid(["demo", str(other), "--overwrite"])
    assert refused.exit_code == 2 and "was not made by `nxgid demo`" in refused.stderr
    assert (other / "thesis.tex").read_text() == "precious"


def test_follow_reads_a_moved_log_to_its_end_then_the_new_one(tmp_path):
    """Rotation as a log handler does it: the file is moved away and still written
    through the open handle for a while, then a new file appears. Every line is seen
    once, in order, whatever the poll catches in between."""
    log = tmp_path / "nxlogger.log"
    log.write_text("before\n")
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(
        follow(log, poll_s=0.01, stop_after_s=2.5)))
    reader.start()
    time.sleep(0.3)
    with open(log, "a") as old:
        old.write("one\n")
        old.flush()
        log.rename(log.with_suffix(".log.1"))
        time.sleep(0.2)  # moved away, not yet replaced: the poll finds no file
        old.write("two\n")  # a handler still writes the moved file
        old.flush()
        time.sleep(0.2)
        log.write_text("three\n")  # the new file, its first line written at once
    reader.join()
    assert got == ["one", "two", "three"], got
