"""The hostile-input corpus (``hostile_cases.py``): every case must get the error
contract from the real ``nxgid`` command, run as a user runs it (a new process), and
leave the experiment, the raw tree, the site settings and an outside folder unchanged."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import hostile_world
from hostile_cases import CASES


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(template copy, the path every case's world is restored to)."""
    root = tmp_path_factory.mktemp("hostile")
    base = root / "world"
    hostile_world.build(base)
    template = root / "template"
    shutil.copytree(base, template, symlinks=True)
    yield template, base


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_gets_the_contract(name: str, template: tuple[Path, Path]) -> None:
    world = hostile_world.restore(*template)
    attack = CASES[name](world)
    before = hostile_world.snapshot(world)
    log_before = hostile_world.log_text(world)
    stop = attack.during(world) if attack.during else None
    try:
        run = world.nxgid(*attack.args, cwd=attack.cwd, timeout=attack.timeout_s)
    finally:
        if stop:
            stop()
    lines = _lines(run.stderr)
    shown = f"nxgid {' '.join(attack.args)}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert "Traceback" not in run.stderr + run.stdout, shown
    assert run.returncode == attack.status, shown
    assert len(lines) == 1, shown
    assert lines[0].startswith("error: "), shown
    culprits = [attack.culprit] if isinstance(attack.culprit, str) else attack.culprit
    for culprit in culprits:
        assert culprit in lines[0], f"{culprit!r} is not named\n{shown}"
    after = hostile_world.snapshot(world)
    allowed = {key for key in after if key.startswith(attack.may_create)} \
        if attack.may_create else set()
    changed = sorted(key for key in before.keys() | after.keys()
                     if before.get(key) != after.get(key) and key not in allowed)
    assert not changed, f"changed by a refused command: {changed}\n{shown}"
    assert hostile_world.log_text(world).startswith(log_before), "the log was rewritten"
    for check in attack.extra_checks:
        check(world)


@pytest.mark.parametrize("target", ["/etc/passwd", "outside", "../../../../outside/in.h5"])
def test_scan_info_reports_a_link_out_of_the_tree_without_opening_it(
        target: str, template: tuple[Path, Path]) -> None:
    """`scan info` is a report, not a refusal: it exits 0 and shows the entry's link as
    refused, naming the link and its target, instead of opening the target (an HDF5 file
    elsewhere used to be shown as "present", /etc/passwd was read)."""
    import h5py

    world = hostile_world.restore(*template)
    target = str(world.outside / "in.h5") if target == "outside" else target
    with h5py.File(world.scan_file, "r+") as handle:
        del handle["f1/data/data"]
        handle["f1/data/data"] = h5py.ExternalLink(target, "/entry/data/data")
    run = world.nxgid("scan", "info", "film/rt/s001")
    assert run.returncode == 0 and run.stderr == "", run.stderr
    (line,) = [line for line in run.stdout.splitlines() if line.strip().startswith("f1 ")]
    assert "refused: link f1/data/data → " + target in line, line
    assert "present" not in line
