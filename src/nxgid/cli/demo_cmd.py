"""``nxgid demo``: build a complete example beamtime and show where everything is;
``nxgid examples``: write the example inputs the README and the walkthrough use."""

from __future__ import annotations

from pathlib import Path

import click

from nxgid.cli.common import console


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True,
              help="Rebuild DIRECTORY if it holds an earlier demo (nothing else is removed).")
def demo(directory: Path, overwrite: bool) -> None:
    """Build an example beamtime in DIRECTORY, with its own site settings.

    Your own settings are never read or changed: the demo's site settings live in
    DIRECTORY/site. Prints the status table and where everything is.

    \b
    Example:
        nxgid demo /tmp/nxgid-demo
    """
    from nxgid.cli.tables import scan_table, task_table
    from nxgid.demo.beamtime import WORKERS, build_demo
    from nxgid.demo.conversion import DEMO_OVERRIDES
    from nxgid.experiment.logbook import tail

    out = console()
    report = build_demo(directory, overwrite=overwrite,
                        progress=lambda step: out.print(f"· {step}"))
    exp = report.experiment
    out.print()
    out.print(f"demo beamtime {exp.name} in {report.directory}")
    out.print(f"  site settings: {report.site_file}")
    out.print(f"  raw data:      {report.raw_directory} (read only)")
    out.print(f"  experiment:    {exp.root}")
    out.print(f"  database:      {exp.database_file}")
    out.print(f"  log:           {exp.log_file}")
    out.print(f"\nscans ({report.sync.summary()}):")
    out.print(scan_table(report.status))

    setup = report.setup
    if setup is not None:
        out.print(f"\nconfiguration {setup.configuration.stem} "
                  f"({setup.configuration.relative_to(exp.root)}):")
        for line in [*setup.calibration, *setup.mask]:
            out.print(f"  {line}")
        out.print(f"\nimported from the raw tree ({setup.spec_file.name} with CBF folders, "
                  "an Eiger-style HDF5 scan) by the spec and hdf5 beamlines:")
        for line in setup.imports:
            out.print(f"  {line}")
        for warning in setup.warnings:
            out.print(f"  warning: {warning}")
        out.print(f"  {setup.summed} = sum of its scans")
    conv = report.conversion
    if conv is not None:
        from nxgid.experiment.recipe import effective_recipe
        from nxgid.workflow.workspace import effective_settings

        effective = effective_settings(exp, site_path=report.site_file)
        recipe = effective_recipe(exp, effective)
        out.print(f"\nreduction recipe (tasks/settings.ini [reduction], sha256 "
                  f"{recipe.sha256[:12]}…): {', '.join(recipe.values.outputs)}")
        out.print("  overrides: " + "; ".join(
            f"[reduction {scope}] " + ", ".join(f"{k} = {v}" for k, v in values.items())
            for scope, values in DEMO_OVERRIDES.items()))
        out.print(f"\nreduction workflow: {conv.queued}; {WORKERS} local worker processes:")
        out.print(task_table(report.status))
        previews = sorted(exp.root.glob("*/*/*/previews/*.png"))
        if previews:
            out.print(f"  previews: {len(previews)} PNG files, e.g. "
                      f"{previews[0].relative_to(exp.root)}")
    if conv is not None:
        out.print(f"\nreciprocal space (geometry {conv.poni.name}, corrections: "
                  + ", ".join(k for k, v in conv.corrections.items()
                              if isinstance(v, dict) and v.get("applied")) + "):")
        for name, shape in conv.results.items():
            out.print(f"  {name:<14} {' × '.join(map(str, shape))}")
        good = sum(check.ok for check in conv.spots)
        out.print(f"  spots found within half a bin of the truth: {good} of {len(conv.spots)}")
        for check in conv.spots:
            out.print(f"    ({check.q_xy_A:+.3f}, {check.q_z_A:.3f}) Å⁻¹ → "
                      f"({check.found_q_xy_A:+.4f}, {check.found_q_z_A:.4f})"
                      f"{'' if check.ok else '   OUTSIDE half a bin'}")
        out.print("  reduced NeXus files (open them with h5web, silx, NeXpy, pygid or "
                  "`nxgid show`):")
        for path in conv.files:
            out.print(f"    {path.relative_to(exp.root)}")
        if conv.bins is not None:
            (before_shape, before), (after_shape, after) = conv.bins.before, conv.bins.after
            out.print(f"  default bins: {' × '.join(map(str, after_shape))} with {after} empty "
                      f"bins in the covered region; nxgid 0.1's "
                      f"{' × '.join(map(str, before_shape))} had {before}: {conv.bins.path}")
        for step, seconds in conv.timings_s.items():
            out.print(f"  {step}: {seconds:.2f} s")
        out.print(f"  previews: {conv.previews[0].parent}/ ({len(conv.previews)} PNG files)")
    if report.validation is not None:
        code, lines = report.validation
        verdicts = [line for line in lines if ": valid (" in line or "NOT valid" in line]
        valid = sum(": valid (" in line for line in verdicts)
        out.print(f"\n`nxgid validate` on the {len(verdicts)} reduced, scan and configuration "
                  f"files: {valid} valid (nexusformat and pynxtools against NXgid or NXsas, "
                  f"silx, nxload), exit status {code}")
        for line in lines:
            if "NOT valid" in line or line.rstrip().endswith("]"):
                out.print(f"  {line}", markup=False)
    live = report.live
    if live is not None:
        out.print(f"\nlive mode (`nxgid watch`): {live.scan} measured frame by frame after "
                  f"the reduction; the reduced file grew to {live.growth} frames as they "
                  f"landed ({live.frames} in the end, {live.seconds:.1f} s); {live.summary}")
        if live.after is not None:
            out.print(f"  then `nxgid reduce {live.scan}`: {live.after.summary()} "
                      "(link and convert were recorded by live mode; the preview is made)")
    dask = report.dask
    if dask is not None:
        out.print(f"\nrecipe change: {dask.change}")
        out.print(f"  stale: {', '.join(f'{t} {r} {e}'.strip() for r, t, e in dask.stale)}; "
                  f"redone on a Dask cluster (dask-local, 2 workers): {dask.done} done, "
                  f"{dask.failed} failed in {dask.seconds:.1f} s on {', '.join(dask.where)}")
    if report.safety:
        out.print("\ndata safety (docs/data-safety.md): requests that would harm data, each "
                  "refused with one line, its files unchanged:")
        for refusal in report.safety:
            out.print(f"  {refusal.what}: exit {refusal.status} in {refusal.seconds:.1f} s",
                      markup=False)
            out.print(f"    {refusal.message}", markup=False, overflow="ignore",
                      no_wrap=True, crop=False)
    if report.handouts is not None:
        out.print("\nto take away and to try by hand:")
        for line in report.handouts.lines:
            out.print(f"  {line}", markup=False)
    out.print("\nlast log lines:")
    for line in tail(exp.log_file, 5):
        out.print(f"  {line}")
    out.print("\ntimings (s):")
    previous = 0.0
    for step, until in report.timings_s.items():
        if until >= previous:
            out.print(f"  {step:<28} {until - previous:6.1f}")
            previous = until
    elapsed = max(report.timings_s.values())
    out.print(f"\ndone in {elapsed:.1f} s. Explore it with:")
    out.print(f"  export NXGID_HOME={report.site_file.parent}")
    out.print(f"  cd {exp.root} && nxgid status --tasks && nxgid recipe show && nxgid log")
    out.print("  nxgid reduce --all --stale --now    # after `nxgid recipe set …`")
    out.print("  nxgid config show gid && nxgid scan list && "
              "nxgid scan info pentacene-SiO2/as-grown/s001")
    if conv is not None and conv.files:
        out.print(f"  nxgid show {conv.files[0]}")
        out.print(f"  nxgid plot {conv.files[0]} --entry img_gid_q -o map.png")


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--experiment", default=None, metavar="NAME",
              help="Experiment the raw tree is for (raw/NAME/) [2026-11-ID10-pentacene].")
@click.option("--overwrite", is_flag=True,
              help="Write into a folder that is not empty (only the example files are "
                   "replaced).")
def examples(directory: Path, experiment: str | None, overwrite: bool) -> None:
    """Write example inputs into DIRECTORY: a LaB6 powder image with its PONI and
    d-spacings, a mask image, a sample YAML, image series and a SPEC beamline's raw tree.

    They are what the README's Quick start and docs/walkthrough.md use, so every block
    of them runs as written. DIRECTORY/README.txt says what each file is.

    \b
    Example:
        nxgid examples inputs
    """
    from nxgid.demo.inputs import EXPERIMENT, write_example_inputs

    out = console()
    written = write_example_inputs(directory, overwrite=overwrite,
                                   experiment=experiment or EXPERIMENT)
    out.print(f"wrote {len(written.files)} example files to {written.folder}/ "
              "(README.txt says what each is):")
    shown: set[str] = set()
    for path in written.files:
        relative = path.relative_to(written.folder)
        top = relative.parts[0] if len(relative.parts) > 1 else str(relative)
        if top in shown:
            continue
        shown.add(top)
        out.print(f"  {top}{'/' if len(relative.parts) > 1 else ''}")
