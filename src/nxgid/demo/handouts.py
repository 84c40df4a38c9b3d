"""The demo's last step: what a user takes away from a reduced scan, and the inputs to
try everything by hand — a raw frame drawn with its mask (``nxgid plot --mask``), a
profile as a text table (``nxgid export``), and the example inputs of the README's Quick
start (``nxgid examples``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nxgid.experiment.layout import Experiment, ScanRef


@dataclass
class Handouts:
    raw_frame: Path
    table: Path
    table_rows: int
    inputs: Path
    lines: list[str] = field(default_factory=list)


def write_handouts(directory: Path, experiment: Experiment, ref: ScanRef,
                   entry: str) -> Handouts:
    from nxgid.demo.inputs import write_example_inputs
    from nxgid.nexus.detector_frames import load_frame
    from nxgid.nexus.export import write_table
    from nxgid.nexus.reader import NexusFile
    from nxgid.plot.frames import draw_detector_image

    previews = directory / "previews"
    view = load_frame(experiment.scan_file(ref), entry=entry, frame=0, mask="file")
    raw_frame = draw_detector_image(view.image, view.bits, previews / "raw-frame-mask.png",
                                    title=view.label)
    reduced = experiment.reduced_file(ref, entry)
    (directory / "exports").mkdir(exist_ok=True)
    stored = NexusFile(reduced).result("rad_cut_gid")
    table = write_table(stored.read(), directory / "exports" / f"{ref.scan}_rad_cut_gid.csv",
                        source=f"{reduced}:/{stored.entry}",
                        frames=list(range(stored.frames)))
    inputs = write_example_inputs(directory / "inputs").folder
    return Handouts(raw_frame, table.path, table.rows, inputs, lines=[
        f"raw frame 0 of {ref} {entry} with its mask (`nxgid plot --mask`): {raw_frame}",
        f"rad_cut_gid of {ref} {entry} as a table (`nxgid export`): {table.path} "
        f"({table.rows} rows: {', '.join(table.columns[:3])}, …)",
        f"example inputs of the README's Quick start (`nxgid examples`): {inputs}/"])
