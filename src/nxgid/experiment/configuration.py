"""Experiment configurations: ``configurations/NAME.nxs``, the template every scan is
made from.

A configuration holds the instrument (source, monochromator, the detector from pyFAI's
database with its gap mask as an NXdetector ``pixel_mask``, distance, beam centre or
calibrated PONI) in ``/entry`` and one entry ``f1…fN`` per detector position, rotation
or incidence scan, each with its own goniometer angles, detector translation, frame rate
and an NXdata whose ``data`` is an empty placeholder for the frames (a scan links it to
its raw stack ``fN.h5:/entry/data/data``, :mod:`nxgid.experiment.links`). The
calibration is ``/entry/calibration`` (an NXprocess).

Defaults come from the settings' ``[configuration]`` section; every value can be given
per configuration, and the per-position values per entry. Files are written to a
temporary name and renamed into place; an existing configuration is replaced only when
asked to.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nxgid.errors import ExistsError, MissingError, NxgidError
from nxgid.nexus.h5 import nx_field, nx_group, opened
from nxgid.units import wavelength_A_to_energy_keV

#: Per-position (entry) values and their NeXus names and units.
POSITION_FIELDS: dict[str, tuple[str, str]] = {
    "phi_start_deg": ("phi_start", "degree"),
    "phi_end_deg": ("phi_stop", "degree"),  # "_end" is a reserved NeXus suffix
    "phi_step_deg": ("phi_step", "degree"),
    "chi_deg": ("chi", "degree"),
    "omega_deg": ("omega", "degree"),
    "theta_deg": ("theta", "degree"),
    "incidence_angle_deg": ("angle_of_incidence", "degree"),
    "detector_x_mm": ("translation_x", "mm"),
    "detector_y_mm": ("translation_y", "mm"),
    "frame_rate_hz": ("frame_rate", "Hz"),
}


#: The NXcollection of an NXdetector holding pyFAI's PONI parameters.
PYFAI = "pyfai"


class Position(BaseModel):
    """One detector position / rotation or incidence scan: an entry ``fN``."""

    model_config = ConfigDict(extra="forbid")

    phi_start_deg: float = -5.0
    phi_end_deg: float = 360.0
    phi_step_deg: float = 0.1
    chi_deg: float = 0.0
    omega_deg: float = 0.0
    theta_deg: float = 0.0
    incidence_angle_deg: float = Field(0.2, ge=0.0, lt=90.0)
    detector_x_mm: float = 0.0
    detector_y_mm: float = 0.0
    frame_rate_hz: float = Field(10.0, gt=0, le=1e6)

    @model_validator(mode="after")
    def _phi(self) -> Position:
        if self.phi_step_deg == 0:
            raise ValueError("phi step 0: expected a non-zero step in degrees")
        span = self.phi_end_deg - self.phi_start_deg
        if span != 0 and (span > 0) != (self.phi_step_deg > 0):
            raise ValueError(f"phi step {self.phi_step_deg}° goes the wrong way from "
                             f"{self.phi_start_deg}° to {self.phi_end_deg}°")
        return self


class ConfigurationSpec(BaseModel):
    """Everything a new configuration is made from."""

    model_config = ConfigDict(extra="forbid")

    name: str
    wavelength_A: float = Field(gt=0.01, le=20.0)
    distance_mm: float = Field(gt=0, le=100_000)
    detector: str
    #: (row, column) of the point of normal incidence in pixels; None: the centre.
    beam_center_px: tuple[float, float] | None = None
    source_name: str = ""
    source_type: str = "Synchrotron X-ray Source"
    source_probe: str = "x-ray"
    instrument_name: str = ""
    positions: list[Position] = Field(min_length=1)


def spec_from_settings(name: str, settings, *, values: Mapping[str, object] | None = None,
                       positions: int = 1,
                       per_position: Mapping[str, Sequence[object] | Mapping[int, object]]
                       | None = None) -> ConfigurationSpec:
    """A spec from the settings' ``[configuration]`` and ``[instrument]`` defaults,
    overridden by *values* (global) and *per_position* (a list with one value per
    position, one value for all, or {position number (1-based): value})."""
    from nxgid.names import check_name

    check_name(name, "configuration")
    cfg, inst = settings.configuration, settings.instrument
    base = {"name": name, "wavelength_A": cfg.wavelength_A, "distance_mm": cfg.distance_mm,
            "detector": cfg.detector, "source_name": inst.source,
            "source_type": inst.source_type, "instrument_name": inst.instrument}
    base.update(values or {})
    position_defaults = {key: getattr(cfg, key) for key in POSITION_FIELDS}
    given = dict(per_position or {})
    counts = [len(v) for v in given.values() if isinstance(v, (list, tuple)) and len(v) > 1]
    count = max([positions, *counts])
    rows = []
    for index in range(1, count + 1):
        row = dict(position_defaults)
        for key, value in given.items():
            if key not in POSITION_FIELDS:
                raise NxgidError(f"configuration: no per-position value {key!r}; expected "
                                 + ", ".join(POSITION_FIELDS))
            if isinstance(value, Mapping):
                bad = [k for k in value if not 1 <= int(k) <= count]
                if bad:
                    raise NxgidError(f"{key}: position {bad[0]} does not exist; the "
                                     f"configuration has {count} position(s)")
                if index in value:
                    row[key] = value[index]
            elif isinstance(value, (list, tuple)):
                if len(value) not in (1, count):
                    raise NxgidError(f"{key}: {len(value)} values for {count} positions; "
                                     "expected one, or one per position")
                row[key] = value[0] if len(value) == 1 else value[index - 1]
            else:
                row[key] = value
        rows.append(row)
    base["positions"] = rows
    try:
        spec = ConfigurationSpec.model_validate(base)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = list(error["loc"])
        where = ""
        if loc[:1] == ["positions"] and len(loc) > 1:
            where = f"position {int(loc[1]) + 1} (f{int(loc[1]) + 1})"
            loc = loc[2:]
        where = " ".join(filter(None, [where, ".".join(str(p) for p in loc)]))
        message = error["msg"].removeprefix("Value error, ")
        got = "" if isinstance(error.get("input"), dict) else f" (got {error.get('input')!r})"
        raise NxgidError(f"configuration {name}: {where}: {message}{got}") from None
    from nxgid.geometry.detectors import check_detector_name

    check_detector_name(spec.detector)
    return spec


def _entry_name(index: int) -> str:
    from nxgid.experiment.layout import entry_name

    return entry_name(index)


@contextmanager
def rewrite(path: Path, *, new: bool = False) -> Iterator:
    """Open a copy of *path* (or a new file) for writing; on success it replaces *path*
    atomically, on error it is discarded and *path* is left as it was."""
    import h5py

    from nxgid.safety.partials import clear_stale, partial_path

    clear_stale(path)
    partial = partial_path(path)
    if not new:
        shutil.copy2(path, partial)
    try:
        with h5py.File(partial, "w" if new else "r+") as handle:
            yield handle
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)






def write_detector(detector, geometry, pixel_mask: np.ndarray | None) -> None:
    """The NXdetector fields of a geometry (lengths in m, angles in degree and rad)."""
    pixel_rows_m, pixel_cols_m = geometry.pixel_size_m
    nx_field(detector, "description", str(geometry.detector.name))
    nx_field(detector, "distance", geometry.distance_m, "m")
    nx_field(detector, "x_pixel_size", pixel_cols_m, "m")
    nx_field(detector, "y_pixel_size", pixel_rows_m, "m")
    fit2d = geometry.pyfai.getFit2D()
    nx_field(detector, "beam_center_x", float(fit2d["centerX"]) * pixel_cols_m, "m")
    nx_field(detector, "beam_center_y", float(fit2d["centerY"]) * pixel_rows_m, "m")
    # the PONI itself: not NXdetector fields, so in a collection validators leave alone
    pyfai = nx_group(detector, PYFAI, "NXcollection")
    poni1, poni2 = geometry.poni_m
    nx_field(pyfai, "poni1", poni1, "m")
    nx_field(pyfai, "poni2", poni2, "m")
    for index, value in enumerate(geometry.rotations_rad, start=1):
        nx_field(pyfai, f"rot{index}", value, "rad")
    nx_field(pyfai, "orientation", int(getattr(geometry.detector, "orientation", 0) or 0))
    if pixel_mask is not None:
        if "pixel_mask" in detector:
            del detector["pixel_mask"]
        detector.create_dataset("pixel_mask", data=np.asarray(pixel_mask, np.int32),
                                compression="gzip", compression_opts=4, shuffle=True)


def nominal_geometry(spec: ConfigurationSpec):
    """The detector geometry before calibration: perpendicular, at the nominal distance
    and beam centre."""
    import pyFAI

    from nxgid.geometry import DetectorGeometry

    detector = pyFAI.detector_factory(spec.detector)
    centre = spec.beam_center_px or (detector.shape[0] / 2, detector.shape[1] / 2)
    return DetectorGeometry.from_parameters(detector=spec.detector,
                                            distance_m=spec.distance_mm / 1000,
                                            wavelength_A=spec.wavelength_A,
                                            beam_center_px=centre)


def write_configuration(path: Path, spec: ConfigurationSpec, *, overwrite: bool = False
                        ) -> Path:
    """Create ``configurations/NAME.nxs`` from *spec*."""

    from nxgid.nexus.writer import pixel_mask_bits

    if path.exists() and not overwrite:
        raise ExistsError(f"configuration {spec.name} exists ({path}): use --overwrite "
                          "to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    geometry = nominal_geometry(spec)
    mask = pixel_mask_bits(geometry.detector_mask, None, geometry.shape)
    with rewrite(path, new=True) as root:
        root.attrs["NX_class"] = "NXroot"
        root.attrs["default"] = "f1"
        entry = nx_group(root, "entry", "NXentry")
        nx_field(entry, "title", f"configuration {spec.name}")
        nx_field(entry, "configuration", spec.name)
        instrument = nx_group(entry, "instrument", "NXinstrument")
        nx_field(instrument, "name", spec.instrument_name or "unknown")
        source = nx_group(instrument, "source", "NXsource")
        nx_field(source, "type", spec.source_type)
        if spec.source_name:
            nx_field(source, "name", spec.source_name)
        nx_field(source, "probe", spec.source_probe)
        mono = nx_group(instrument, "monochromator", "NXmonochromator")
        nx_field(mono, "wavelength", spec.wavelength_A, "angstrom")
        nx_field(mono, "energy", wavelength_A_to_energy_keV(spec.wavelength_A), "keV")
        detector = nx_group(instrument, "detector", "NXdetector")
        write_detector(detector, geometry, mask)
        for index, position in enumerate(spec.positions, start=1):
            _write_position(root, _entry_name(index), position, geometry)
        sync_positions(root)
    return path


def position_entries(root) -> list[str]:
    """The position entries ``f1…fN`` of a configuration or scan file, in order."""
    from nxgid.experiment.layout import ENTRY_PATTERN

    names = [n for n in root if ENTRY_PATTERN.fullmatch(n)]
    return sorted(names, key=lambda n: int(n[1:]))


def sync_positions(root) -> None:
    """Give every position entry the instrument of ``/entry`` (source, monochromator,
    detector geometry), so each ``fN`` is a complete NXsas entry; per-position values
    (translations, frame rate) and the detector data (placeholder or link to the raw
    stack, :mod:`nxgid.experiment.links`) are kept. The pixel mask stays in ``/entry``
    only: pynxtools rejects ``pixel_mask`` in an NXsas entry (reserved suffix)."""
    import h5py

    from nxgid.experiment.links import write_placeholder

    master = root["entry/instrument"]
    for name in position_entries(root):
        instrument = root[name]["instrument"]
        for group in ("source", "monochromator"):
            if group in instrument:
                del instrument[group]
            root.copy(master[group], instrument, name=group)
        nx_field(instrument, "name", master["name"][()])
        detector = instrument["detector"]
        if "pixel_mask" in detector:  # hard-linked there before nxgid 0.2
            del detector["pixel_mask"]
        for field, item in master["detector"].items():
            if field == "pixel_mask":
                continue
            if isinstance(item, h5py.Dataset):
                nx_field(detector, field, item[()], item.attrs.get("units"))
            elif field == PYFAI:
                if field in detector:
                    del detector[field]
                root.copy(item, detector, name=field)
        if "data" not in detector or "data" not in root[name].get("data", {}):
            write_placeholder(root[name], frame_shape(root))


def frame_shape(root) -> tuple[int, int]:
    """(rows, columns) of the detector of a configuration or scan file."""
    detector = root["entry/instrument/detector"]
    if "pixel_mask" in detector:
        return tuple(int(n) for n in detector["pixel_mask"].shape)  # type: ignore[return-value]
    import pyFAI

    name = detector["description"][()]
    shape = pyFAI.detector_factory(name.decode() if isinstance(name, bytes) else name).shape
    return int(shape[0]), int(shape[1])


def _write_position(root, name: str, position: Position, geometry) -> None:
    from nxgid.experiment.links import write_placeholder

    entry = nx_group(root, name, "NXentry")
    entry.attrs["default"] = "data"
    nx_field(entry, "definition", "NXsas")
    instrument = nx_group(entry, "instrument", "NXinstrument")
    # every per-position value, in a collection (NXsas has no names for them)
    goniometer = nx_group(instrument, "goniometer", "NXcollection")
    for key, (field, units) in POSITION_FIELDS.items():
        nx_field(goniometer, field, getattr(position, key), units)
    detector = nx_group(instrument, "detector", "NXdetector")
    nx_field(detector, "frame_time", 1.0 / position.frame_rate_hz, "s")
    write_placeholder(entry, geometry.shape)


def configurations(directory: Path) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.nxs") if not p.name.startswith("."))


def read_configuration(path: Path) -> dict:
    """A summary of a configuration: instrument values, positions, calibration, mask."""
    if not path.is_file():
        raise MissingError(f"configuration {path.stem} does not exist ({path})")
    with opened(path, what="configuration") as root:
        entry = root["entry"]
        det = entry["instrument/detector"]
        info = {
            "name": path.stem,
            "wavelength_A": float(entry["instrument/monochromator/wavelength"][()]),
            "detector": det["description"][()].decode(),
            "distance_mm": float(det["distance"][()]) * 1e3,
            "beam_center_mm": (float(det["beam_center_x"][()]) * 1e3,
                               float(det["beam_center_y"][()]) * 1e3),
            # (row, column) in pixels
            "beam_center_px": (float(det["beam_center_y"][()]) / float(det["y_pixel_size"][()]),
                               float(det["beam_center_x"][()]) / float(det["x_pixel_size"][()])),
            "calibrated": "calibration" in entry or "calibration" in entry["instrument"],
            "masked_pixels": int(np.count_nonzero(det["pixel_mask"][()] & 0xFFFF))
            if "pixel_mask" in det else 0,
            "positions": [],
        }
        for name in position_entries(root):
            gonio = root[name]["instrument/goniometer"]
            info["positions"].append((name, {field: float(gonio[field][()])
                                             for field in gonio}))
    return info


def configuration_geometry(path: Path):
    """The configuration's detector geometry: calibrated if it has a calibration."""
    from nxgid.geometry import DetectorGeometry

    with opened(path, what="configuration") as root:
        det = root["entry/instrument/detector"]
        wavelength_A = float(root["entry/instrument/monochromator/wavelength"][()])
        poni = det[PYFAI]
        return DetectorGeometry.from_parameters(
            detector=det["description"][()].decode(), distance_m=float(det["distance"][()]),
            wavelength_A=wavelength_A, poni1_m=float(poni["poni1"][()]),
            poni2_m=float(poni["poni2"][()]), rot1_rad=float(poni["rot1"][()]),
            rot2_rad=float(poni["rot2"][()]), rot3_rad=float(poni["rot3"][()]))


def configuration_mask(path: Path) -> np.ndarray:
    with opened(path, what="configuration") as root:
        return root["entry/instrument/detector/pixel_mask"][()]


def set_geometry(path: Path, geometry, *, mask: np.ndarray | None = None,
                 calibration=None, image: np.ndarray | None = None) -> None:
    """Store a (calibrated) geometry — and optionally its calibration record and a new
    mask — in ``/entry`` and every position entry, atomically."""
    with rewrite(path) as root:
        entry = root["entry"]
        detector = entry["instrument/detector"]
        write_detector(detector, geometry, mask)
        nx_field(entry["instrument/monochromator"], "wavelength", geometry.wavelength_A,
                "angstrom")
        nx_field(entry["instrument/monochromator"], "energy",
                wavelength_A_to_energy_keV(geometry.wavelength_A), "keV")
        if calibration is not None:
            from nxgid.experiment.calibration import write_calibration

            write_calibration(entry, calibration, image)
        sync_positions(root)


def set_mask(path: Path, mask: np.ndarray) -> None:
    with rewrite(path) as root:
        detector = root["entry/instrument/detector"]
        if "pixel_mask" in detector:
            del detector["pixel_mask"]
        detector.create_dataset("pixel_mask", data=np.asarray(mask, np.int32),
                                compression="gzip", compression_opts=4, shuffle=True)
        sync_positions(root)
