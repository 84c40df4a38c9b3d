"""``nxgid beamlines`` and ``nxgid import``: beamline plugins and scan import."""

from __future__ import annotations

import click

from nxgid.cli.common import console, experiment_option, pass_state
from nxgid.errors import NxgidError


@click.command()
def beamlines() -> None:
    """The installed beamline plugins, with the package that provides each.

    \b
    Example:
        nxgid beamlines
    """
    from nxgid.beamlines.base import discover

    out = console()
    found = discover()
    if not found:
        out.print("no beamline plugins installed")
    for name, info in sorted(found.items()):
        state = "ok" if info.cls is not None else f"BROKEN: {info.error}"
        out.print(f"{name:<12} {info.target:<48} from {info.package}  {state}")


@click.command("import")
@click.argument("sample")
@click.argument("label")
@click.option("--config", "configuration", required=True, help="Configuration name.")
@click.option("--beamline", help="Beamline plugin [the settings' [beamline] plugin].")
@click.option("--dry-run", is_flag=True, help="Print what would be imported; write nothing.")
@click.option("--overwrite", is_flag=True, help="Re-import scans whose raw files changed.")
@experiment_option
@pass_state
def import_command(state, sample, label, configuration, beamline, dry_run,
                   overwrite) -> None:
    """Import the raw scans of SAMPLE/LABEL from the raw tree, through a beamline plugin.

    Re-running is safe: unchanged scans are left alone, changed ones reported.

    \b
    Examples:
        nxgid import pentacene-SiO2 as-grown --config gid --dry-run
        nxgid import pentacene-SiO2 as-grown --config gid --beamline spec
    """
    from nxgid.beamlines.base import chosen_beamline, get_beamline
    from nxgid.beamlines.importer import import_scans
    from nxgid.experiment.create import planned_raw_directory
    from nxgid.experiment.layout import Selection
    from nxgid.workflow.sync import sync
    from nxgid.workflow.workspace import effective_settings, open_database

    experiment = state.experiment()
    settings = effective_settings(experiment)
    name = chosen_beamline(beamline, settings.settings)
    raw = planned_raw_directory(experiment.name, settings)
    if raw is None or not raw.is_dir():
        raise NxgidError(f"raw data directory {raw} does not exist: expected "
                         "<raw_home>/<experiment>[/<raw_path>] from [instrument] settings")
    plugin = get_beamline(name)(raw, settings.settings)
    out = console()
    actions = import_scans(experiment, plugin, sample, label, configuration,
                           dry_run=dry_run, overwrite=overwrite,
                           say=lambda line: out.print(f"· {line}"))
    for action in actions:
        out.print(f"{sample}/{label}/{action.scan:<12} {action.action:<10} {action.detail}")
        for warning in action.warnings:
            out.print(f"  warning: {warning}")
    if not actions:
        out.print(f"no raw scans for {sample}/{label} in {raw}")
    if not dry_run and any(a.action in ("create", "reimport") for a in actions):
        with open_database(experiment) as database:
            sync(database, Selection(sample, label))
