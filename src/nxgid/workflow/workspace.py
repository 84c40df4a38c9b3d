"""Workspace actions that span the experiment tree and the workflow database.

These are the functions behind ``nxgid experiment new`` and ``nxgid sample new``; the
CLI only parses arguments and prints what they return. ``site_path`` (default: the site
settings file of :func:`nxgid.settings.site_settings_path`) lets a caller such as the demo
work with its own site settings.
"""

from __future__ import annotations

from pathlib import Path

from nxgid.experiment.create import create_experiment, create_sample
from nxgid.experiment.layout import Experiment
from nxgid.settings.store import Effective, load_effective
from nxgid.workflow import database


def new_experiment(name: str, site: Effective, *, home: Path | None = None) -> Experiment:
    """Create the experiment tree with its settings, database and log, or nothing at all."""
    experiment = create_experiment(
        name, site, home=home,
        initialise=lambda staged: database.initialise(staged, site.settings))
    with open_database(experiment, site_path=site.site_file.path):
        pass  # registers the experiment (in a shared server's database too)
    return experiment


def new_sample(experiment: Experiment, sample: str, label: str) -> Path:
    return create_sample(experiment, sample, label)


def effective_settings(experiment: Experiment | None, *,
                       site_path: Path | None = None) -> Effective:
    """Site settings overridden by the experiment's, when there is one."""
    return load_effective(site_path,
                          experiment_settings=experiment.settings_file if experiment else None)


def open_database(experiment: Experiment, *, site_path: Path | None = None
                  ) -> database.WorkflowDB:
    settings = effective_settings(experiment, site_path=site_path).settings
    return database.WorkflowDB.open(experiment, settings)
