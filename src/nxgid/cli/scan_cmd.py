"""``nxgid scan``, ``nxgid stack`` and ``nxgid sum``: scans made from configurations,
raw stacks made from image series, and summed scans."""

from __future__ import annotations

from pathlib import Path

import click

from nxgid.cli.common import console, experiment_option, pass_state, progress_bar
from nxgid.errors import NxgidError


def _variables(values: tuple[str, ...]) -> dict[str, tuple[float, str]]:
    """``temperature=300K`` or ``temperature=300:K`` → {"temperature": (300.0, "K")}."""
    import re

    from nxgid.names import check_name

    parsed = {}
    for text in values:
        name, sep, rest = text.partition("=")
        match = re.fullmatch(r"\s*([-+0-9.eE]+)\s*:?\s*([A-Za-z/^0-9°]*)\s*", rest)
        if not sep or not match:
            raise NxgidError(f"--var {text!r}: expected NAME=VALUE[UNIT], e.g. "
                             "temperature=300K")
        try:
            value = float(match.group(1))
        except ValueError:
            raise NxgidError(f"--var {text!r}: {match.group(1)!r} is not a number") from None
        parsed[check_name(name.strip(), "scan variable")] = (value, match.group(2))
    return parsed


def _sync(experiment, selection) -> None:
    from nxgid.workflow.sync import sync
    from nxgid.workflow.workspace import open_database

    with open_database(experiment) as database:
        sync(database, selection)


@click.group()
def scan() -> None:
    """Scans: files made from a configuration, linking to their raw stacks.

    \b
    Examples:
        nxgid scan new pentacene-SiO2 as-grown s001 --config gid --var temperature=300K
        nxgid scan info pentacene-SiO2/as-grown/s001
        nxgid scan list pentacene-SiO2
    """


@scan.command("new")
@click.argument("sample")
@click.argument("label")
@click.argument("scan_name", metavar="SCAN")
@click.option("--config", "configuration", required=True, help="Configuration name.")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE[UNIT]",
              help="Scan variable written to the sample group, e.g. temperature=300K.")
@click.option("--overwrite", is_flag=True, help="Make an existing scan file again.")
@experiment_option
@pass_state
def scan_new(state, sample, label, scan_name, configuration, variables, overwrite) -> None:
    """Create SAMPLE/LABEL/SCAN from a configuration (links work before the data exist).

    \b
    Example:
        nxgid scan new pentacene-SiO2 as-grown s001 --config gid --var temperature=300K
    """
    from nxgid.experiment.layout import ScanRef, Selection
    from nxgid.experiment.scans import new_scan

    experiment = state.experiment()
    ref = ScanRef(sample, label, scan_name)
    path = new_scan(experiment, ref, configuration, variables=_variables(variables),
                    overwrite=overwrite)
    _sync(experiment, Selection(sample, label, scan_name))
    console().print(f"{path.relative_to(experiment.root)}: scan {ref} from configuration "
                    f"{configuration}")


@scan.command("info")
@click.argument("scan_path", metavar="SAMPLE/LABEL/SCAN")
@experiment_option
@pass_state
def scan_info_cmd(state, scan_path) -> None:
    """Link status of every entry and whether the calibration is stale.

    \b
    Example:
        nxgid scan info pentacene-SiO2/as-grown/s001
    """
    from nxgid.experiment.layout import ScanRef
    from nxgid.experiment.scans import scan_info

    info = scan_info(state.experiment(), ScanRef.parse(scan_path))
    out = console()
    stale = {None: "configuration missing", True: "STALE: the configuration changed since; "
             "run `nxgid scan refresh`", False: "up to date"}[info.stale]
    out.print(f"scan {info.ref}: configuration {info.configuration} ({stale})")
    if info.summed_from:
        out.print(f"  sum of {', '.join(info.summed_from)}")
    for key, value in info.variables.items():
        out.print(f"  {key} = {value}")
    for entry in info.entries:
        frames = f", {entry.frames} frames" if entry.frames else ""
        # one line per entry, never wrapped: a refused link names its target in full
        out.print(f"  {entry.name:<4} {entry.link:<20} {entry.state}{frames}", markup=False,
                  soft_wrap=True)


@scan.command("refresh")
@click.argument("selection", nargs=-1, metavar="[SAMPLE[/LABEL[/SCAN]]]...")
@click.option("--all", "everything", is_flag=True, help="Every scan of the experiment.")
@experiment_option
@pass_state
def scan_refresh(state, selection, everything) -> None:
    """Bring scans' calibration and mask up to date with their configuration.

    Prints one line per scan: refreshed, or already up to date. The reduction of a
    refreshed scan is then stale: `nxgid reduce --stale` redoes it (`reduce --stale`
    alone also refreshes the scans it redoes).

    \b
    Examples:
        nxgid scan refresh pentacene-SiO2/as-grown/s001
        nxgid scan refresh pentacene-SiO2
        nxgid scan refresh --all
    """
    from nxgid.errors import MissingError
    from nxgid.experiment.layout import Selection
    from nxgid.experiment.scans import refresh_scan

    if not selection and not everything:
        raise NxgidError("scan refresh: name scans (SAMPLE[/LABEL[/SCAN]]) or give --all")
    experiment = state.experiment()
    parts = [Selection.parse(t) for t in selection] or [Selection()]
    out = console()
    refs = []
    for part in parts:
        found = [ref for ref in experiment.scans(part) if experiment.scan_file(ref).is_file()]
        if not found and selection:
            raise MissingError(f"scan refresh: no scan files in {part}")
        refs += found
    refs = sorted(set(refs))
    if not refs:
        out.print("no scans in the experiment")
        return
    refreshed, failed = 0, []
    for ref in refs:
        try:
            changed = refresh_scan(experiment, ref)
        except (NxgidError, OSError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if len(refs) == 1:  # the one scan named: its error is the command's
                raise exc if isinstance(exc, NxgidError) else NxgidError(
                    f"scan {ref}: {message}") from None
            failed.append(ref)
            out.print(f"scan {ref}: not refreshed: {message}")
            continue
        refreshed += changed
        out.print(f"scan {ref}: " + ("refreshed from its configuration" if changed
                                     else "already up to date"))
    if refreshed:
        out.print(f"{refreshed} scan(s) refreshed: `nxgid reduce --stale` redoes their "
                  "reduction with the new geometry and mask")
    if failed:
        raise NxgidError(f"scan refresh: {len(failed)} of {len(refs)} scan(s) not refreshed")


@scan.command("list")
@click.argument("selection", required=False, default="")
@experiment_option
@pass_state
def scan_list(state, selection) -> None:
    """Scans with their configuration and the state of their raw data.

    \b
    Example:
        nxgid scan list pentacene-SiO2/as-grown
    """
    from nxgid.experiment.layout import Selection
    from nxgid.experiment.scans import scan_info

    experiment = state.experiment()
    chosen = Selection.parse(selection)
    out = console()
    refs = [ref for ref in experiment.scans() if chosen.matches(ref)]
    if not refs:
        out.print(f"no scans in {chosen}")
    for ref in refs:
        try:
            info = scan_info(experiment, ref)
        except Exception as exc:  # an unreadable file is listed, not fatal
            out.print(f"{ref!s:<36} unreadable: {str(exc).splitlines()[0]}")
            continue
        present = sum(e.state == "present" for e in info.entries)
        flag = " stale" if info.stale else ""
        out.print(f"{ref!s:<36} {info.configuration or '-':<10} "
                  f"{present}/{len(info.entries)} entries with data{flag}")


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output HDF5 stack (or give --scan and --entry).")
@click.option("--scan", "scan_path", metavar="SAMPLE/LABEL/SCAN",
              help="Write into this scan's raw stack.")
@click.option("--entry", default="f1", show_default=True, help="Scan entry (with --scan).")
@click.option("--dataset", metavar="PATH", help="Dataset in HDF5 inputs [found].")
@click.option("--frames", metavar="RANGE", help="Frames of the series, e.g. 0:100.")
@click.option("--overwrite", is_flag=True, help="Replace an existing stack.")
@click.option("--progress/--no-progress", default=None,
              help="Progress: a bar when stderr is a terminal, else a line every 2 s "
                   "[default]; --progress: the bar; --no-progress: none.")
@experiment_option
@pass_state
def stack(state, images, output, scan_path, entry, dataset, frames, overwrite,
          progress) -> None:
    """Stack image files (any fabio format, multi-frame too) into one HDF5 stack.

    Interrupted runs resume where they stopped; sources are only read.

    \b
    Examples:
        nxgid stack 'raw/s001/*.cbf' --scan pentacene-SiO2/as-grown/s001 --entry f1
        nxgid stack 'img_*.tif' -o stack.h5
    """
    from nxgid.experiment.stack import stack_images

    if (output is None) == (scan_path is None):
        raise NxgidError("give -o OUTPUT or --scan SAMPLE/LABEL/SCAN, one of the two")
    if scan_path is not None:
        from nxgid.experiment.layout import ScanRef

        experiment = state.experiment()
        ref = ScanRef.parse(scan_path)
        if not experiment.scan_file(ref).exists():
            from nxgid.errors import MissingError

            raise MissingError(f"scan {ref} does not exist: create it with `nxgid scan "
                               f"new {ref.sample} {ref.label} {ref.scan} --config NAME`")
        output = experiment.raw_stack(ref, entry)
        from nxgid.experiment.boundary import boundary_of
        from nxgid.experiment.scans import scan_detector

        boundary_of(experiment).check(output.parent, f"scan folder of {ref}")
        detector = scan_detector(experiment, ref)
    else:
        experiment, detector = None, None
    from nxgid.experiment.boundary import guard_outputs

    guard_outputs([output], images, experiment=experiment, raw_stacks=True)
    with progress_bar("stacking", progress) as report:
        summary = stack_images(list(images), output, dataset=dataset, frames=frames,
                               overwrite=overwrite, progress=report, detector=detector)
    if scan_path is not None:
        from nxgid.experiment.scans import link_raw

        link_raw(experiment, ref, [entry])
    resumed = f" (resumed at frame {summary.resumed_from})" if summary.resumed_from else ""
    console().print(f"{summary.output}: {summary.frames} frame(s) from {summary.files} "
                    f"file(s){resumed}")


@click.command("sum")
@click.argument("sample")
@click.argument("label")
@click.argument("scans", nargs=-1, required=True)
@click.option("--into", required=True, help="Name of the new, summed scan.")
@click.option("--overwrite", is_flag=True, help="Replace an existing summed scan.")
@experiment_option
@pass_state
def sum_command(state, sample, label, scans, into, overwrite) -> None:
    """Sum SCANS of SAMPLE/LABEL frame by frame into a new scan.

    \b
    Example:
        nxgid sum pentacene-SiO2 as-grown s001 s002 --into s001-s002
    """
    from nxgid.experiment.layout import Selection
    from nxgid.experiment.scans import sum_scans

    experiment = state.experiment()
    path = sum_scans(experiment, sample, label, list(scans), into, overwrite=overwrite)
    _sync(experiment, Selection(sample, label, into))
    console().print(f"{path.relative_to(experiment.root)}: sum of {', '.join(scans)}")
