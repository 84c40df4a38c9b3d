"""The functional core of ``nxgid calibrate`` and ``nxgid mask``: read the configuration,
call :mod:`nxgid.experiment.calibration` or :mod:`nxgid.experiment.masks`, store the
result atomically, draw the pictures; return the lines the command prints."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nxgid.errors import ExistsError, NxgidError
from nxgid.units import pixel_xy_text


def _calibrated(path: Path) -> bool:
    import h5py

    from nxgid.experiment.calibration import calibration_group

    with h5py.File(path, "r") as root:
        return calibration_group(root["entry"]) is not None


def calibration_image(path: Path) -> np.ndarray | None:
    """The powder image stored with the configuration's calibration, if any."""
    import h5py

    from nxgid.experiment.calibration import calibration_group

    with h5py.File(path, "r") as root:
        group = calibration_group(root["entry"])
        item = None if group is None else group.get("image")
        return None if item is None else item[()]


def _described(geometry) -> str:
    """``Pilatus1M (1043×981 pixels)``."""
    detector = geometry.detector
    label = getattr(detector, "name", None) or type(detector).__name__
    rows, cols = geometry.shape
    return f"{label} ({rows}×{cols} pixels)"


def run_calibration(experiment, path: Path, *, image: Path | None = None,
                    calibrant: str | None = None, guess_poni: Path | None = None,
                    distance_mm: float | None = None, beam_center: str | None = None,
                    refine_wavelength: bool = False, import_poni: Path | None = None,
                    export_poni: Path | None = None, overwrite: bool = False) -> list[str]:
    from nxgid.experiment import calibration as cal
    from nxgid.experiment import calibration_pictures as pictures
    from nxgid.experiment.boundary import guard_outputs
    from nxgid.experiment.configuration import (
        configuration_geometry,
        configuration_mask,
        set_geometry,
    )
    from nxgid.geometry import DetectorGeometry

    name = path.stem
    guard_outputs([export_poni], [image, guess_poni, import_poni, path],
                  experiment=experiment)
    if image is None and import_poni is None and export_poni is None:
        raise NxgidError("calibrate: give --image FILE --calibrant NAME, --import-poni FILE "
                         "or --export-poni FILE")
    if image is not None and import_poni is not None:
        raise NxgidError("calibrate: give --image or --import-poni, not both")
    current = configuration_geometry(path)
    lines: list[str] = []
    if (image is not None or import_poni is not None) and _calibrated(path) \
            and not overwrite:
        raise ExistsError(f"configuration {name} is already calibrated: use --overwrite to "
                          "calibrate it again")
    if export_poni is not None and Path(export_poni).exists() and not overwrite:
        raise ExistsError(f"{export_poni} exists: use --overwrite to replace it")
    geometry = current
    if import_poni is not None:
        result = cal.import_poni(import_poni)
        if result.geometry.shape != current.shape:
            raise NxgidError(
                f"{import_poni}: detector {_described(result.geometry)}; configuration "
                f"{name} has {_described(current)}")
        set_geometry(path, result.geometry, calibration=result, image=None)
        geometry = result.geometry
        lines.append(f"configuration {name}: calibration imported from {import_poni}")
    elif image is not None:
        from nxgid.images.series import read_image

        if not calibrant:
            raise NxgidError("calibrate --image needs --calibrant NAME (e.g. LaB6) or a "
                             "d-spacing file")
        powder = read_image(image)
        if powder.shape != current.shape:
            raise NxgidError(f"{image}: image of shape {powder.shape}; the detector has "
                             f"{current.shape}")
        guess = DetectorGeometry.from_poni(guess_poni) if guess_poni else current
        if distance_mm is not None or beam_center is not None:
            poni = guess.poni_m
            if beam_center is not None:
                from nxgid.units import parse_pixel_xy

                row, col = parse_pixel_xy(beam_center, "--beam-center")
                poni = (row * guess.pixel_size_m[0], col * guess.pixel_size_m[1])
            guess = DetectorGeometry.from_parameters(
                detector=guess.detector, wavelength_A=guess.wavelength_A,
                distance_m=(distance_mm / 1000 if distance_mm is not None
                            else guess.distance_m),
                poni1_m=poni[0], poni2_m=poni[1])
        user_mask = (configuration_mask(path) & 0xFFFF) != 0
        try:
            result = cal.calibrate_powder(powder, guess, calibrant, mask=user_mask,
                                          refine_wavelength=refine_wavelength)
        except cal.CalibrationFailed as failure:
            picture = pictures.write_failure_picture(
                failure, powder, experiment.calibrations_dir / f"{name}_failed.png")
            raise NxgidError(f"{failure}; what was found: {picture}; "
                             f"{pictures.failure_hint(failure)}") from None
        set_geometry(path, result.geometry, calibration=result, image=powder)
        geometry = result.geometry
        drawn = pictures.write_calibration_pictures(result, powder, experiment.calibrations_dir,
                                                  name, mask=user_mask)
        poni1, poni2 = geometry.poni_m
        lines += [
            f"configuration {name}: calibrated with {result.calibrant} from {image}",
            f"  distance {geometry.distance_m * 1e3:.3f} mm, PONI ({poni1 * 1e3:.3f}, "
            f"{poni2 * 1e3:.3f}) mm, rotations "
            + ", ".join(f"{r:.5f}" for r in geometry.rotations_rad) + " rad"
            + (f", wavelength {geometry.wavelength_A:.5f} Å" if refine_wavelength else ""),
            f"  beam centre {pixel_xy_text(*_beam_centre_px(geometry))}",
            f"  RMS residual {result.rms_2theta_deg:.4f}° in 2θ from {result.points_used} "
            f"points on {result.rings_used} rings",
            "  pictures: " + ", ".join(str(p) for p in drawn),
        ]
    if export_poni is not None:
        cal.export_poni(geometry, export_poni, overwrite=overwrite)
        lines.append(f"wrote {export_poni}")
    return lines


def _beam_centre_px(geometry) -> tuple[float, float]:
    """(row, column) of the direct beam on the detector, in pixels (fit2d's centre)."""
    fit2d = geometry.pyfai.getFit2D()
    return float(fit2d["centerY"]), float(fit2d["centerX"])


def run_mask(experiment, path: Path, *, rects=(), circles=(), polygons=(), imports=(),
             below: float | None = None, replace: bool = False, clear: bool = False
             ) -> list[str]:
    from nxgid.experiment import masks
    from nxgid.experiment.configuration import (
        configuration_geometry,
        configuration_mask,
        set_mask,
    )

    geometry = configuration_geometry(path)
    shapes = [*(masks.parse_rect(t) for t in rects), *(masks.parse_circle(t) for t in circles),
              *(masks.parse_polygon(t) for t in polygons)]
    imported = [masks.import_mask(p, geometry.shape) for p in imports]
    image = calibration_image(path)
    if not (shapes or imported or below is not None or replace or clear):
        bits = configuration_mask(path)
    else:
        bits = masks.edit_mask(configuration_mask(path), gaps=geometry.detector_mask,
                               shapes=shapes, imported=imported, below=below, image=image,
                               replace=replace, clear=clear)
        set_mask(path, bits)
    preview = masks.write_mask_preview(
        bits, image, experiment.calibrations_dir / f"{path.stem}_mask.png",
        title=f"configuration {path.stem}")
    summary = masks.mask_summary(bits)
    return [f"configuration {path.stem}: {summary['masked']} masked pixels "
            f"({summary['percent']:.2f} %): {summary['gaps']} in gaps, {summary['user']} "
            "masked by the user",
            f"  preview: {preview}"]
