"""What every command shares: the state object, ``-E``, logging, and rich output."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from nxgid.experiment.layout import Experiment


@dataclass
class State:
    experiment_path: Path | None = None
    verbose: int = 0
    debug: bool = False

    def experiment(self) -> Experiment:
        """The experiment named by -E, else the one containing the current directory."""
        from nxgid.experiment.layout import Experiment
        from nxgid.experiment.logbook import attach

        experiment = Experiment.open(self.experiment_path or Path.cwd())
        attach(experiment)
        return experiment

    def experiment_or_none(self) -> Experiment | None:
        from nxgid.errors import NotInExperimentError

        try:
            return self.experiment()
        except NotInExperimentError:
            if self.experiment_path is not None:
                raise
            return None


def _remember_experiment(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    if value is not None:
        ctx.ensure_object(State).experiment_path = Path(value)
    return value


def experiment_option(function):
    """``--experiment/-E PATH``, accepted before or after the subcommand."""
    return click.option(
        "-E", "--experiment", type=click.Path(file_okay=False, path_type=Path),
        callback=_remember_experiment, expose_value=False, is_eager=True,
        help="Experiment directory (or any path inside it); default: the one containing "
             "the current directory.")(function)


pass_state = click.make_pass_decorator(State, ensure=True)


class _StderrFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def configure_logging(verbose: int, debug: bool = False) -> None:
    """Warnings (or more with -v) on stderr; the experiment log is attached separately.
    Third-party libraries are heard only with -v or --debug (nxgid.safety.quiet)."""
    from nxgid.safety.quiet import route_library_logging

    route_library_logging(verbose, debug)
    logger = logging.getLogger("nxgid")
    for handler in list(logger.handlers):
        if getattr(handler, "_nxgid_stderr", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler()
    handler._nxgid_stderr = True  # type: ignore[attr-defined]
    handler.setLevel(logging.WARNING if verbose == 0 else
                     logging.INFO if verbose == 1 else logging.DEBUG)
    handler.setFormatter(_StderrFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    logger.propagate = False


@contextmanager
def stderr_without(attribute: str) -> Iterator[None]:
    """While inside, the stderr handler skips log records that carry *attribute*: the
    command prints those itself (``nxgid watch`` prints each live event once)."""
    def keep(record: logging.LogRecord) -> bool:
        return not getattr(record, attribute, False)

    handlers = [h for h in logging.getLogger("nxgid").handlers
                if getattr(h, "_nxgid_stderr", False)]
    for handler in handlers:
        handler.addFilter(keep)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(keep)


def console() -> Console:
    """A rich console on stdout; wide enough for tables when output is not a terminal.

    Markup is off: paths and ``[section]`` names are printed as they are.
    """
    from rich.console import Console

    plain = Console(markup=False, highlight=False)
    if plain.is_terminal:
        return plain
    return Console(width=max(plain.width, 140), no_color=True, markup=False, highlight=False)


def local_time(moment) -> str:
    """A timestamp as local time, to the second."""
    if moment is None:
        return ""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


#: Without a terminal, a progress line at most this often (and always the last one).
PROGRESS_LINE_EVERY_S = 2.0


@contextmanager
def progress_bar(label: str, enabled: bool | None) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback: a bar on stderr when stderr is a terminal;
    otherwise (scripts, CI, batch jobs) one line per step on stdout, e.g. ``converting:
    48 of 100 frames, 4.1 s``, at most every :data:`PROGRESS_LINE_EVERY_S` seconds, so a
    log shows the run is alive without a line per frame. *enabled* True forces the bar,
    False turns progress off."""
    if enabled is False:
        yield None
        return
    if enabled is None and not sys.stderr.isatty():
        import time

        started = time.monotonic()
        last = [float("-inf")]

        def line(done: int, total: int) -> None:
            now = time.monotonic()
            if done < total and now - last[0] < PROGRESS_LINE_EVERY_S:
                return
            last[0] = now
            click.echo(f"{label}: {done} of {total} frames, {now - started:.1f} s")
        yield line
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(label, BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
