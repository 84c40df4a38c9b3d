"""Example inputs for a newcomer (``nxgid examples DIR``): every file the README's Quick
start and ``docs/walkthrough.md`` use, synthetic but physically right, so that each of
their blocks runs as written in a fresh folder.

The detector sees a LaB6 powder and a pentacene film at one true geometry
(:data:`TRUE_DISTANCE_MM`, :data:`TRUE_BEAM_CENTRE_PX`, the settings' default
wavelength), a few mm and pixels from the start values the docs give, as at a beamline.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from nxgid.errors import NxgidError

#: The experiment the raw tree belongs to: ``raw/<experiment>/`` is what ``nxgid import``
#: reads with ``[instrument] raw_home`` set to ``DIR/raw``.
EXPERIMENT = "2026-11-ID10-pentacene"
SAMPLE = "pentacene-SiO2"
DETECTOR = "Pilatus2M"
TRUE_DISTANCE_MM = 283.0
#: (row, column) in pixels; ``--beam-center X,Y`` takes them as x = column, y = row.
TRUE_BEAM_CENTRE_PX = (60.0, 760.0)
INCIDENCE_DEG = 0.15
FRAMES = 4
#: Hand-stacked series (``images/<scan>/frame_NNNNN.cbf``).
IMAGE_SCANS = ("s001", "s002")
#: SPEC scans of the raw tree: number → (command, temperature in K); nxgid names them
#: sNNN, so they do not collide with the hand-stacked ones.
SPEC_SCANS = {3: ("loopscan 4 1", 295.0), 4: ("loopscan 4 1", 340.0)}
#: Pixels set in ``hot_pixels.tif`` (row, column).
HOT_PIXELS = ((400, 300), (401, 300), (1200, 1400), (900, 100))

README = """\
Example inputs written by `nxgid examples` (synthetic, physically right):

  lab6.cbf         LaB6 powder image, {detector}, distance {distance} mm, beam centre
                   row {row:g} column {col:g} (pixels), wavelength {wavelength} A
  lab6.poni        the true geometry of lab6.cbf, as pyFAI writes it
  lab6.D           LaB6 d-spacings in Angstrom, one per line (a calibrant file)
  hot_pixels.tif   a mask image: non-zero pixels are masked
  sample.yaml      sample metadata (NXsample), with every key explained
  experiment.yaml  experiment metadata (proposal, users)
  images/s001/, images/s002/
                   {frames} CBF frames each of a pentacene film at {incidence} deg incidence
  raw/{experiment}/{sample}.spec and {sample}_003/, {sample}_004/
                   what a SPEC beamline writes: scans 3 and 4 with monitor (mon) and
                   temperature (temp) columns, their CBF frames in one folder per scan

Set [instrument] raw_home to the raw/ folder here for `nxgid import` and `nxgid watch`.
"""


@dataclass
class ExampleInputs:
    folder: Path
    files: list[Path]


def write_example_inputs(folder: Path, *, overwrite: bool = False,
                         wavelength_A: float | None = None,
                         experiment: str = EXPERIMENT) -> ExampleInputs:
    """Write the example inputs into *folder* (created; refused if it holds files,
    unless *overwrite*: then only the files named here are replaced)."""
    from nxgid.names import check_name

    check_name(experiment, "experiment")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NxgidError(f"{folder}: exists and is not a folder: expected a folder for the "
                         "example inputs")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise NxgidError(f"{folder}: is not empty: choose a new folder, or --overwrite to "
                         "write the example files over the ones there")
    from nxgid.safety.resources import check_writable_folder

    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    check_writable_folder(existing, f"cannot write the example inputs in {folder}")
    fresh = not folder.exists()
    final, folder = folder, (folder.with_name(f".{folder.name}.partial") if fresh else folder)
    try:
        if fresh:  # built aside and renamed when complete: never a half-written folder
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        try:
            files = _write_all(folder, wavelength_A, experiment)
        except BaseException:
            if fresh:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        if fresh:
            folder.rename(final)
    except OSError as exc:  # a file system that takes no files (/proc, a full disk, …)
        raise NxgidError(f"{final}: cannot write the example inputs there: "
                         f"{exc.strerror or exc}") from None
    if fresh:
        files = [final / path.relative_to(folder) for path in files]
    return ExampleInputs(folder=final, files=files)


def _write_all(folder: Path, wavelength_A: float | None, experiment: str) -> list[Path]:
    from nxgid.geometry import DetectorGeometry
    from nxgid.settings.model import ConfigurationSettings

    wavelength = wavelength_A or ConfigurationSettings().wavelength_A
    truth = DetectorGeometry.from_parameters(
        detector=DETECTOR, distance_m=TRUE_DISTANCE_MM / 1000, wavelength_A=wavelength,
        beam_center_px=TRUE_BEAM_CENTRE_PX, rot1_rad=0.002, rot2_rad=-0.004)
    files = [*_calibration_files(folder, truth), *_metadata_files(folder)]
    files += _image_series(folder, truth)
    files += _spec_tree(folder / "raw" / experiment, truth)
    readme = folder / "README.txt"
    readme.write_text(README.format(
        detector=DETECTOR, distance=TRUE_DISTANCE_MM, row=TRUE_BEAM_CENTRE_PX[0],
        col=TRUE_BEAM_CENTRE_PX[1], wavelength=wavelength, frames=FRAMES,
        incidence=INCIDENCE_DEG, experiment=experiment, sample=SAMPLE))
    return [readme, *files]


def _calibration_files(folder: Path, truth) -> list[Path]:
    import fabio
    from pyFAI.calibrant import get_calibrant

    from nxgid.experiment.calibration import poni_text, synthetic_calibrant_image

    image = folder / "lab6.cbf"
    fabio.cbfimage.CbfImage(data=synthetic_calibrant_image(truth, "LaB6")).write(str(image))
    poni = folder / "lab6.poni"
    poni.write_text(poni_text(truth, "LaB6"))
    spacings = folder / "lab6.D"
    d_spacings = get_calibrant("LaB6").get_dSpacing()
    spacings.write_text("# LaB6 d-spacings in Angstrom (pyFAI's LaB6 calibrant)\n"
                        + "".join(f"{d:.6f}\n" for d in d_spacings))
    return [image, poni, spacings]


def _metadata_files(folder: Path) -> list[Path]:
    from PIL import Image

    mask = np.zeros((1679, 1475), np.uint8)  # Pilatus 2M: rows, columns
    for row, col in HOT_PIXELS:
        mask[row, col] = 1
    hot = folder / "hot_pixels.tif"
    Image.fromarray(mask).save(hot)
    written = [hot]
    for name in ("sample.yaml", "experiment.yaml"):
        target = folder / name
        with resources.as_file(resources.files("nxgid.demo") / "data" / name) as source:
            shutil.copyfile(source, target)
        written.append(target)
    return written


def _film(truth, seed: int) -> np.ndarray:
    from nxgid.demo.setup import frames_for

    return frames_for(truth, (INCIDENCE_DEG,), seed=seed, polarization=0.99)


def _image_series(folder: Path, truth) -> list[Path]:
    from nxgid.demo.setup import write_cbf_series

    written = []
    for index, scan in enumerate(IMAGE_SCANS):
        written += write_cbf_series(folder / "images" / scan, "frame",
                                    _film(truth, seed=100 + index))
    return written


def _spec_tree(raw: Path, truth) -> list[Path]:
    """``<sample>.spec`` and ``<sample>_NNN/`` folders: the [beamline] defaults
    (spec_file ``{sample}.spec``, image_folder ``{sample}_{scan:03d}``, monitor ``mon``,
    temperature ``temp``), so importing needs no [beamline] setting."""
    from nxgid.demo.setup import write_cbf_series

    raw.mkdir(parents=True, exist_ok=True)
    lines = [f"#F {SAMPLE}.spec", "#E 1795424400", "#D Mon Nov 23 09:00:00 2026",
             "#O0 phi  chi  th  ai", ""]
    rng = np.random.default_rng(3)
    written = []
    for number, (command, temperature) in SPEC_SCANS.items():
        frames = _film(truth, seed=200 + number)
        written += write_cbf_series(raw / f"{SAMPLE}_{number:03d}", "frame", frames)
        lines += [f"#S {number}  {command}", f"#D Mon Nov 23 09:{10 * number:02d}:00 2026",
                  "#T 1  (Seconds)", f"#P0 0.0 0.0 0.0 {INCIDENCE_DEG}", "#N 4",
                  "#L Epoch  Seconds  mon  temp"]
        for point in range(len(frames)):
            lines.append(f"{point + 1} 1 {int(rng.normal(1.0e5, 500))} "
                         f"{temperature + 0.1 * point:.2f}")
        lines.append("")
    spec = raw / f"{SAMPLE}.spec"
    spec.write_text("\n".join(lines))
    return [spec, *written]
