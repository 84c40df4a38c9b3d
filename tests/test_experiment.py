"""The experiment tree: naming rules, creation, refusal to clobber, discovery."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nxgid.errors import ExistsError, InvalidNameError, MissingError, NotInExperimentError
from nxgid.experiment import Experiment, ScanRef, Selection, create_sample
from nxgid.experiment.create import create_experiment
from nxgid.names import MAX_NAME_LENGTH, check_name, check_sample_name
from nxgid.settings.store import SettingsFile, load_effective, set_value


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path below *root* with its mtime (ns) and, for files, contents."""
    result = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        result[str(path.relative_to(root))] = (
            stat.st_mtime_ns, path.read_bytes() if path.is_file() else None)
    return result


# --- names ------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "rule"), [
    ("", "empty"),
    (".", "not allowed"),
    ("..", "not allowed"),
    ("a/b", "path separator"),
    ("a\\b", "path separator"),
    ("a b", "' '"),
    ("café", "'é'"),
    ("x" * (MAX_NAME_LENGTH + 1), "at most 64"),
    ("semi;colon", "';'"),
])
def test_bad_names_are_rejected_with_the_rule(name, rule):
    with pytest.raises(InvalidNameError) as info:
        check_name(name, "sample")
    assert rule in str(info.value)
    assert "sample name" in str(info.value)


def test_reserved_sample_names():
    for reserved in ("tasks", "calibrations", "configurations", "scripts"):
        with pytest.raises(InvalidNameError, match="reserved"):
            check_sample_name(reserved)
    assert check_sample_name("tasks2") == "tasks2"


@given(st.text(alphabet="abcXYZ019._-", min_size=1, max_size=MAX_NAME_LENGTH)
       .filter(lambda s: s not in {".", ".."}))
def test_allowed_alphabet_is_accepted(name):
    assert check_name(name) == name


# --- creation ---------------------------------------------------------------------------

def test_experiment_new_makes_the_seed_layout(tmp_path, site_file):
    from nxgid.workflow.workspace import new_experiment

    exp = new_experiment("beamtime-1", load_effective(site_file))
    root = tmp_path / "analysis" / "beamtime-1"
    assert exp.root == root
    for name in ("tasks", "calibrations", "configurations", "scripts"):
        assert (root / name).is_dir()
    for name in ("settings.ini", "nxdatabase.db", "nxlogger.log"):
        assert (root / "tasks" / name).is_file()
    settings = SettingsFile.read(root / "tasks" / "settings.ini")
    assert settings.get("experiment", "name") == "beamtime-1"
    assert "server" not in settings.values
    assert settings.get("instrument", "source") == "Test Synchrotron"
    assert "created experiment beamtime-1" in exp.log_file.read_text()
    # no staging directories left behind
    assert [p.name for p in root.parent.iterdir()] == ["beamtime-1"]


def test_second_new_reports_and_changes_nothing(tmp_path, site_file, nxgid):
    first = nxgid("experiment new exp1")
    assert first.exit_code == 0, first.output
    root = tmp_path / "analysis" / "exp1"
    before = snapshot(root)
    second = nxgid("experiment new exp1")
    assert second.exit_code == 2
    assert "already exists" in second.stderr and str(root) in second.stderr
    assert snapshot(root) == before


def test_non_empty_directory_is_not_clobbered(tmp_path, site_file):
    root = tmp_path / "analysis" / "exp1"
    root.mkdir(parents=True)
    (root / "precious.txt").write_text("keep me")
    with pytest.raises(ExistsError, match="not empty"):
        create_experiment("exp1", load_effective(site_file))
    assert [p.name for p in root.iterdir()] == ["precious.txt"]


def test_analysis_path_and_raw_home(tmp_path, site_file):
    site = SettingsFile.read(site_file)
    set_value(site, "instrument", "analysis_path", "processed/nxgid")
    set_value(site, "instrument", "raw_home", str(tmp_path / "raw"))
    set_value(site, "instrument", "raw_path", "detector")
    effective = load_effective(site_file)
    with pytest.raises(MissingError, match=r"raw/exp2/detector"):
        create_experiment("exp2", effective)
    assert not (tmp_path / "analysis" / "exp2").exists()  # nothing half-made
    (tmp_path / "raw" / "exp2" / "detector").mkdir(parents=True)
    os.chmod(tmp_path / "raw" / "exp2" / "detector", 0o555)  # raw data is read only
    exp = create_experiment("exp2", effective)
    assert exp.root == tmp_path / "analysis" / "exp2" / "processed" / "nxgid"
    assert Experiment.open(exp.root).name == "exp2"


def test_failure_during_creation_leaves_nothing(tmp_path, site_file):
    def explode(_staged: Experiment) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        create_experiment("exp3", load_effective(site_file), initialise=explode)
    assert not (tmp_path / "analysis").exists()


def test_concurrent_creation_only_one_wins(tmp_path, site_file):
    effective = load_effective(site_file)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            create_experiment("race", effective)
            outcomes.append("created")
        except ExistsError:
            outcomes.append("exists")

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "exists", "exists", "exists"]
    assert [p.name for p in (tmp_path / "analysis").iterdir()] == ["race"]


# --- the model ----------------------------------------------------------------------------

def test_open_from_any_path_inside(sqlite_experiment, tmp_path):
    exp = sqlite_experiment
    create_sample(exp, "s1", "rt")
    deep = exp.label_dir("s1", "rt") / "scan7" / "more"
    deep.mkdir(parents=True)
    for path in (exp.root, exp.tasks_dir, exp.label_dir("s1", "rt"), deep):
        assert Experiment.open(path).root == exp.root
    with pytest.raises(NotInExperimentError, match="not inside an nxgid experiment"):
        Experiment.open(tmp_path)


def test_canonical_paths(sqlite_experiment):
    exp = sqlite_experiment
    ref = ScanRef("pentacene", "rt", "s001")
    label = exp.root / "pentacene" / "rt"
    assert exp.scan_file(ref) == label / "pentacene_s001.nxs"
    assert exp.scan_dir(ref) == label / "s001"
    assert exp.raw_stack(ref, "f2") == label / "s001" / "f2.h5"
    assert exp.raw_link(ref, "f2") == "s001/f2.h5"
    assert exp.reduced_file(ref, "f1") == label / "s001" / "f1_reduced.nxs"
    assert exp.configuration_file("default") == exp.root / "configurations" / "default.nxs"
    assert exp.scan_from_path(exp.scan_file(ref)) == ref
    assert exp.scan_from_path(exp.raw_stack(ref, "f1")) == ref
    with pytest.raises(InvalidNameError):
        exp.raw_stack(ref, "g1")
    with pytest.raises(InvalidNameError):
        ScanRef("tasks", "rt", "s1")


def test_scan_discovery(sqlite_experiment):
    import h5py

    exp = sqlite_experiment
    create_sample(exp, "a_b", "rt")  # an underscore in the sample name
    create_sample(exp, "a_b", "hot")
    create_sample(exp, "c", "rt")
    ref1 = ScanRef("a_b", "rt", "scan_1")
    with h5py.File(exp.scan_file(ref1), "w") as f:
        for name in ("entry", "f1", "f2", "f10"):
            f.create_group(name)
    ref2 = ScanRef("a_b", "hot", "s2")  # only a raw folder so far
    exp.scan_dir(ref2).mkdir()
    exp.raw_stack(ref2, "f1").touch()
    exp.raw_stack(ref2, "f3").touch()
    (exp.label_dir("c", "rt") / "notes.txt").write_text("not a scan")
    assert exp.samples() == ["a_b", "c"]
    assert exp.labels("a_b") == ["hot", "rt"]
    assert exp.scans() == [ref2, ref1]
    assert exp.scans(Selection.parse("a_b/rt")) == [ref1]
    assert exp.entries(ref1) == ["f1", "f2", "f10"]
    assert exp.entries(ref2) == ["f1", "f3"]


def test_selection_parsing():
    assert Selection.parse("") == Selection()
    assert Selection.parse("s/l") == Selection("s", "l")
    assert Selection.parse("s/l/x").matches(ScanRef("s", "l", "x"))
    assert not Selection.parse("s/l/x").matches(ScanRef("s", "l", "y"))
    with pytest.raises(InvalidNameError):
        Selection.parse("a/b/c/d")


def test_sample_new_cli(sqlite_experiment, nxgid):
    exp = sqlite_experiment
    result = nxgid("sample new PEN-1 as-grown", cwd=exp.tasks_dir)
    assert result.exit_code == 0, result.output
    assert exp.label_dir("PEN-1", "as-grown").is_dir()
    again = nxgid(["-E", str(exp.root), "sample", "new", "PEN-1", "as-grown"])
    assert again.exit_code == 2 and "already has label" in again.stderr
    bad = nxgid(["sample", "new", "-E", str(exp.root), "PEN 1", "x"])
    assert bad.exit_code == 2 and "contains ' '" in bad.stderr
    assert exp.samples() == ["PEN-1"]
    listed = nxgid("sample list", cwd=exp.root)
    assert "PEN-1" in listed.stdout and "as-grown" in listed.stdout
    assert "created sample and label PEN-1/as-grown" in exp.log_file.read_text()
