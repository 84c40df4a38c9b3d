"""``nxgid reduce``, ``nxgid workers`` and ``nxgid retry``: the reduction workflow."""

from __future__ import annotations

import click

from nxgid.cli.common import State, console, experiment_option, pass_state

EXECUTORS = ("local", "dask")


def _selections(texts: tuple[str, ...], everything: bool):
    from nxgid.errors import NxgidError
    from nxgid.experiment.layout import Selection

    if not texts and not everything:
        raise NxgidError("reduce: name scans (SAMPLE[/LABEL[/SCAN]]) or give --all")
    return [Selection.parse(t) for t in texts] or [Selection()]


def _task_list(text: str | None) -> list[str] | None:
    from nxgid.workflow.tasks import check_tasks

    if not text:
        return None
    return check_tasks([t.strip() for t in text.split(",") if t.strip()])


def _check_executor(executor: str | None, scheduler: str | None, settings) -> tuple[str, str]:
    from nxgid.errors import NxgidError

    executor = executor or settings.server.executor
    scheduler = scheduler or settings.server.scheduler
    if executor == "dask" and not scheduler:
        raise NxgidError("--executor dask needs --scheduler tcp://HOST:PORT (or dask-local), "
                         "or [server] scheduler in the site settings")
    if executor == "local" and scheduler:
        executor = "dask"
    return executor, scheduler


def _events(out, verbose: bool):
    def on_event(claimed, status, detail) -> None:
        where = f"{claimed.scan} {claimed.entry}".rstrip()
        if status == "done":
            if verbose:
                out.print(f"done    {claimed.task:8} {where}: {detail}")
        elif status == "failed":
            out.print(f"FAILED  {claimed.task:8} {where}: {detail}")
        elif status == "waiting":
            out.print(f"waiting {claimed.task:8} {where}: {detail}")
        else:
            out.print(f"retry   {claimed.task:8} {where}: {detail}")
    return on_event


def run_now(state: State, experiment, effective, tasks, executor: str, scheduler: str,
            workers: int, wait: bool = False):
    """Work through the queue in the foreground (progress bar on a terminal)."""
    import sys

    from nxgid.workflow.queue import status_counts
    from nxgid.workflow.tasks import TaskContext
    from nxgid.workflow.workspace import open_database

    out = console()
    with open_database(experiment) as db:
        total = sum(status_counts(db).values())
        bar = None
        progress = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress

            bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                           console=Console(stderr=True))
            bar.start()
            counter = bar.add_task("tasks", total=total,
                                   completed=status_counts(db).get("done", 0))
            frames = bar.add_task("frames", total=None)

            def progress(what: str, done: int, of: int) -> None:
                bar.update(frames, description=f"  {what} frames", completed=done, total=of)
        ctx = TaskContext(experiment, effective, progress=progress)
        # a line per finished task when nothing else shows progress (no terminal), or -v
        report_event = _events(out, state.verbose > 0 or bar is None)

        def on_event(claimed, status, detail) -> None:
            report_event(claimed, status, detail)
            if bar is not None:
                bar.update(counter, description=f"{claimed.task} {claimed.scan}",
                           completed=status_counts(db).get("done", 0))
        try:
            if executor == "dask":
                from nxgid.workflow.dask_executor import run_dask

                report = run_dask(db, ctx, scheduler, tasks=tasks, wait=wait,
                                  workers=workers, on_event=on_event)
            else:
                from nxgid.workflow.worker import work

                report = work(db, ctx, tasks=tasks, wait=wait, on_event=on_event)
        finally:
            if bar is not None:
                bar.stop()
    return report


def report_line(report) -> str:
    line = (f"{report.done} done, {report.failed} failed, {report.retried} retried "
            f"in {report.seconds:.1f} s")
    if report.waiting:
        line += (f"; {report.waiting} waiting for their inputs (run again, or `nxgid "
                 "workers --wait`, once they are there)")
    return line


@click.command()
@experiment_option
@click.argument("selection", nargs=-1, metavar="[SAMPLE[/LABEL[/SCAN]]]...")
@click.option("--all", "everything", is_flag=True, help="Every scan of the experiment.")
@click.option("--tasks", "task_names", metavar="TASK,…",
              help="Only these tasks: sum, link, convert, preview [all].")
@click.option("--overwrite", is_flag=True,
              help="Redo done tasks and replace their outputs.")
@click.option("--stale", is_flag=True,
              help="Redo tasks whose inputs or recipe changed (replacing their outputs).")
@click.option("--now", is_flag=True, help="Run the queued tasks in the foreground.")
@click.option("--executor", type=click.Choice(EXECUTORS), default=None,
              help="With --now: local (this process) or dask [server] executor].")
@click.option("--scheduler", metavar="ADDRESS",
              help="Dask scheduler tcp://HOST:PORT, or dask-local for a local cluster.")
@click.option("-n", "--workers", "worker_count", type=click.IntRange(1, 256), default=2,
              show_default=True, help="Workers of a dask-local cluster.")
@pass_state
def reduce(state: State, selection, everything, task_names, overwrite, stale, now,
           executor, scheduler, worker_count) -> None:
    """Queue the reduction of scans: link, convert (every map and profile of the recipe),
    preview, and sum for summed scans.

    Done tasks are skipped; those whose inputs or recipe changed (new raw frames, a
    recalibrated configuration or new mask, the recipe, ...) are reported stale with the
    inputs that changed and redone with --stale (link then refreshes the scan file from
    its configuration). Queued tasks are run by `nxgid workers`, or here with --now.

    \b
    Examples:
        nxgid reduce --all
        nxgid reduce pentacene-SiO2/as-grown --now
        nxgid reduce pentacene-SiO2/as-grown/s002 --tasks convert,preview --stale
        nxgid reduce --all --now --executor dask --scheduler tcp://cluster:8786
    """
    from nxgid.workflow.reduce import queue_reduction
    from nxgid.workflow.tasks import TaskContext
    from nxgid.workflow.workspace import effective_settings, open_database

    experiment = state.experiment()
    effective = effective_settings(experiment)
    tasks = _task_list(task_names)
    parts = _selections(selection, everything)
    executor, scheduler = _check_executor(executor, scheduler, effective.settings)
    out = console()
    with open_database(experiment) as db:
        plan = queue_reduction(db, TaskContext(experiment, effective), parts, tasks=tasks,
                               overwrite=overwrite, stale=stale)
    out.print(plan.summary())
    for key in plan.stale[:20]:
        ref, task, entry = key
        reason = plan.reasons.get(key)
        out.print(f"stale   {task:8} {ref} {entry}".rstrip()
                  + (f": {reason}" if reason else ""))
    if len(plan.stale) > 20:
        out.print(f"… and {len(plan.stale) - 20} more (`nxgid status --tasks` lists them)")
    if plan.stale and not (stale or overwrite):
        out.print("`nxgid reduce --stale` redoes the stale tasks")
    if not now:
        if plan.queued:
            out.print("run them with `nxgid workers` (or `nxgid reduce --now`)")
        return
    report = run_now(state, experiment, effective, tasks, executor, scheduler, worker_count)
    out.print(report_line(report))
    if report.failed:
        raise SystemExit(1)


@click.command()
@experiment_option
@click.option("-n", "--workers", "count", type=click.IntRange(1, 256), default=None,
              help="Worker processes [server] workers].")
@click.option("--tasks", "task_names", metavar="TASK,…", help="Only claim these tasks.")
@click.option("--wait", is_flag=True,
              help="Keep waiting for new tasks (live mode) instead of stopping when the "
                   "queue is empty; Ctrl-C stops.")
@click.option("--executor", type=click.Choice(EXECUTORS), default=None,
              help="local worker processes or a dask cluster [server] executor].")
@click.option("--scheduler", metavar="ADDRESS",
              help="Dask scheduler tcp://HOST:PORT, or dask-local for a local cluster.")
@pass_state
def workers(state: State, count, task_names, wait, executor, scheduler) -> None:
    """Run workers that claim queued tasks from the workflow database.

    Each task is claimed by exactly one worker, which records running/done/failed with
    timing, host and pid and keeps a heartbeat; a failed task is retried up to [server]
    max_attempts; a task whose worker died (no heartbeat for heartbeat_timeout_s) is
    queued again. Workers stop when the queue is empty (unless --wait).

    \b
    Examples:
        nxgid workers -n 4
        nxgid workers --wait
        nxgid workers --executor dask --scheduler tcp://cluster:8786
    """
    from nxgid.workflow.status import scan_status, shown_counts
    from nxgid.workflow.worker import run_workers
    from nxgid.workflow.workspace import effective_settings, open_database

    experiment = state.experiment()
    effective = effective_settings(experiment)
    tasks = _task_list(task_names)
    executor, scheduler = _check_executor(executor, scheduler, effective.settings)
    count = count or effective.settings.server.workers
    out = console()
    if executor == "dask":
        report = run_now(state, experiment, effective, tasks, executor, scheduler, count,
                         wait=wait)
        out.print(report_line(report))
        return
    with open_database(experiment):
        pass  # a database problem is one line here, before any worker starts
    out.print(f"{count} worker process(es) on the queue of {experiment.name}"
              + (" (waiting for new tasks; Ctrl-C stops)" if wait else ""))
    codes = run_workers(experiment, count, site_path=effective.site_file.path, tasks=tasks,
                        wait=wait, on_tick=_progress_lines(out, experiment))
    with open_database(experiment) as db:
        counts = shown_counts(scan_status(db))
    out.print(", ".join(f"{n} {s}" for s, n in counts.items()) or "no tasks")
    if any(s.startswith("waiting") for s in counts) and not wait:
        out.print("waiting tasks cannot run until their input or prerequisite is there "
                  "(`nxgid status --tasks` says which); queued ones are for the next "
                  "workers")
    if any(code not in (0, None) for code in codes) and not wait:
        raise SystemExit(1)


def _progress_lines(out, experiment):
    """While workers run: a line with the task counts when they change, at most every
    PROGRESS_LINE_EVERY_S — so a log or a terminal shows the queue moving."""
    import time

    from nxgid.cli.common import PROGRESS_LINE_EVERY_S
    from nxgid.workflow.queue import status_counts
    from nxgid.workflow.workspace import open_database

    seen = {"counts": None, "at": time.monotonic()}

    def tick() -> None:
        now = time.monotonic()
        if now - seen["at"] < PROGRESS_LINE_EVERY_S:
            return
        seen["at"] = now
        with open_database(experiment) as db:
            counts = dict(sorted(status_counts(db).items()))
        if counts != seen["counts"]:
            seen["counts"] = counts
            out.print("  tasks: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return tick


@click.command()
@experiment_option
@click.argument("selection", nargs=-1, metavar="[SAMPLE[/LABEL[/SCAN]]]...")
@click.option("--tasks", "task_names", metavar="TASK,…", help="Only these tasks.")
@pass_state
def retry(state: State, selection, task_names) -> None:
    """Queue failed tasks again, with a fresh set of attempts.

    \b
    Examples:
        nxgid retry
        nxgid retry pentacene-SiO2/as-grown --tasks convert
    """
    from nxgid.experiment.layout import Selection
    from nxgid.workflow.queue import retry as requeue
    from nxgid.workflow.status import scan_status
    from nxgid.workflow.workspace import open_database

    experiment = state.experiment()
    tasks = _task_list(task_names)
    parts = [Selection.parse(t) for t in selection] or [Selection()]
    with open_database(experiment) as db:
        ids = [task.id for row in scan_status(db) if any(p.matches(row.scan) for p in parts)
               for task in row.tasks
               if task.status == "failed" and (not tasks or task.task in tasks)]
        count = requeue(db, ids) if ids else 0
    console().print(f"{count} failed task(s) queued again"
                    + ("; run them with `nxgid workers`" if count else ""))
