"""The tables of ``nxgid status`` (and of ``nxgid demo``): one row per scan, or per task
— a wide table, or for terminals narrower than :data:`WIDE` columns a compact layout
grouped by scan, in which no scan name is cut and no error loses a character."""

from __future__ import annotations

import textwrap
from collections import Counter
from datetime import datetime

from nxgid.cli.common import local_time

#: Terminals at least this wide get the one-row-per-task table.
WIDE = 120


def _task_summary(states) -> str:
    by_task: dict[str, Counter[str]] = {}
    for task in states:
        by_task.setdefault(task.task, Counter())[task.shown_status.split(" (")[0]] += 1
    return "; ".join(f"{task}: " + ", ".join(f"{n} {s}" for s, n in sorted(c.items()))
                     for task, c in sorted(by_task.items())) or "-"


def task_table(rows):
    """One row per task: state, attempts, start, duration, host, result or error (also
    printed by `nxgid demo`)."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    table.add_column("scan", no_wrap=True, min_width=max(
        (len(str(row.scan)) for row in rows), default=4))  # never cut: scans look alike
    for name in ("task", "entry", "status", "attempts", "started", "duration", "host"):
        table.add_column(name)
    table.add_column("result / error", overflow="fold", min_width=30)
    for row in rows:
        for task in row.tasks:
            duration = "" if task.duration_s is None else f"{task.duration_s:.1f} s"
            result = f"stale: {task.stale_reason}" if task.stale_reason \
                else task.error or task.detail or ""
            table.add_row(str(row.scan), task.task, task.entry, task.shown_status,
                          str(task.attempts), local_time(task.started_at), duration,
                          task.host or "", result)
    return table


def task_view(rows, width: int):
    """The per-task view for a console *width* columns wide."""
    if width >= WIDE:
        return task_table(rows)
    from rich.text import Text

    return Text("\n".join(compact_task_lines(rows, width)), no_wrap=True, overflow="ignore")


def compact_task_lines(rows, width: int) -> list[str]:
    """Tasks grouped under their scan's name (printed whole, on its own line), one line
    per task with the result or error wrapped below it, every line at most *width*
    columns (a scan name longer than that is the one exception). Start times of today
    show the time only; the host is shown when tasks ran on more than one."""
    tasks = [task for row in rows for task in row.tasks]
    hosts = {task.host for task in tasks if task.host}
    today = datetime.now().astimezone().date()

    def started(task) -> str:
        if task.started_at is None:
            return ""
        local = task.started_at.astimezone()
        return local.strftime("%H:%M:%S" if local.date() == today else "%m-%d %H:%M")

    def cells(task) -> list[str]:
        duration = "" if task.duration_s is None else f"{task.duration_s:.1f} s"
        row = [task.task, task.entry, task.shown_status, str(task.attempts), started(task),
               duration]
        return row + ([task.host or ""] if len(hosts) > 1 else [])

    header = ["task", "entry", "status", "tries", "started", "took"] + \
        (["host"] if len(hosts) > 1 else [])
    table = [header] + [cells(task) for task in tasks]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(values: list[str]) -> str:
        return "  " + "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))

    indent = len(line(header)) + 2
    room = max(width - indent, 24)
    lines = [line(header) + "  result / error"]
    for row in rows:
        if not row.tasks:
            continue
        lines.append(str(row.scan))
        for task in row.tasks:
            result = f"stale: {task.stale_reason}" if task.stale_reason \
                else task.error or task.detail or ""
            head = line(cells(task))
            wrapped = textwrap.wrap(result, room, break_long_words=True,
                                    break_on_hyphens=False) or [""]
            if len(head) + 2 + len(wrapped[0]) <= width:
                lines.append(f"{head}  {wrapped[0]}".rstrip())
                wrapped = wrapped[1:]
            else:
                lines.append(head.rstrip())
            lines += [" " * indent + part for part in wrapped]
    return lines


def scan_table(rows):
    """The per-scan status table (also printed by `nxgid demo`)."""
    from rich.table import Table

    why = any(t.stale_reason for row in rows for t in row.tasks)
    table = Table(box=None, pad_edge=False)
    table.add_column("scan", no_wrap=True, min_width=max(
        (len(str(row.scan)) for row in rows), default=4))  # never cut: scans look alike
    for name in ("entries", "raw data", "on disk"):
        table.add_column(name)
    table.add_column("tasks", overflow="fold")
    if why:
        table.add_column("stale because", overflow="fold", min_width=30)
    for row in rows:
        cells = [str(row.scan), ", ".join(row.entries) or "-",
                 f"{len(row.raw_entries)}/{len(row.entries)}",
                 "yes" if row.present else "MISSING", _task_summary(row.tasks)]
        table.add_row(*cells, *([_stale_summary(row.tasks)] if why else []))
    return table


def _stale_summary(states) -> str:
    """The reasons of a scan's stale tasks, each with the tasks it applies to, e.g.
    ``link f1, convert f1: geometry (configuration gid changed)``."""
    by_reason: dict[str, list[str]] = {}
    for task in states:
        if task.stale_reason:
            by_reason.setdefault(task.stale_reason, []).append(
                f"{task.task} {task.entry}".strip())
    return "; ".join(f"{', '.join(tasks)}: {reason}" for reason, tasks in by_reason.items())
