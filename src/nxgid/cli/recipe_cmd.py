"""``nxgid recipe``: show and edit reduction recipes, with per-sample/label/scan overrides."""

from __future__ import annotations

import click

from nxgid.cli.common import State, console, experiment_option, pass_state

SCOPE_HELP = "SAMPLE, SAMPLE/LABEL or SAMPLE/LABEL/SCAN (default: the whole experiment)."


def _load(state: State):
    from nxgid.settings.store import load_effective

    experiment = state.experiment()
    return experiment, load_effective(experiment_settings=experiment.settings_file)


def _scope_label(scope: str) -> str:
    return scope or "(experiment)"


@click.group()
def recipe() -> None:
    """Reduction recipes: the [reduction] settings of the experiment, refined per sample,
    label or scan by [reduction SAMPLE[/LABEL[/SCAN]]] sections of tasks/settings.ini.

    A scan's recipe is: defaults < site [reduction] < experiment [reduction] <
    [reduction SAMPLE] < [reduction SAMPLE/LABEL] < [reduction SAMPLE/LABEL/SCAN].

    \b
    Examples:
        nxgid recipe show film1/anneal/12
        nxgid recipe set outputs img_gid_q,vert_cut_gid
        nxgid recipe set --for film1 img_gid_q "q_xy=-2.4:2.4:800, q_z=-0.2:2.6:467"
        nxgid recipe unset --for film1 img_gid_q
    """


@recipe.command("show")
@experiment_option
@click.argument("scope", required=False, default="", metavar="[SCOPE]")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: scope, sha256, recipe (key: value) and origins.")
@pass_state
def show(state: State, scope: str, as_json: bool) -> None:
    """Show every recipe key of SCOPE with its value and where it came from, then the
    recipe hash. SCOPE: SAMPLE, SAMPLE/LABEL or SAMPLE/LABEL/SCAN.

    \b
    Examples:
        nxgid recipe show
        nxgid recipe show film1/anneal/12 --json
    """
    from rich.table import Table

    from nxgid.experiment.recipe import effective_recipe, recipe_scopes

    experiment, effective = _load(state)
    resolved = effective_recipe(experiment, effective, scope)
    if as_json:
        import json

        click.echo(json.dumps({"scope": resolved.scope, "sha256": resolved.sha256,
                               "recipe": resolved.as_dict(), "origins": resolved.origins},
                              indent=1))
        return
    out = console()
    out.print(f"recipe of {_scope_label(resolved.scope)} in {experiment.settings_file}")
    table = Table("key", "value", "from", box=None, pad_edge=False)
    for key, value in resolved.as_dict().items():
        table.add_row(key, value, resolved.origins[key])
    out.print(table)
    out.print(f"sha256: {resolved.sha256}")
    scopes = recipe_scopes(effective)
    if scopes:
        out.print("override sections: " + ", ".join(scopes))
    file = effective.experiment_file
    if file is not None:
        for section, key in file.unknown_keys():
            if section == "reduction" or section.startswith("reduction "):
                out.print(f"unknown, kept: [{section}] {key or '(whole section)'}")


@recipe.command("set", context_settings={"ignore_unknown_options": True})
@experiment_option
@click.option("--for", "scope", default="", metavar="SCOPE", help=SCOPE_HELP)
@click.argument("pairs", nargs=-1, required=True, metavar="KEY VALUE [KEY VALUE]...")
@pass_state
def set_command(state: State, scope: str, pairs: tuple[str, ...]) -> None:
    """Set recipe keys, validated together, in the experiment's tasks/settings.ini.

    \b
    Examples:
        nxgid recipe set corrections "solid_angle, polarization, lorentz=gid"
        nxgid recipe set --for film1/anneal vert_cut_gid "q_z=0:2.5:250, cut=1.28:1.38"
        nxgid recipe set --for film1/anneal/12 incidence_angle 0.15 tilt_deg -0.5
    """
    import logging

    from nxgid.errors import SettingsError
    from nxgid.experiment.recipe import effective_recipe, scope_section, set_recipe
    from nxgid.settings.store import load_effective

    if len(pairs) % 2:
        raise SettingsError(f"{pairs[-1]!r} has no value: expected KEY VALUE pairs")
    experiment, effective = _load(state)
    section = scope_section(scope)
    changes = [(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)]
    written = set_recipe(experiment, effective, scope, changes)
    log = logging.getLogger("nxgid.settings")
    for (key, _), value in zip(changes, written, strict=True):
        log.info("set [%s] %s = %s in %s", section, key, value, experiment.settings_file)
        click.echo(f"[{section}] {key} = {value}   ({experiment.settings_file})")
    after = effective_recipe(
        experiment, load_effective(experiment_settings=experiment.settings_file), scope)
    click.echo(f"recipe of {_scope_label(after.scope)}: sha256 {after.sha256}")


@recipe.command("unset")
@experiment_option
@click.option("--for", "scope", default="", metavar="SCOPE", help=SCOPE_HELP)
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@pass_state
def unset_command(state: State, scope: str, keys: tuple[str, ...]) -> None:
    """Remove recipe keys of SCOPE so that they fall back to the layers below (for the
    whole experiment: to the site settings or the default).

    \b
    Example:
        nxgid recipe unset --for film1 img_gid_q corrections
    """
    import logging

    from nxgid.experiment.recipe import effective_recipe, scope_section, unset_recipe
    from nxgid.settings.store import load_effective

    experiment, effective = _load(state)
    section = scope_section(scope)
    removed = unset_recipe(experiment, effective, scope, list(keys))
    log = logging.getLogger("nxgid.settings")
    for key in keys:
        if key in removed:
            log.info("unset [%s] %s in %s", section, key, experiment.settings_file)
            click.echo(f"[{section}] {key} unset   ({experiment.settings_file})")
        else:
            click.echo(f"[{section}] {key} was not set; nothing to do")
    after = effective_recipe(
        experiment, load_effective(experiment_settings=experiment.settings_file), scope)
    click.echo(f"recipe of {_scope_label(after.scope)}: sha256 {after.sha256}")
