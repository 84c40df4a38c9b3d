"""Results as text tables (``nxgid export``): for Origin, Excel, gnuplot and scripts.

- A profile is one row per bin: the axis, then the intensity (and its error) of each
  frame exported.
- A map is one row per bin, x fastest (Origin's "XYZ" layout): x, y, intensity, error.
  Several frames of a map are exported as their mean (errors combined as for a mean);
  ``--frame`` picks one.

``.csv`` is comma-separated with one header row of column names with their units (what
Excel reads), empty cells where a bin is empty. ``.dat`` and ``.txt`` are tab-separated
with ``#`` comment lines (source, frames, intensity meaning) whose last line names the
columns, and ``nan`` for empty bins (what ``numpy.loadtxt``, gnuplot and Origin read).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nxgid.conversion.result import Result
from nxgid.errors import NxgidError
from nxgid.names import intensity_label

FORMATS = (".csv", ".dat", ".txt")
#: Rows a spreadsheet opens (Excel, LibreOffice): a longer .csv is said to be so.
SPREADSHEET_ROWS = 1_048_576
_ROWS_PER_WRITE = 65_536


@dataclass
class Exported:
    path: Path
    rows: int
    columns: list[str]


def _axis_column(axis) -> str:
    return f"{axis.name} ({axis.unit if axis.is_q else 'deg'})"


def _mean(result: Result) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean over frames of intensity (NaN where no frame has a value) and its error."""
    from nxgid.plot.results import frame_mean

    errors = None
    if result.errors is not None:
        finite = np.isfinite(result.intensity)
        count = finite.sum(axis=0)
        variance = np.where(finite, result.errors.astype(np.float64) ** 2, 0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            errors = np.where(count > 0, np.sqrt(variance) / count, np.nan)
    return frame_mean(result.intensity), errors


def table(result: Result, frames: list[int]) -> tuple[list[str], np.ndarray]:
    """Column names and the table (rows × columns, float64) of *result*, whose frames
    are numbered *frames* in the file."""
    if result.frames == 0:
        raise NxgidError(f"{result.name}: no frames to export")
    if not result.is_map:
        x = result.x_axis.centres
        names, columns = [_axis_column(result.x_axis)], [x]
        tag = len(frames) > 1
        for i, frame in enumerate(frames):
            names.append(f"intensity{f' frame {frame}' if tag else ''}")
            columns.append(result.intensity[i])
        if result.errors is not None:
            for i, frame in enumerate(frames):
                names.append(f"error{f' frame {frame}' if tag else ''}")
                columns.append(result.errors[i])
        return names, np.column_stack(columns).astype(np.float64)
    if result.frames == 1:
        intensity = result.intensity[0]
        errors = None if result.errors is None else result.errors[0]
    else:
        intensity, errors = _mean(result)
    y_values, x_values = result.y_axis.centres, result.x_axis.centres
    xx, yy = np.meshgrid(x_values, y_values)  # rows: y; x runs fastest
    names = [_axis_column(result.x_axis), _axis_column(result.y_axis), "intensity"]
    columns = [xx.ravel(), yy.ravel(), np.asarray(intensity, np.float64).ravel()]
    if errors is not None:
        names.append("error")
        columns.append(np.asarray(errors, np.float64).ravel())
    return names, np.column_stack(columns)


def write_table(result: Result, output: Path, *, source: str, frames: list[int],
                overwrite: bool = False) -> Exported:
    """Write *result* as a text table to *output* (.csv, .dat or .txt), atomically;
    an existing file is replaced only with *overwrite*."""
    from nxgid.errors import ExistsError
    from nxgid.safety.partials import partial_path

    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise NxgidError(f"{output}: expected a .csv, .dat or .txt file name")
    if output.exists() and not overwrite:
        raise ExistsError(f"{output} exists: use --overwrite to replace it")
    names, values = table(result, frames)
    which = (f"frame {frames[0]}" if len(frames) == 1 else
             f"mean of frames {frames[0]}–{frames[-1]}" if result.is_map else
             f"frames {frames[0]}–{frames[-1]}")
    partial = partial_path(output)
    try:
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            if suffix == ".csv":
                handle.write(",".join(f'"{n}"' for n in names) + "\n")
            else:
                handle.write(f"# nxgid export of {source}: {result.name}, {which}\n"
                             f"# intensity: {intensity_label(result.process)}\n"
                             "# empty bins: nan\n"
                             "# " + "\t".join(names) + "\n")
            delimiter = "," if suffix == ".csv" else "\t"
            for start in range(0, len(values), _ROWS_PER_WRITE):
                chunk = io.StringIO()
                np.savetxt(chunk, values[start:start + _ROWS_PER_WRITE], fmt="%.10g",
                           delimiter=delimiter)
                text = chunk.getvalue()
                # %g never spells a number with "nan": the empty cells of a spreadsheet
                handle.write(text.replace("nan", "") if suffix == ".csv" else text)
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Exported(output, len(values), names)
