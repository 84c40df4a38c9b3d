"""``nxgid experiment`` and ``nxgid sample``: create and inspect the experiment tree."""

from __future__ import annotations

from pathlib import Path

import click

from nxgid.cli.common import State, console, experiment_option, pass_state


@click.group()
def experiment() -> None:
    """Create and inspect experiments.

    \b
    Examples:
        nxgid experiment new 2026-11-ID10-pentacene
        nxgid -E /data/analysis/2026-11-ID10-pentacene experiment info
    """


@experiment.command("new")
@click.argument("name")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="Create it here instead of [instrument] analysis_home.")
def experiment_new(name: str, home: Path | None) -> None:
    """Create experiment NAME in <analysis_home>/NAME[/<analysis_path>].

    Makes tasks/ (settings.ini, nxdatabase.db, nxlogger.log), calibrations/,
    configurations/ and scripts/. An existing experiment is never touched.

    \b
    Example:
        nxgid experiment new 2026-11-ID10-pentacene --home /data/analysis
    """
    from nxgid.experiment.create import planned_raw_directory
    from nxgid.settings.store import load_effective
    from nxgid.workflow.database import database_url
    from nxgid.workflow.workspace import new_experiment

    site = load_effective()
    created = new_experiment(name, site, home=home)
    raw = planned_raw_directory(name, site)
    out = console()
    out.print(f"created experiment {name} at {created.root}")
    for directory in created.directories:
        out.print(f"  {directory.name}/")
    out.print(f"  settings: {created.settings_file}")
    out.print(f"  database: {_hide_password(database_url(created, site.settings))}")
    out.print(f"  log:      {created.log_file}")
    if raw:
        out.print(f"  raw data: {raw} (read only)")
    out.print(f"next: cd {created.root} && nxgid sample new SAMPLE LABEL")


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@experiment.command("info")
@experiment_option
@pass_state
def experiment_info(state: State) -> None:
    """Show where an experiment's parts are and what it holds.

    \b
    Example:
        nxgid experiment info -E /data/analysis/2026-11-ID10-pentacene
    """
    from nxgid.experiment.create import planned_raw_directory
    from nxgid.workflow.database import database_url
    from nxgid.workflow.workspace import effective_settings

    exp = state.experiment()
    effective = effective_settings(exp)
    info = exp.info
    out = console()
    out.print(f"experiment {info.name}  (id {info.id}, created {info.created:%Y-%m-%d %H:%M})")
    out.print(f"  root:     {exp.root}")
    raw = planned_raw_directory(info.name, effective)
    out.print(f"  raw data: {raw if raw else '(no raw_home set)'}")
    out.print(f"  database: {_hide_password(database_url(exp, effective.settings))}")
    out.print(f"  log:      {exp.log_file}")
    scans = exp.scans()
    out.print(f"  {len(exp.samples())} samples, {len(scans)} scans")


@click.group()
def sample() -> None:
    """Create and list samples and their labels (<sample>/<label>/ folders).

    \b
    Examples:
        nxgid sample new pentacene-A rt
        nxgid sample list
    """


@sample.command("new")
@experiment_option
@click.argument("sample_name", metavar="SAMPLE")
@click.argument("label")
@pass_state
def sample_new(state: State, sample_name: str, label: str) -> None:
    """Create <sample>/<label>/ in the experiment.

    Names: letters, digits, '-', '_', '.'; at most 64 characters.

    \b
    Example:
        nxgid sample new pentacene-A anneal-150C
    """
    from nxgid.workflow.workspace import new_sample

    exp = state.experiment()
    directory = new_sample(exp, sample_name, label)
    click.echo(f"created {exp.relative(directory)}/ in {exp.root}")


@sample.command("list")
@experiment_option
@pass_state
def sample_list(state: State) -> None:
    """List samples, their labels and how many scans each holds.

    \b
    Example:
        nxgid sample list
    """
    from rich.table import Table

    from nxgid.experiment.layout import Selection

    exp = state.experiment()
    table = Table("sample", "label", "scans", box=None, pad_edge=False)
    for name in exp.samples():
        labels = exp.labels(name) or [""]
        for label in labels:
            count = len(exp.scans(Selection(name, label))) if label else 0
            table.add_row(name, label, str(count))
    console().print(table)
