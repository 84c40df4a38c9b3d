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
        by_task.setdefault(task.task, Counter())[task.shown_status.split(" (")[0]] += 1
    return "; ".join(f"{task}: " + ", ".join(f"{n} {s}" for s, n in sorted(c.items()))
                     for task, c in sorted(by_task.items())) or "-"


@click.command()
@experiment_option
@click.argument("selection", nargs=-1, metavar="[SAMPLE[/LABEL[/SCAN]]]...")
@click.option("--tasks", "show_tasks", is_flag=True, help="One row per task instead of per scan.")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(0.05), default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("--times", type=click.IntRange(1), default=None,
              help="With --watch: stop after this many refreshes.")
@pass_state
def status(state: State, selection: tuple[str, ...], show_tasks: bool, watch: bool,
           interval: float, times: int | None) -> None:
    """Show scans and the state of their tasks: status, attempts, duration, host, error.

    Running tasks whose worker went silent are queued again first (as workers do).

    \b
    Examples:
        nxgid status
        nxgid status pentacene-A/rt --tasks
        nxgid status --tasks --watch
    """
    import time

    from nxgid.workflow.workspace import effective_settings, open_database

    exp = state.experiment()
    parts = _selections(selection)
    server = effective_settings(exp).settings.server
    out = console()
    with open_database(exp) as database:
        if not watch:
            out.print(_status_view(exp, database, parts, show_tasks, server))
            return
        from rich.live import Live

        count = 0
        with Live(_status_view(exp, database, parts, show_tasks, server), console=out,
                  auto_refresh=False) as live:
            try:
                while times is None or count < times - 1:
                    time.sleep(interval)
                    live.update(_status_view(exp, database, parts, show_tasks, server),
                                refresh=True)
                    count += 1
            except KeyboardInterrupt:
                pass


def _status_view(exp, database, parts, show_tasks: bool, server):
    from rich.console import Group

    from nxgid.workflow.queue import requeue_expired, status_counts
    from nxgid.workflow.status import scan_status

    requeue_expired(database, timeout_s=server.heartbeat_timeout_s,
                    max_attempts=server.max_attempts)
    rows = [s for s in scan_status(database) if any(p.matches(s.scan) for p in parts)]
    counts = status_counts(database)
    head = f"experiment {exp.name} at {exp.root}"
    if counts:
        head += " — tasks: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if not rows:
        return Group(head, "no scans registered: create scans, then run `nxgid db sync`")
    if not show_tasks:
        return Group(head, scan_table(rows))
    return Group(head, task_table(rows))


def task_table(rows):
    """One row per task: state, attempts, start, duration, host, result or error (also
    printed by `nxgid demo`)."""
    from rich.table import Table

    table = Table("scan", "task", "entry", "status", "attempts", "started", "duration",
                  "host", box=None, pad_edge=False)
    table.add_column("result / error", overflow="fold", min_width=30)
    for row in rows:
        for task in row.tasks:
            duration = "" if task.duration_s is None else f"{task.duration_s:.1f} s"
            table.add_row(str(row.scan), task.task, task.entry, task.shown_status,
                          str(task.attempts), local_time(task.started_at), duration,
                          task.host or "", task.error or task.detail or "")
    return table


def scan_table(rows):
    """The per-scan status table (also printed by `nxgid demo`)."""
    from rich.table import Table

    table = Table("scan", "entries", "raw data", "on disk", "tasks", box=None, pad_edge=False)
    for row in rows:
        table.add_row(str(row.scan), ", ".join(row.entries) or "-",
                      f"{len(row.raw_entries)}/{len(row.entries)}",
                      "yes" if row.present else "MISSING", _task_summary(row.tasks))
    return table
