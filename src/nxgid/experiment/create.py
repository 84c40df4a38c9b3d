"""Creating experiments and sample/label folders, without ever clobbering what exists.

An experiment is assembled in a hidden temporary directory next to its final place and
renamed into place in one step, so an interrupted ``experiment new`` leaves nothing behind
and two concurrent ones cannot both succeed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from nxgid.errors import ExistsError, MissingError
from nxgid.experiment.layout import (
    Experiment,
    experiment_root,
    raw_directory,
)
from nxgid.experiment.logbook import logging_to
from nxgid.names import check_name, check_sample_name
from nxgid.settings.model import ExperimentInfo
from nxgid.settings.store import Effective, create_experiment_file

log = logging.getLogger("nxgid.experiment")


def planned_root(name: str, settings: Effective, home: Path | None = None) -> Path:
    """Where ``experiment new NAME`` puts the experiment (``home`` overrides the setting)."""
    instrument = settings.settings.instrument
    base = home or instrument.analysis_home or Path.cwd()
    return experiment_root(Path(base).resolve(), name, instrument.analysis_path)


def planned_raw_directory(name: str, settings: Effective) -> Path | None:
    instrument = settings.settings.instrument
    if instrument.raw_home is None:
        return None
    return raw_directory(instrument.raw_home, name, instrument.raw_path)


def _refuse_raw_tree(root: Path, settings: Effective, raw: Path | None) -> None:
    """An experiment is never created inside a raw tree, which nxgid only reads."""
    from nxgid.safety.paths import OverlapError, is_inside

    raw_home = settings.settings.instrument.raw_home
    for tree, what in ((raw_home, "the raw data home ([instrument] raw_home)"),
                       (raw, "the experiment's raw data directory")):
        if tree is not None and is_inside(root, tree):
            raise OverlapError(f"experiment folder {root} lies inside {what} {tree}, which "
                               "nxgid only reads; give --home outside it")


def create_experiment(
    name: str,
    settings: Effective,
    *,
    home: Path | None = None,
    initialise: Callable[[Experiment], None] | None = None,
) -> Experiment:
    """Create experiment *name* from the site *settings*; returns the new experiment.

    *initialise* is called with the experiment at its temporary location before it is
    moved into place (the workflow layer creates the database there), so a failure in it
    also leaves nothing behind.
    """
    check_name(name, "experiment")
    root = planned_root(name, settings, home)
    raw = planned_raw_directory(name, settings)
    if raw is not None and not raw.is_dir():
        raise MissingError(f"raw data directory {raw} does not exist: expected "
                           "<raw_home>/<experiment>[/<raw_path>] from [instrument] settings")
    _refuse_raw_tree(root, settings, raw)
    if Experiment.is_root(root):
        raise ExistsError(f"experiment {name!r} already exists at {root}; nothing was changed")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ExistsError(f"{root} already exists and is not empty; nothing was changed")

    created_parents = _make_parents(root.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.creating-", dir=root.parent))
    try:
        staged = Experiment(staging)
        for directory in staged.directories:
            directory.mkdir()
        create_experiment_file(staged.settings_file, settings.site_file,
                               ExperimentInfo(name=name))
        staged.log_file.touch()
        if initialise is not None:
            initialise(staged)
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, root)
        except OSError:
            raise ExistsError(f"{root} appeared while the experiment was being created; "
                              "nothing was changed") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in reversed(created_parents):
            _remove_if_empty(parent)
        raise
    experiment = Experiment(root)
    with logging_to(experiment):
        log.info("created experiment %s at %s%s", name, root,
                 f" (raw data in {raw})" if raw else "")
    return experiment


def create_sample(experiment: Experiment, sample: str, label: str) -> Path:
    """Create ``<sample>/<label>/``; an existing label is reported, never reused silently."""
    check_sample_name(sample)
    check_name(label, "label")
    directory = experiment.label_dir(sample, label)
    if directory.exists():
        raise ExistsError(f"sample {sample!r} already has label {label!r} at {directory}; "
                          "nothing was changed")
    from nxgid.safety.paths import Boundary

    # a sample folder that is a symlink out of the tree is refused before any mkdir
    Boundary.of(experiment.root, None).check(directory, "label folder")
    new_sample = not experiment.sample_dir(sample).exists()
    experiment.sample_dir(sample).mkdir(exist_ok=True)
    try:
        directory.mkdir()
    except FileExistsError:
        raise ExistsError(f"sample {sample!r} already has label {label!r}") from None
    with logging_to(experiment):
        log.info("created %s %s/%s", "sample and label" if new_sample else "label", sample,
                 label)
    return directory


def _make_parents(path: Path) -> list[Path]:
    """mkdir -p, returning the directories it created (outermost first)."""
    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    missing.reverse()
    for directory in missing:
        directory.mkdir(exist_ok=True)
    return missing


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
