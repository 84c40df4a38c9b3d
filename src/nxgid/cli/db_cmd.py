"""``nxgid db`` and ``nxgid status``: the workflow database."""

from __future__ import annotations

import click

from nxgid.cli.common import State, console, experiment_option, pass_state
from nxgid.cli.tables import scan_table, task_view


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

    from nxgid.workflow.tasks import TaskContext
    from nxgid.workflow.workspace import effective_settings, open_database

    exp = state.experiment()
    parts = _selections(selection)
    effective = effective_settings(exp)
    ctx = TaskContext(exp, effective)
    out = console()
    with open_database(exp) as database:
        if not watch:
            out.print(_status_view(ctx, database, parts, show_tasks, out.width))
            return
        from rich.live import Live

        count = 0
        with Live(_status_view(ctx, database, parts, show_tasks, out.width), console=out,
                  auto_refresh=False) as live:
            try:
                while times is None or count < times - 1:
                    time.sleep(interval)
                    live.update(_status_view(ctx, database, parts, show_tasks, out.width),
                                refresh=True)
                    count += 1
            except KeyboardInterrupt:
                pass


def _status_view(ctx, database, parts, show_tasks: bool, width: int = 140):
    from rich.console import Group

    from nxgid.workflow.queue import requeue_expired, status_counts
    from nxgid.workflow.status import explain_stale, scan_status

    exp, server = ctx.experiment, ctx.settings.server
    requeue_expired(database, timeout_s=server.heartbeat_timeout_s,
                    max_attempts=server.max_attempts)
    rows = explain_stale(ctx, [s for s in scan_status(database)
                               if any(p.matches(s.scan) for p in parts)])
    counts = status_counts(database)
    head = f"experiment {exp.name} at {exp.root}"
    if counts:
        head += " — tasks: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if not rows:
        return Group(head, "no scans registered: create scans, then run `nxgid db sync`")
    if not show_tasks:
        return Group(head, scan_table(rows))
    return Group(head, task_view(rows, width))
