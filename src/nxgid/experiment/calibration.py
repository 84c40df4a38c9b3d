"""Headless powder calibration of the detector geometry with pyFAI.

From a powder (calibrant) image and a start geometry, :func:`calibrate_powder` picks
control points on the calibrant rings (pyFAI's ``SingleGeometry.extract_cp``: Massif
peak search along the rings the current geometry predicts) and refines distance, PONI and
rotations (and optionally the wavelength) with ``GeometryRefinement.refine3``, alternating
extraction and refinement until a refinement moves the rings by less than 5 % of a pixel.
Massif shuffles with numpy's global generator: it is seeded (and restored) around the
extraction, so a calibration is reproducible (and not thread-safe).

The result lives in a configuration or scan file under ``/entry/calibration`` (an
``NXprocess`` of the entry: NXinstrument may not hold one)::

    calibration/            program, version, date, calibrant, calibrant_dspacing (Å),
                            image (gzip), image_file, poni (PONI text), sha256
    calibration/refinement  NXparameters: dist, poni1, poni2 (m), rot1..3 (rad),
                            wavelength (m), detector, orientation, residual_rms_2theta
                            (degree), rings_used, points_used, refined_parameters,
                            control_points (row, column, ring), start_poni

``sha256`` is :func:`calibration_hash` of the refined geometry, to detect stale data.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import hashlib
import io
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from nxgid.errors import ExistsError, MissingError, NxgidError
from nxgid.geometry.detector import DetectorGeometry
from nxgid.safety.partials import clear_stale, partial_path

logger = logging.getLogger(__name__)

PARAMETERS: tuple[str, ...] = ("dist", "poni1", "poni2", "rot1", "rot2", "rot3")
UNITS: dict[str, str] = {"dist": "m", "poni1": "m", "poni2": "m", "rot1": "rad",
                         "rot2": "rad", "rot3": "rad", "wavelength": "m"}
MIN_POINTS = 20
MIN_RINGS = 2
#: Largest acceptable RMS residual, in units of the angle one pixel subtends at the PONI.
MAX_RMS_PIXELS = 3.0


def _now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


# --- calibrants ------------------------------------------------------------------------

def calibrant_names() -> list[str]:
    from pyFAI.calibrant import CALIBRANT_FACTORY

    return sorted(CALIBRANT_FACTORY.keys(), key=str.lower)


def load_calibrant(name_or_path: str | Path, wavelength_A: float) -> Any:
    """A pyFAI ``Calibrant`` by (case-insensitive) name, or from a d-spacing file."""
    from pyFAI.calibrant import CALIBRANT_FACTORY, Calibrant

    text = str(name_or_path)
    by_lower = {name.lower(): name for name in calibrant_names()}
    if text.lower() in by_lower:
        calibrant = CALIBRANT_FACTORY(by_lower[text.lower()])
    elif Path(text).is_file():
        calibrant = Calibrant(filename=str(Path(text).resolve()))
        try:
            spacings = [d for d in calibrant.dspacing if d is not None and d > 0]
        except Exception as exc:
            raise NxgidError(f"d-spacing file {text} cannot be read: {exc}") from None
        if not spacings:
            raise NxgidError(f"d-spacing file {text} has no d-spacing: expected one d "
                             "in Å per line")
    elif os.sep in text or "/" in text or Path(text).suffix.lower() in (".d", ".txt", ".dat"):
        raise MissingError(f"d-spacing file {text} does not exist")
    else:
        close = difflib.get_close_matches(text.lower(), list(by_lower), n=4, cutoff=0.5)
        hint = (f"; closest: {', '.join(by_lower[c] for c in close)}" if close
                else f"; known: {', '.join(calibrant_names())}")
        raise NxgidError(f"calibrant {text!r} is neither a pyFAI calibrant nor a "
                         f"d-spacing file{hint}")
    return _working_calibrant(calibrant, wavelength_A * 1e-10)


def _calibrant_name(calibrant: Any) -> str:
    return str(calibrant.name).rstrip("*")


@functools.cache
def _named_calibrant_class() -> type:
    from pyFAI.calibrant import Calibrant

    class NamedCalibrant(Calibrant):
        """A calibrant from d-spacings that keeps a name (pyFAI's own copy of a
        modified calibrant re-reads its file)."""

        def __init__(self, name: str, dspacing: list[float], wavelength: float) -> None:
            super().__init__(dspacing=dspacing, wavelength=wavelength)
            self._name = name

        @property
        def name(self) -> str:
            return self._name

        def __copy__(self) -> NamedCalibrant:
            return NamedCalibrant(self._name, list(self.dspacing), self.wavelength)

    return NamedCalibrant


def _working_calibrant(calibrant: Any, wavelength_m: float) -> Any:
    """A new calibrant with unique, decreasing d-spacings: pyFAI's ring extraction numbers
    rings by sorted 2θ, its refinement by position in the list; they must agree."""
    spacings = sorted({float(d) for d in calibrant.dspacing if d}, reverse=True)
    return _named_calibrant_class()(_calibrant_name(calibrant), spacings, wavelength_m)


def ring_2theta_rad(dspacing_A: tuple[float, ...] | list[float], wavelength_m: float
                    ) -> np.ndarray:
    """2θ of each reflection that exists at this wavelength (d > λ/2)."""
    d = np.asarray(dspacing_A, dtype=np.float64) * 1e-10
    d = d[d > wavelength_m / 2]
    return 2 * np.arcsin(wavelength_m / (2 * d))


# --- results ---------------------------------------------------------------------------

@dataclass
class CalibrationResult:
    geometry: DetectorGeometry
    calibrant: str
    rms_2theta_deg: float | None
    rings_used: int
    points_used: int
    refined: tuple[str, ...]
    guess: DetectorGeometry | None
    date: str
    #: Control points, one row per point: row, column (pixels), ring index.
    control_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    #: The calibrant's d-spacings (Å), to draw its rings at any wavelength.
    dspacing_A: tuple[float, ...] = ()


class CalibrationFailed(NxgidError):
    """A calibration that found no geometry, with what it had found: the start geometry,
    the last geometry tried and the control points, so the command can draw them."""

    def __init__(self, message: str, *, guess: DetectorGeometry, tried: Any,
                 points: np.ndarray, dspacing_A: tuple[float, ...], calibrant: str) -> None:
        super().__init__(message)
        self.guess, self.tried, self.points = guess, tried, points
        self.dspacing_A, self.calibrant = dspacing_A, calibrant


def _predicted(refinement: Any, calibrant: Any, points: np.ndarray) -> np.ndarray:
    """Per point: 2θ at the point minus 2θ of its ring (both move with the geometry)."""
    calibrant.setWavelength_change2th(refinement.wavelength)
    rings = np.asarray(calibrant.get_2th(), dtype=np.float64)[points[:, 2].astype(int)]
    return np.asarray(refinement.tth(points[:, 0], points[:, 1])) - rings


def calibrate_powder(image: np.ndarray, guess: DetectorGeometry, calibrant: Any, *,
                     mask: np.ndarray | None = None, refine_wavelength: bool = False,
                     max_rings: int | None = None, points_per_degree: float = 1.0,
                     max_iterations: int = 6) -> CalibrationResult:
    """Refine *guess* on a powder *image* of *calibrant* (a pyFAI Calibrant or a name or
    d-spacing file). *mask* is True where pixels are bad; the detector's gaps, negative,
    non-finite and saturated-integer pixels are masked too. The wavelength of *guess* is
    used (refined too with *refine_wavelength*). Failures raise a one-line NxgidError."""
    from pyFAI.geometry import Geometry
    from pyFAI.goniometer import SingleGeometry

    image = np.asarray(image)
    if image.ndim != 2 or image.shape != guess.shape:
        raise NxgidError(f"calibration image shape {image.shape} does not match the "
                         f"detector shape {guess.shape}")
    if isinstance(calibrant, (str, Path)):
        calibrant = load_calibrant(calibrant, guess.wavelength_A)
    name = _calibrant_name(calibrant)
    cal = _working_calibrant(calibrant, guess.pyfai.wavelength)
    spacings = tuple(float(d) for d in cal.dspacing)

    bad = ~np.isfinite(image) | (image < 0)
    if np.issubdtype(image.dtype, np.integer):
        bad |= image == np.iinfo(image.dtype).max  # overflow / bad-pixel flag
    if guess.detector_mask is not None:
        bad |= guess.detector_mask
    if mask is not None:
        if np.shape(mask) != image.shape:
            raise NxgidError(f"mask shape {np.shape(mask)} does not match the image "
                             f"shape {image.shape}")
        bad |= np.asarray(mask, dtype=bool)
    data = np.where(bad, 0.0, image).astype(np.float32)
    good = data[~bad]
    if good.size == 0 or good.min() == good.max():
        raise NxgidError("calibration image has no signal outside the mask")

    tth = np.asarray(guess.pyfai.center_array(guess.shape, unit="2th_rad", scale=False))[~bad]
    rings = np.asarray(cal.get_2th(), dtype=np.float64)
    if not np.any((rings >= tth.min()) & (rings <= tth.max())):
        shown = ", ".join(f"{math.degrees(t):.2f}" for t in rings[:4])
        raise NxgidError(f"no {name} ring falls on the detector at the start geometry: "
                         f"2θ spans {math.degrees(tth.min()):.2f}–"
                         f"{math.degrees(tth.max()):.2f}°, the first rings are at {shown}°; "
                         "check the distance, beam centre and wavelength")

    detector = copy.deepcopy(guess.detector)
    detector.mask = bad.astype(np.int8)
    current: Any = guess.pyfai

    def failed(message: str) -> CalibrationFailed:
        return CalibrationFailed(message, guess=guess, tried=current, points=points,
                                 dspacing_A=spacings, calibrant=name)
    massif = None
    final_fix = [] if refine_wavelength else ["wavelength"]
    pixel_rad = min(guess.pixel_size_m) / guess.distance_m
    points = np.zeros((0, 3))
    random_state = np.random.get_state()  # Massif shuffles with numpy's global generator
    np.random.seed(0)
    try:
        for iteration in range(max_iterations):
            fix = [] if refine_wavelength and iteration > 0 else ["wavelength"]
            cal.setWavelength_change2th(current.wavelength)
            start = {p: float(getattr(current, p)) for p in (*PARAMETERS, "wavelength")}
            single = SingleGeometry("calibration", data, calibrant=cal, detector=detector,
                                    geometry=start)
            if massif is not None:
                single.massif = massif
            control = single.extract_cp(max_rings=max_rings, pts_per_deg=points_per_degree)
            massif = single.massif
            points = np.asarray(control.getList(), dtype=np.float64).reshape(-1, 3)
            found = np.unique(points[:, 2]).size
            if len(points) < MIN_POINTS or found < MIN_RINGS:
                raise failed(f"calibration needs at least {MIN_POINTS} control points on "
                             f"{MIN_RINGS} {name} rings; found {len(points)} on {found} "
                             "ring(s)")
            refinement = single.geometry_refinement
            before = _predicted(refinement, cal, points)
            refinement.refine3(fix=fix)
            values = [float(getattr(refinement, p)) for p in (*PARAMETERS, "wavelength")]
            if not all(map(math.isfinite, values)) or min(values[0], values[-1]) <= 0:
                raise failed(f"calibration refinement diverged: distance "
                             f"{refinement.dist} m, wavelength {refinement.wavelength} m")
            current = refinement
            residual = _predicted(refinement, cal, points)
            shift = np.max(np.abs(residual - before))
            rms_rad = math.sqrt(float(np.mean(residual**2)))
            logger.debug("calibration iteration %d: %d points on %d rings, distance %.6f m, "
                         "RMS %.3g pixel, rings moved by %.3g pixel", iteration, len(points),
                         found, refinement.dist, rms_rad / pixel_rad, shift / pixel_rad)
            if fix == final_fix and shift < 0.05 * pixel_rad:
                break  # the rings moved by less than 5 % of a pixel: converged
            if iteration > 0 and rms_rad > MAX_RMS_PIXELS * pixel_rad:
                break  # points re-extracted at a refined geometry still miss: give up
    finally:
        np.random.set_state(random_state)

    residual = _predicted(current, cal, points)
    rms_deg = math.degrees(math.sqrt(float(np.mean(residual**2))))
    pixel_deg = math.degrees(min(guess.pixel_size_m) / current.dist)
    found = np.unique(points[:, 2]).size
    if rms_deg > MAX_RMS_PIXELS * pixel_deg:
        raise failed(f"calibration failed: the control points do not lie on {name} rings "
                     f"(RMS 2θ residual {rms_deg:.3f}° ≈ {rms_deg / pixel_deg:.0f} pixels "
                     f"over {len(points)} points on {found} rings)")
    refined = PARAMETERS + (("wavelength",) if refine_wavelength else ())
    geometry = Geometry(**{p: float(getattr(current, p)) for p in PARAMETERS},
                        detector=guess.detector, wavelength=float(current.wavelength))
    return CalibrationResult(
        geometry=DetectorGeometry(geometry, source="calibration"), calibrant=name,
        rms_2theta_deg=rms_deg, rings_used=int(found), points_used=len(points),
        refined=refined, guess=guess, date=_now_iso(), control_points=points,
        dspacing_A=spacings)


def synthetic_calibrant_image(geometry: DetectorGeometry, calibrant: Any, *,
                              intensity: float = 1000.0, background: float = 10.0,
                              fwhm_deg: float = 0.1, noise: bool = True,
                              seed: int = 0) -> np.ndarray:
    """A powder image of *calibrant* at *geometry* (pyFAI's ``fake_calibration_image``):
    rings of peak height *intensity* over *background* counts, detector gaps at 0, and
    Poisson noise (int32) unless *noise* is False (float64)."""
    if isinstance(calibrant, (str, Path)):
        calibrant = load_calibrant(calibrant, geometry.wavelength_A)
    cal = _working_calibrant(calibrant, geometry.pyfai.wavelength)
    integrator = geometry.pyfai.promote()
    image = np.asarray(cal.fake_calibration_image(integrator, Imax=intensity,
                                                  Imin=background, resolution=fwhm_deg))
    image = np.clip(np.nan_to_num(image), 0, None)
    if geometry.detector_mask is not None:
        image[geometry.detector_mask] = 0
    if not noise:
        return image.astype(np.float64)
    return np.random.default_rng(seed).poisson(image).astype(np.int32)


# --- pictures --------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_paths(paths: list[Path]) -> Iterator[list[Path]]:
    """Temporary names next to *paths*, renamed onto them on success, removed on failure."""
    temporary: list[Path] = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            clear_stale(path)
            temporary.append(partial_path(path, keep_suffix=True))
        yield temporary
        for tmp, path in zip(temporary, paths, strict=True):
            os.replace(tmp, path)
    finally:
        for tmp in temporary:
            tmp.unlink(missing_ok=True)


# --- PONI files and hashes -------------------------------------------------------------

def poni_text(geometry: DetectorGeometry, calibrant: str | None = None) -> str:
    """The PONI file text of *geometry* (pyFAI's writer; floats written exactly)."""
    from pyFAI.io.ponifile import PoniFile

    poni = PoniFile(geometry.pyfai)
    if calibrant:
        poni.extra["Calibrant"] = calibrant
    stream = io.StringIO()
    poni.write(stream)
    return stream.getvalue()


def geometry_from_poni_text(text: str, source: str = "calibration") -> DetectorGeometry:
    with tempfile.TemporaryDirectory(prefix="nxgid-poni-") as folder:
        path = Path(folder) / "calibration.poni"
        path.write_text(text, encoding="utf-8")
        geometry = DetectorGeometry.from_poni(path)
    return DetectorGeometry(geometry.pyfai, source=source)


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.12g}")  # immune to float32 or text round trips
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def calibration_hash(geometry: DetectorGeometry) -> str:
    """SHA-256 of a canonical JSON of the geometry (parameters, wavelength, detector)."""
    config = geometry.config()
    config.pop("poni_version", None)
    text = json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def export_poni(geometry: DetectorGeometry, path: str | Path, *, overwrite: bool = False,
                calibrant: str | None = None) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExistsError(f"PONI file {path} exists; give overwrite to replace it")
    text = poni_text(geometry, calibrant)
    with atomic_paths([path]) as (tmp,):
        tmp.write_text(text, encoding="utf-8")
    return path


def import_poni(path: str | Path) -> CalibrationResult:
    """An existing calibration from a PONI file (no image, no residual)."""
    from pyFAI.io.ponifile import PoniFile

    geometry = DetectorGeometry.from_poni(path)
    name = str(PoniFile(str(path)).extra.get("Calibrant", "") or "")
    spacings: tuple[float, ...] = ()
    if name.lower() in {n.lower() for n in calibrant_names()}:
        cal = load_calibrant(name, geometry.wavelength_A)
        name = _calibrant_name(cal)
        spacings = tuple(sorted({float(d) for d in cal.dspacing if d}, reverse=True))
    return CalibrationResult(geometry=geometry, calibrant=name, rms_2theta_deg=None,
                             rings_used=0, points_used=0, refined=(), guess=None,
                             date=_now_iso(), dspacing_A=spacings)


# --- NeXus -----------------------------------------------------------------------------

@dataclass
class CalibrationRecord:
    """``/entry/calibration`` as read back."""

    program: str
    version: str
    date: str
    calibrant: str
    parameters: dict[str, float]  # dist, poni1, poni2 (m), rot1..3 (rad), wavelength (m)
    detector: str
    orientation: int
    rms_2theta_deg: float | None
    rings_used: int
    points_used: int
    refined_parameters: tuple[str, ...]
    poni: str
    sha256: str
    dspacing_A: tuple[float, ...] = ()
    control_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    image: np.ndarray | None = None
    image_file: str | None = None

    def geometry(self) -> DetectorGeometry:
        return geometry_from_poni_text(self.poni)

    def matches(self, geometry: DetectorGeometry) -> bool:
        """Whether *geometry* is the one this calibration produced."""
        return calibration_hash(geometry) == self.sha256


def _text(dataset: Any) -> str:
    value = dataset[()]
    return value.decode() if isinstance(value, bytes) else str(value)


def _put(group: Any, name: str, value: Any, units: str | None = None, **options: Any) -> None:
    dataset = group.create_dataset(name, data=value, **options)
    if units:
        dataset.attrs["units"] = units


def calibration_group(entry: Any) -> Any | None:
    """The ``calibration`` of the NXentry *entry* (or, in files of nxgid before 0.2,
    of its NXinstrument), or None."""
    for path in ("calibration", "instrument/calibration"):
        group = entry.get(path)
        if group is not None:
            return group
    return None


def write_calibration(entry: Any, result: CalibrationResult, image: np.ndarray | None,
                      *, image_file: str | None = None) -> None:
    """Create or replace ``calibration`` in the NXentry group *entry*."""
    import h5py
    import pyFAI

    for path in ("calibration", "instrument/calibration"):
        if path in entry:
            del entry[path]
    group = entry.create_group("calibration")
    group.attrs["NX_class"] = "NXprocess"
    config = result.geometry.config()
    for name, value in (("program", "pyFAI"), ("version", str(pyFAI.version)),
                        ("date", result.date), ("calibrant", result.calibrant),
                        ("poni", poni_text(result.geometry, result.calibrant)),
                        ("sha256", calibration_hash(result.geometry))):
        _put(group, name, value)
    _put(group, "calibrant_dspacing", np.asarray(result.dspacing_A, np.float64), "angstrom")
    if image is not None:
        _put(group, "image", np.asarray(image), compression="gzip", compression_opts=4,
             shuffle=True, chunks=True)
    if image_file:
        _put(group, "image_file", image_file)

    refinement = group.create_group("refinement")
    refinement.attrs["NX_class"] = "NXparameters"
    for name in (*PARAMETERS, "wavelength"):
        _put(refinement, name, np.float64(config[name]), UNITS[name])
    _put(refinement, "detector", str(config["detector"]))
    _put(refinement, "orientation",
         np.int64(config.get("detector_config", {}).get("orientation", 0) or 0))
    if result.rms_2theta_deg is not None:
        _put(refinement, "residual_rms_2theta", np.float64(result.rms_2theta_deg), "degree")
    _put(refinement, "rings_used", np.int64(result.rings_used))
    _put(refinement, "points_used", np.int64(result.points_used))
    _put(refinement, "refined_parameters", list(result.refined), dtype=h5py.string_dtype())
    _put(refinement, "control_points", np.asarray(result.control_points, np.float64))
    refinement["control_points"].attrs["columns"] = "row (pixel), column (pixel), ring index"
    if result.guess is not None:
        _put(refinement, "start_poni", poni_text(result.guess))


def read_calibration(entry: Any, *, with_image: bool = True) -> CalibrationRecord | None:
    """``calibration`` of the NXentry *entry*, or None if there is none."""
    group = calibration_group(entry)
    if group is None:
        return None
    refinement = group["refinement"]
    rms = refinement.get("residual_rms_2theta")
    image = group["image"][()] if with_image and "image" in group else None
    return CalibrationRecord(
        program=_text(group["program"]), version=_text(group["version"]),
        date=_text(group["date"]), calibrant=_text(group["calibrant"]),
        parameters={name: float(refinement[name][()]) for name in (*PARAMETERS, "wavelength")},
        detector=_text(refinement["detector"]),
        orientation=int(refinement["orientation"][()]),
        rms_2theta_deg=None if rms is None else float(rms[()]),
        rings_used=int(refinement["rings_used"][()]),
        points_used=int(refinement["points_used"][()]),
        refined_parameters=tuple(refinement["refined_parameters"].asstr()[()]),
        poni=_text(group["poni"]), sha256=_text(group["sha256"]),
        dspacing_A=tuple(float(d) for d in group["calibrant_dspacing"][()]),
        control_points=np.asarray(refinement["control_points"][()]),
        image=image,
        image_file=_text(group["image_file"]) if "image_file" in group else None)
