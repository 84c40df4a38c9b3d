"""Worker processes for the concurrency tests (importable by spawned children)."""

from __future__ import annotations

import time
from pathlib import Path


def claim_until_empty(root: str, site_file: str, start_at: float) -> list[int]:
    """Claim and finish tasks until the queue is empty; returns the ids this process got."""
    from nxgid.experiment.layout import Experiment
    from nxgid.workflow.queue import claim, finish
    from nxgid.workflow.workspace import open_database

    database = open_database(Experiment(Path(root)), site_path=Path(site_file))
    claimed: list[int] = []
    try:
        time.sleep(max(0.0, start_at - time.time()))
        while (task := claim(database)) is not None:
            claimed.append(task.id)
            finish(database, task.id)
    finally:
        database.close()
    return claimed
