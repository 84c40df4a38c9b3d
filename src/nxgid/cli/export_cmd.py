"""``nxgid export``: a result as a text table (csv, dat, txt)."""

from __future__ import annotations

from pathlib import Path

import click

from nxgid.cli.common import console


@click.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--entry", help="Entry or result name [default: the file's default].")
@click.option("--frame", type=int, default=None,
              help="Frame to export (negative counts from the end) [default: every frame "
                   "of a profile as its own columns; the mean of a map's frames].")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Table file: .csv (Excel), .dat or .txt (tab-separated, # comments).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def export(file: Path, entry: str | None, frame: int | None, output: Path,
           overwrite: bool) -> None:
    """Write a profile or a map of FILE as a text table with axis columns and units, for
    Origin, Excel and scripts.

    A profile is one row per bin (axis, intensity, error); a map one row per bin with x
    running fastest (x, y, intensity, error). Empty bins are empty cells in .csv and
    nan in .dat/.txt.

    \b
    Examples:
        nxgid export scan7.nxs --entry rad_cut_gid -o profiles.csv
        nxgid export scan7.nxs --entry img_gid_q --frame 0 -o map.dat
    """
    from nxgid.experiment.boundary import guard_outputs
    from nxgid.nexus.export import SPREADSHEET_ROWS, write_table
    from nxgid.nexus.reader import NexusFile
    from nxgid.safety.resources import check_output_file

    guard_outputs([output], [file])
    check_output_file(output, "table")
    stored = NexusFile(file).result(entry)
    if frame is None:
        frames = list(range(stored.frames))
        result = stored.read()
    else:
        index = frame % stored.frames if -stored.frames <= frame < stored.frames else frame
        result = stored.read(index)
        frames = [index]
    done = write_table(result, output, source=f"{file}:/{stored.entry}", frames=frames,
                       overwrite=overwrite)
    console().print(f"{done.path}: {stored.name} from /{stored.entry}, {done.rows} rows "
                    f"× {len(done.columns)} columns ({', '.join(done.columns[:4])}"
                    + (", …" if len(done.columns) > 4 else "") + ")")
    if output.suffix.lower() == ".csv" and done.rows + 1 > SPREADSHEET_ROWS:
        console().print(f"note: {done.rows + 1} lines is more than a spreadsheet opens "
                        f"({SPREADSHEET_ROWS}); Origin and scripts read it whole, or export "
                        "a map with fewer bins (nxgid convert --bins)")
