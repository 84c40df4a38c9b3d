"""``nxgid validate``: the NeXus validators on any file nxgid writes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nxgid.cli.common import console
from nxgid.errors import NxgidError


@click.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--definitions", "definitions", type=click.Path(path_type=Path),
              help="Write the NeXus definitions with NXgid into this new folder, for "
                   "the standalone validators (pynx validate, nxvalidate -d).")
def validate(files: tuple[Path, ...], definitions: Path | None) -> None:
    """Check NeXus FILES with nexusformat's and pynxtools' validators (each entry
    against the application definition it names: NXgid for reduced files, NXsas for the
    entries of configuration and scan files), silx's NXdata rules and NeXpy's nxload.

    Prints one line per problem (the HDF5 path and the rule) and exits with status 1
    when a file is not valid. Files are only read: not a byte, nor the modification
    time, changes.

    \b
    Examples:
        nxgid validate s001/f1_reduced.nxs pentacene-SiO2_s001.nxs
        nxgid validate --definitions nexus-definitions
        NEXUS_DEF_PATH=nexus-definitions pynx validate s001/f1_reduced.nxs
    """
    from nxgid.experiment.boundary import guard_outputs
    from nxgid.nexus.validate import validate as check
    from nxgid.nexus.validate import write_definitions

    out = console()
    if definitions is not None:
        guard_outputs([definitions], files)
        folder = write_definitions(definitions)
        out.print(f"{folder}: NeXus definitions with NXgid; use them with\n"
                  f"  NEXUS_DEF_PATH={folder} pynx validate FILE\n"
                  f"  nxvalidate -d {folder} -p /ENTRY FILE")
    if not files:
        if definitions is None:
            raise NxgidError("give NeXus files to validate (or --definitions FOLDER)")
        return
    from nxgid.errors import MissingError

    for path in files:  # bad input first: nothing is checked when a file is missing
        if not path.is_file():
            raise MissingError(f"{path}: no such file")
    invalid = 0
    for path in files:
        problems = check(path)
        found = [(tool, problem) for tool, items in problems.items() for problem in items]
        # one line each, never wrapped: a line per problem is the contract
        for tool, problem in found:
            one_line = " ".join(problem.split())
            click.echo(f"{path}: {one_line} [{tool}]")
        if found:
            invalid += 1
            click.echo(f"{path}: NOT valid, {len(found)} problem(s)")
        else:
            click.echo(f"{path}: valid ({', '.join(problems)})")
    if invalid:
        sys.exit(1)
