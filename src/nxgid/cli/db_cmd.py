"""``nxgid db`` and ``nxgid status``: the workflow database."""

from __future__ import annotations

from collections import Counter

import click

from nxgid.cli.common import State, console, experiment_option, local_time, pass_state


def _selections(texts: tuple[str, ...]):
    from nxgid.experiment.layout import Selection

    return [Selection.parse(t) for t in texts] or [Selection()]


@click.group()
def db() -> None:
    """The workflow database (tasks/nxdatabase.db, or [server] database_url).

    \b
    Examples:
        nxgid db sync
        nxgid db sync pentacene-A/rt
        nxgid db info
    """


@db.command("sync")
@experiment_option
@click.argument("selection", nargs=-1, metavar="[SAMPLE[/LABEL[/SCAN]]]...")
@pass_state
def db_sync(state: State, selection: tuple[str, ...]) -> None:
    """Rebuild scan rows from the files on disk (the files are the truth).

    Only the selected part is looked at; rows elsewhere are left alone. Scans that
    disappeared are marked missing, never deleted.

    \b
    Example:
        nxgid db sync pentacene-A
    """
    from nxgid.workflow.sync import sync
    from nxgid.workflow.workspace import open_database

    exp = state.experiment()
    with open_database(exp) as database:
        for part in _selections(selection):
            report = sync(database, part)
            click.echo(f"{part}: {report.summary()}")


@db.command("info")
@experiment_option
@pass_state
def db_info(state: State) -> None:
    """Show the database URL, schema revision and row counts.

    \b
    Example:
        nxgid db info -E /data/analysis/2026-11-ID10-pentacene
    """
    from nxgid.workflow.database import current_revision, head_revision
    from nxgid.workflow.queue import status_counts
    from nxgid.workflow.status import scan_status
    from nxgid.workflow.workspace import open_database

    exp = state.experiment()
    with open_database(exp) as database:
        with database.engine.connect() as connection:
            revision = current_revision(connection)
        counts = status_counts(database)
        scans = scan_status(database)
    click.echo(f"database: {database.url}")
    click.echo(f"schema:   revision {revision} (head {head_revision()})")
    click.echo(f"scans:    {len(scans)} ({sum(not s.present for s in scans)} missing on disk)")
    click.echo("tasks:    " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                             or "none"))


def _task_summary(states) -> str:
    by_task: dict[str, Counter[str]] = {}
    for task in states:
        by_task.setdefault(task.task, Counter())[task.status] += 1
    return "; ".join(f"{task}: " + ", ".join(f"{n} {s}" for s, n in sorted(c.items()))
                     for task, c in sorted(by_task.items())) or "-"


@click.command()
@experiment_option
@click.argument("selection", nargs=-1, metavar="[SAMPLE[/LABEL[/SCAN]]]...")
@click.option("--tasks", "show_tasks", is_flag=True, help="One row per task instead of per scan.")
@pass_state
def status(state: State, selection: tuple[str, ...], show_tasks: bool) -> None:
    """Show scans and the state of their tasks.

    \b
    Examples:
        nxgid status
        nxgid status pentacene-A/rt --tasks
    """
    from rich.table import Table

    from nxgid.workflow.status import scan_status
    from nxgid.workflow.workspace import open_database

    exp = state.experiment()
    parts = _selections(selection)
    with open_database(exp) as database:
        rows = [s for s in scan_status(database) if any(p.matches(s.scan) for p in parts)]
    out = console()
    out.print(f"experiment {exp.name} at {exp.root}")
    if not rows:
        out.print("no scans registered: create scans, then run `nxgid db sync`")
        return
    if show_tasks:
        table = Table("scan", "task", "entry", "status", "attempts", "started", "duration",
                      "host", "error", box=None, pad_edge=False)
        for row in rows:
            for task in row.tasks:
                duration = "" if task.duration_s is None else f"{task.duration_s:.1f} s"
                table.add_row(str(row.scan), task.task, task.entry, task.status,
                              str(task.attempts), local_time(task.started_at), duration,
                              task.host or "", task.error or "")
        out.print(table)
        return
    out.print(scan_table(rows))


def scan_table(rows):
    """The per-scan status table (also printed by `nxgid demo`)."""
    from rich.table import Table

    table = Table("scan", "entries", "raw data", "on disk", "tasks", box=None, pad_edge=False)
    for row in rows:
        table.add_row(str(row.scan), ", ".join(row.entries) or "-",
                      f"{len(row.raw_entries)}/{len(row.entries)}",
                      "yes" if row.present else "MISSING", _task_summary(row.tasks))
    return table
