"""``nxgid settings``: create, show and edit site and experiment settings."""

from __future__ import annotations

import click

from nxgid.cli.common import State, console, experiment_option, pass_state

# Option names of `settings init` are generated from the settings model; the model is
# small and pydantic-only, so importing it here keeps `nxgid --help` fast.
from nxgid.settings.model import SECTIONS


def _key_options(function):
    for section, model in reversed(list(SECTIONS.items())):
        for key in reversed(list(model.model_fields)):
            flag = "--" + key.replace("_", "-")
            function = click.option(
                flag, f"{section}__{key}", default=None, metavar="VALUE",
                help=f"[{section}] {model.describe(key)}")(function)
    return function


@click.group()
def settings() -> None:
    """Site settings ($NXGID_HOME/settings.ini) and experiment settings (tasks/settings.ini).

    Effective values are: defaults, overridden by the site file, overridden by the
    experiment's file. [server] is site-wide only.

    \b
    Examples:
        nxgid settings init --source ESRF --instrument ID10 --analysis-home /data/visitor
        nxgid settings init -i
        nxgid settings show
        nxgid settings set configuration.wavelength_A 0.95
    """


#: What ``settings init -i`` asks a new site, by topic; ``--all`` asks every key.
SITE_QUESTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "facility and beamline": (("instrument", "source"), ("instrument", "instrument"),
                              ("beamline", "plugin")),
    "where the data live": (("instrument", "raw_home"), ("instrument", "raw_path"),
                            ("instrument", "analysis_home"),
                            ("instrument", "analysis_path")),
    "the usual set-up (defaults of `nxgid config new`)": (
        ("configuration", "detector"), ("configuration", "wavelength_A"),
        ("configuration", "distance_mm"), ("configuration", "incidence_angle_deg")),
    "the reduction machines": (("server", "workers"),),
}


@settings.command("init", context_settings={"max_content_width": 110})
@click.option("-i", "--interactive", is_flag=True,
              help="Ask the few questions a site needs, by topic, showing each current "
                   "value (Enter keeps it); save only on confirmation. Works on an "
                   "existing file.")
@click.option("--all", "ask_all", is_flag=True,
              help="With -i: ask every key of every section.")
@click.option("--overwrite", is_flag=True, help="Replace an existing site file.")
@_key_options
def init(interactive: bool, ask_all: bool, overwrite: bool, **values: str | None) -> None:
    """Create the site settings file from flags (or prompts with -i).

    \b
    Examples:
        nxgid settings init --source "PETRA III" --instrument P03 --plugin spec \\
            --raw-home /asap3/petra3/gpfs/p03 --analysis-home ~/beamtimes
        nxgid settings init -i          # the dozen questions a site needs
        nxgid settings init -i --all    # every key
    """
    from nxgid.settings.store import (
        SettingsFile,
        create_site_file,
        default_values,
        normalise_value,
        site_settings_path,
        validate_file,
    )

    path = site_settings_path()
    given: dict[str, dict[str, str]] = {}
    for name, value in values.items():
        if value is not None:
            section, key = name.split("__", 1)
            given.setdefault(section, {})[key] = value
    if not interactive:
        create_site_file(path, given, overwrite=overwrite)
        click.echo(f"site settings written to {path}")
        return

    file = SettingsFile.read_or_empty(path)
    if not path.exists() or overwrite:
        file.values = default_values()
    for section, items in given.items():
        for key, value in items.items():
            file.set(section, key, normalise_value(section, key, value))
    click.echo(f"Site settings {path} — press Enter to keep the value shown.")
    groups = ({f"[{section}]": tuple((section, key) for key in model.model_fields)
               for section, model in SECTIONS.items()} if ask_all else SITE_QUESTIONS)
    for topic, keys in groups.items():
        click.echo(f"\n{topic}")
        for section, key in keys:
            current = file.get(section, key)
            if current is None:
                current = default_values()[section][key]
            while True:
                answer = click.prompt(
                    f"  {section}.{key} ({SECTIONS[section].describe(key)})",
                    default=current, show_default=True)
                try:
                    file.set(section, key, normalise_value(section, key, answer.strip()))
                    break
                except Exception as exc:  # show the reason and ask again
                    click.echo(f"  error: {exc}", err=True)
    if not ask_all:
        click.echo("\n(the other keys keep their values: `nxgid settings init -i --all` "
                   "asks them, `nxgid settings set SECTION.KEY VALUE` sets one)")
    validate_file(file)
    if click.confirm(f"\nSave to {path}?", default=True):
        file.write()
        click.echo(f"site settings written to {path}")
    else:
        click.echo("not saved; nothing was changed")


@settings.command("show")
@experiment_option
@click.option("--section", type=click.Choice(list(SECTIONS)), help="Only this section.")
@click.option("--site", "site_only", is_flag=True, help="Ignore the experiment; site values only.")
@pass_state
def show(state: State, section: str | None, site_only: bool) -> None:
    """Show every effective value and where it came from.

    \b
    Example:
        nxgid settings show --section configuration
    """
    from rich.table import Table

    from nxgid.settings.store import load_effective, site_settings_path

    experiment = None if site_only else state.experiment_or_none()
    effective = load_effective(
        experiment_settings=experiment.settings_file if experiment else None)
    site = str(site_settings_path())
    out = console()
    out.print(f"site settings:       {site}" + ("" if effective.site_file.path.exists()
                                                  else "  (not created yet: defaults)"))
    if experiment:
        out.print(f"experiment settings: {experiment.settings_file}")
    table = Table("key", "value", "from", box=None, pad_edge=False)
    current = None
    for sec, key, value, origin in effective.rows():
        if section and sec != section:
            continue
        if sec != current:
            table.add_row(f"[{sec}]", "", "", style="bold")
            current = sec
        where = ("default" if origin == "default" else "site" if origin == site
                 else "experiment")
        table.add_row(f"  {key}", value, where)
    out.print(table)
    for layer in (effective.site_file, effective.experiment_file):
        if layer is None:
            continue
        for sec, key in layer.unknown_keys():
            out.print(f"unknown, kept: [{sec}] {key or '(whole section)'} in {layer.path}")


@settings.command("set", context_settings={"ignore_unknown_options": True})
@experiment_option
@click.argument("pairs", nargs=-1, required=True,
                metavar="SECTION.KEY VALUE [SECTION.KEY VALUE]...")
@click.option("--site", "to_site", is_flag=True,
              help="Write to the site file even inside an experiment.")
@pass_state
def set_command(state: State, pairs: tuple[str, ...], to_site: bool) -> None:
    """Set values, validated together; inside an experiment, in the experiment's file.

    [server] keys always go to the site file. Give related keys in one call when a rule
    spans them (the phi scan direction).

    \b
    Examples:
        nxgid settings set configuration.distance_mm 285.5
        nxgid settings set reduction.outputs img_gid_q,img_gid_pol,rad_cut_gid
        nxgid settings set configuration.phi_end_deg -10 configuration.phi_step_deg -0.1
        nxgid settings set --site instrument.analysis_home /data/analysis
    """
    import logging

    from nxgid.errors import SettingsError
    from nxgid.settings.store import SettingsFile, resolve_key, set_values, site_settings_path

    if len(pairs) % 2:
        raise SettingsError(f"{pairs[-1]!r} has no value: expected SECTION.KEY VALUE pairs")
    changes = [(*resolve_key(pairs[i]), pairs[i + 1]) for i in range(0, len(pairs), 2)]
    site = SettingsFile.read_or_empty(site_settings_path())
    experiment = None if to_site else state.experiment_or_none()
    by_file: dict[str, list[tuple[str, str, str]]] = {}
    for change in changes:
        where = "site" if experiment is None or change[0] == "server" else "experiment"
        by_file.setdefault(where, []).append(change)
    targets = []
    if "experiment" in by_file:
        assert experiment is not None
        target = SettingsFile.read(experiment.settings_file)
        written = set_values(target, by_file["experiment"], others=site)
        targets.append((target, by_file["experiment"], written))
    if "site" in by_file:
        written = set_values(site, by_file["site"])
        targets.append((site, by_file["site"], written))
    log = logging.getLogger("nxgid.settings")
    for target, items, written in targets:
        for (section, key, _), value in zip(items, written, strict=True):
            log.info("set [%s] %s = %s in %s", section, key, value, target.path)
            click.echo(f"[{section}] {key} = {value}   ({target.path})")


@settings.command("upgrade")
@experiment_option
@pass_state
def upgrade(state: State) -> None:
    """Rewrite older settings files (e.g. NXRefine's) in the current layout.

    A copy of each original is kept next to it as settings.ini.v<N>.bak.

    \b
    Example:
        NXGID_HOME=~/nxrefine-site nxgid settings upgrade
    """
    import shutil

    from nxgid.settings.store import SettingsFile, site_settings_path, validate_file

    paths = [site_settings_path()]
    experiment = state.experiment_or_none()
    if experiment:
        paths.append(experiment.settings_file)
    for path in paths:
        if not path.exists():
            continue
        file = SettingsFile.read(path)
        if not file.needs_upgrade:
            click.echo(f"{path}: already current")
            continue
        validate_file(file)
        backup = path.with_name(f"{path.name}.v{file.read_version}.bak")
        shutil.copy2(path, backup)
        old = file.read_version
        file.write()
        click.echo(f"{path}: upgraded from schema {old} (original kept as {backup.name})")
