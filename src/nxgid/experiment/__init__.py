"""The experiment workspace: directory layout, naming rules, creation and the log."""

from nxgid.experiment.create import create_experiment, create_sample
from nxgid.experiment.layout import Experiment, ScanRef, Selection, entry_name
from nxgid.names import check_name, check_sample_name

__all__ = [
    "Experiment",
    "ScanRef",
    "Selection",
    "check_name",
    "check_sample_name",
    "create_experiment",
    "create_sample",
    "entry_name",
]
