"""Typed settings: one pydantic model per ``settings.ini`` section.

Units live in the key names (``wavelength_A``, ``distance_mm``, ``*_deg``, ``*_hz``).
Every model forbids unknown fields; the store (:mod:`nxgid.settings.store`) sets unknown
keys aside before validation, keeps them in the file and reports them.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nxgid.nexus_names import MAP_RESULTS, PROFILE_RESULTS, RESULT_NAMES, SOURCE_TYPES

#: Version of the settings layout written by this nxgid, migrated on read from older ones:
#: 0 is NXRefine's layout (sections ``nxrefine`` / ``nxreduce``, keys without units);
#: 1 had one boolean ``[reduction]`` key per correction instead of ``corrections``.
SCHEMA_VERSION = 3

#: Database URL schemes nxgid supports (SQLAlchemy dialect+driver names).
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "mysql+pymysql",
                    "mariadb+pymysql")


class Section(BaseModel):
    """Base of every section: strict about keys, lenient about ini spellings of values."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def describe(cls, key: str) -> str:
        """The documentation of *key* (with its unit)."""
        return cls.model_fields[key].description or ""


def _relative_path(value: str, key: str) -> str:
    if not value:
        return ""
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{key} must be a relative path below the home directory, "
                         "without '..'")
    return str(path)


class ServerSettings(Section):
    """``[server]``: how and where tasks run (site-wide; never copied into experiments)."""

    executor: Literal["local", "dask"] = Field(
        "local", description="where reduction tasks run: local worker processes or a Dask cluster")
    workers: int = Field(2, ge=1, le=4096, description="number of local worker processes")
    scheduler: str = Field(
        "", description="Dask scheduler address, e.g. tcp://host:8786, or dask-local for a cluster "
                    "of local processes (executor = dask)")
    database_url: str = Field(
        "", description="SQLAlchemy URL of the workflow database; empty = SQLite in "
                        "tasks/nxdatabase.db (postgresql+psycopg://…, mysql+pymysql://…)")
    max_attempts: int = Field(3, ge=1, le=100,
                              description="attempts at a task before it is marked failed")
    heartbeat_s: float = Field(5.0, gt=0, description="how often a worker signals that it "
                                                      "is alive, in seconds")
    heartbeat_timeout_s: float = Field(
        60.0, gt=0, description="a running task whose worker has been silent this many "
                                "seconds is requeued (more than heartbeat_s)")

    @field_validator("scheduler")
    @classmethod
    def _scheduler_address(cls, value: str) -> str:
        if value and value != "dask-local" and \
                not re.fullmatch(r"(tcp|tls|inproc|ucx)://[^\s/]+(:\d+)?/?", value):
            raise ValueError("expected a Dask address such as tcp://host:8786, or dask-local")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value:
            return value
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in DATABASE_SCHEMES:
            raise ValueError(
                "expected an SQLAlchemy URL starting with one of "
                + ", ".join(f"{s}://" for s in DATABASE_SCHEMES))
        return value

    @model_validator(mode="after")
    def _heartbeat(self) -> ServerSettings:
        if self.heartbeat_timeout_s <= self.heartbeat_s:
            raise ValueError(f"heartbeat_timeout_s = {self.heartbeat_timeout_s} must be more "
                             f"than heartbeat_s = {self.heartbeat_s}")
        return self


class InstrumentSettings(Section):
    """``[instrument]``: facility, beamline and where raw and analysed data live."""

    source: str = Field("", description="facility or source name, e.g. ESRF, PETRA III")
    source_type: str = Field("Synchrotron X-ray Source",
                             description="NXsource type, e.g. 'Synchrotron X-ray Source'")
    instrument: str = Field("", description="beamline or instrument name; selects the "
                                            "beamline plugin used to import scans")
    raw_home: Path | None = Field(
        None, description="directory holding raw experiment directories (only ever read)")
    raw_path: str = Field("", description="path of the raw data below <raw_home>/<experiment>")
    analysis_home: Path | None = Field(
        None, description="directory in which experiments are created "
                          "(empty = the current directory)")
    analysis_path: str = Field(
        "", description="path of the experiment below <analysis_home>/<experiment>")

    @field_validator("source_type")
    @classmethod
    def _source_type(cls, value: str) -> str:
        for allowed in SOURCE_TYPES:
            if value.lower() == allowed.lower():
                return allowed
        raise ValueError("expected one of: " + ", ".join(repr(s) for s in SOURCE_TYPES))

    @field_validator("raw_home", "analysis_home", mode="before")
    @classmethod
    def _optional_directory(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return Path(value).expanduser() if isinstance(value, str | Path) else value

    @field_validator("raw_path", "analysis_path")
    @classmethod
    def _relative(cls, value: str, info: ValidationInfo) -> str:
        return _relative_path(value, str(info.field_name))


class ConfigurationSettings(Section):
    """``[configuration]``: defaults for new experiment configurations."""

    wavelength_A: float = Field(1.0, gt=0.01, le=20.0,
                                description="x-ray wavelength in ångström (0.01–20 Å)")
    distance_mm: float = Field(300.0, gt=0, le=100_000,
                               description="sample–detector distance in millimetres")
    detector: str = Field("Pilatus2M", min_length=1,
                          description="detector name from pyFAI's detector database")
    polarization_factor: float = Field(
        0.99, ge=-1.0, le=1.0,
        description="polarization factor: 1 = horizontal (synchrotron), 0 = unpolarized")
    incidence_angle_deg: float = Field(0.2, ge=0.0, lt=90.0,
                                       description="grazing incidence angle in degrees")
    phi_start_deg: float = Field(-5.0, description="rotation scan start angle in degrees")
    phi_end_deg: float = Field(360.0, description="rotation scan end angle in degrees")
    phi_step_deg: float = Field(0.1, description="rotation scan step in degrees (not 0)")
    frame_rate_hz: float = Field(10.0, gt=0, le=1e6, description="detector frame rate in Hz")
    chi_deg: float = Field(0.0, description="goniometer chi angle in degrees")
    omega_deg: float = Field(0.0, description="goniometer omega angle in degrees")
    theta_deg: float = Field(0.0, description="goniometer theta angle in degrees")
    detector_x_mm: float = Field(0.0, description="detector horizontal translation in mm")
    detector_y_mm: float = Field(0.0, description="detector vertical translation in mm")

    @field_validator("detector")
    @classmethod
    def _detector(cls, value: str, info: ValidationInfo) -> str:
        # Checking needs pyFAI (2 s to import): only done when values are written.
        if info.context and info.context.get("check_detector"):
            from nxgid.detectors import check_detector_name

            try:
                check_detector_name(value)
            except Exception as exc:  # re-raised as a validation error naming the key
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _phi_scan(self) -> ConfigurationSettings:
        if self.phi_step_deg == 0:
            raise ValueError("phi_step_deg must not be 0")
        span = self.phi_end_deg - self.phi_start_deg
        if span != 0 and (span > 0) != (self.phi_step_deg > 0):
            raise ValueError(
                f"phi_step_deg = {self.phi_step_deg} goes the wrong way from "
                f"phi_start_deg = {self.phi_start_deg} to phi_end_deg = {self.phi_end_deg}")
        return self


# --- reduction recipes: axes and corrections values ---------------------------------

#: The pseudo-axis of a profile's axes key: the range of the coordinate it is cut over.
CUT_KEY = "cut"

#: Items of the ``corrections`` value, in the order nxgid writes them.
CORRECTION_ITEMS = ("solid_angle", "polarization", "polarization_offset", "air", "sensor",
                    "film", "lorentz", "refraction")

#: Where the incidence angle of a scan comes from, besides a fixed number of degrees.
INCIDENCE_SOURCES = ("auto", "log", "configuration")

#: Mask keywords, besides a path to a mask image.
MASK_SOURCES = ("configuration", "gaps", "none")


#: Correction items without parameters, always valid for
#: :func:`nxgid.convert.parse_corrections`: values made only of these are checked without
#: importing it (tests/test_recipe.py checks that it accepts each of them).
_PLAIN_CORRECTIONS = frozenset({"", "none", "solid_angle", "solid-angle", "polarization",
                                "lorentz=gid", "lorentz=powder"})


def format_number(value: float) -> str:
    """A number as recipes write it: the shortest exact form, without a trailing ``.0``."""
    text = repr(float(value) + 0.0)  # + 0.0 turns -0.0 into 0.0
    return text[:-2] if text.endswith(".0") else text


def result_axes(result: str) -> tuple[str, ...]:
    """The axes of a result: (x, y) of a map, (x,) of a profile."""
    if result in MAP_RESULTS:
        return MAP_RESULTS[result][1]
    if result in PROFILE_RESULTS:
        return (PROFILE_RESULTS[result][1],)
    raise ValueError(f"unknown result {result!r}: expected one of " + ", ".join(RESULT_NAMES))


@dataclass(frozen=True)
class AxesSpec:
    """What a result's axes key asks for; axis values in the q unit or degrees."""

    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    bins: dict[str, int] = field(default_factory=dict)
    #: For a profile: the range of the coordinate it is cut over.
    cut: tuple[float, float] | None = None


def _finite(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: {text.strip()!r} is not a finite number")
    return value


def _interval(name: str, low_text: str, high_text: str) -> tuple[float, float]:
    low, high = _finite(name, low_text), _finite(name, high_text)
    if not low < high:
        raise ValueError(f"{name}={low_text.strip()}:{high_text.strip()}: expected MIN < MAX")
    return low, high


def _bins(name: str, text: str) -> int:
    try:
        bins = int(text.strip())
    except ValueError:
        raise ValueError(f"{name}: {text.strip()!r} bins: expected a whole number ≥ 1") \
            from None
    if bins < 1:
        raise ValueError(f"{name}: {bins} bins: expected a whole number ≥ 1")
    return bins


def parse_axes(result: str, text: str) -> AxesSpec:
    """``q_xy=-2.4:2.4:800, q_z=467`` (and ``cut=LO:HI`` for a profile) → :class:`AxesSpec`.

    Items: ``AXIS=MIN:MAX`` (range), ``AXIS=MIN:MAX:BINS`` (range and bins), ``AXIS=BINS``
    (bins, automatic range). Raises ValueError naming the item and what was expected.
    """
    axes = result_axes(result)
    profile = result in PROFILE_RESULTS
    expected = "AXIS=MIN:MAX, AXIS=MIN:MAX:BINS or AXIS=BINS" + \
        (", or cut=LO:HI" if profile else "")
    ranges: dict[str, tuple[float, float]] = {}
    bins: dict[str, int] = {}
    cut: tuple[float, float] | None = None
    seen: set[str] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise ValueError(f"{item!r}: expected {expected}")
        if name in seen:
            raise ValueError(f"{name} is given twice")
        seen.add(name)
        parts = value.split(":")
        if name == CUT_KEY:
            if not profile:
                raise ValueError(f"{item!r}: only profiles ({', '.join(PROFILE_RESULTS)}) "
                                 "take a cut range")
            if len(parts) != 2:
                raise ValueError(f"{item!r}: expected cut=LO:HI")
            cut = _interval(name, *parts)
            continue
        if name not in axes:
            raise ValueError(f"{result} has no axis {name!r}: its axes are "
                             + ", ".join(axes) + (" (and cut)" if profile else ""))
        if len(parts) == 1:
            bins[name] = _bins(name, parts[0])
        elif len(parts) in (2, 3):
            ranges[name] = _interval(name, parts[0], parts[1])
            if len(parts) == 3:
                bins[name] = _bins(name, parts[2])
        else:
            raise ValueError(f"{item!r}: expected {expected}")
    return AxesSpec(ranges, bins, cut)


def format_axes(result: str, spec: AxesSpec) -> str:
    """The canonical text of an axes key: the result's axis order, then ``cut``."""
    items = []
    for axis in result_axes(result):
        if axis in spec.ranges:
            low, high = spec.ranges[axis]
            text = f"{axis}={format_number(low)}:{format_number(high)}"
            items.append(text + (f":{spec.bins[axis]}" if axis in spec.bins else ""))
        elif axis in spec.bins:
            items.append(f"{axis}={spec.bins[axis]}")
    if spec.cut is not None:
        items.append(f"{CUT_KEY}={format_number(spec.cut[0])}:{format_number(spec.cut[1])}")
    return ", ".join(items)


def correction_items(text: str) -> dict[str, str]:
    """The items of a ``corrections`` value: name → value ("" for a bare item such as
    ``solid_angle``), in the canonical order; ``none`` is left out and a repeated item
    keeps its last value, as :func:`nxgid.convert.parse_corrections` reads them."""
    items: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item or item == "none":
            continue
        key, _, value = item.partition("=")
        items[key.strip().replace("-", "_")] = value.strip()
    order = {name: index for index, name in enumerate(CORRECTION_ITEMS)}
    return dict(sorted(items.items(), key=lambda kv: order.get(kv[0], len(order))))


def format_corrections(items: dict[str, str]) -> str:
    """The canonical text of (valid) correction items; ``none`` when there are none."""
    parts = []
    for key, value in items.items():
        if value and key != "lorentz":
            value = ":".join(format_number(float(v)) for v in value.split(":"))
        parts.append(f"{key}={value}" if value else key)
    return ", ".join(parts) or "none"


def _axes_field(result: str) -> Any:
    axes = result_axes(result)
    if result in MAP_RESULTS:
        what = (f"axes of {result}: {axes[0]}=MIN:MAX[:BINS] or {axes[0]}=BINS, and the "
                f"same for {axes[1]}")
    else:
        what = (f"axis of {result}: {axes[0]}=MIN:MAX[:BINS] or {axes[0]}=BINS, and "
                "cut=LO:HI, the range it is cut over")
    return Field("", description=f"{what} (q unit or degrees); empty = automatic")


class ReductionSettings(Section):
    """``[reduction]``: the recipe, how scans are reduced to reciprocal space.

    ``[reduction SAMPLE]``, ``[reduction SAMPLE/LABEL]`` and
    ``[reduction SAMPLE/LABEL/SCAN]`` sections of an experiment override any of these keys
    for part of it (:mod:`nxgid.recipe`).
    """

    outputs: list[str] = Field(
        default_factory=lambda: ["img_gid_q", "img_gid_pol"],
        description="results to produce, comma-separated (pygid names, e.g. img_gid_q)")
    q_unit: Literal["A^-1", "nm^-1"] = Field("A^-1", description="unit of q: A^-1 or nm^-1")
    method: Literal["integrate", "bilinear", "nearest"] = Field(
        "integrate", description="integrate pixels into bins, or sample the image at bin "
                                 "centres (bilinear, nearest) as pygid interpolates")

    @field_validator("method", mode="before")
    @classmethod
    def _old_method_name(cls, value: Any) -> Any:
        # schema 1 called pygid-like sampling "interpolate": it is bilinear sampling
        return "bilinear" if value == "interpolate" else value
    pixel_splitting: Literal["auto", "all", "none"] = Field(
        "auto", description="which pixels are shared among the bins their area covers: "
                            "auto (those wider than a bin: no empty bins), all, none")

    @field_validator("pixel_splitting", mode="before")
    @classmethod
    def _splitting_from_boolean(cls, value: Any) -> Any:
        # schema 2 had a boolean: true split every pixel, false none
        text = str(value).strip().lower()
        words = {**dict.fromkeys(("1", "true", "t", "yes", "y", "on"), "all"),
                 **dict.fromkeys(("0", "false", "f", "no", "n", "off"), "none")}
        return words.get(text, text)
    max_bins: int = Field(4_000_000, ge=1,
                          description="most bins per frame a result may have")
    errors: bool = Field(True, description="propagate Poisson variance into errors")
    corrections: str = Field(
        "solid_angle, polarization",
        description="intensity corrections, comma-separated: none, solid_angle, "
                    "polarization[=P] (bare: [configuration] polarization_factor), "
                    "polarization_offset=DEG, air=L_m[:OFFSET_m], sensor=L_m[:THICKNESS_m], "
                    "film=THICKNESS_m:L_m, lorentz=gid|powder, refraction=ALPHA_C_DEG")
    monitor_normalisation: bool = Field(False,
                                        description="divide each frame by its monitor count")
    mask: str = Field(
        "configuration",
        description="pixel mask: configuration (the configuration's detector gaps and user "
                    "mask), gaps (detector gaps only), none, or a mask image path (relative "
                    "to the experiment)")
    dark: str = Field("", description="dark image path (relative to the experiment); "
                                      "empty = none")
    flat: str = Field("", description="flat-field image path (relative to the experiment); "
                                      "empty = none")
    incidence_angle: str = Field(
        "auto", description="incidence angle: auto (the scan's per-frame log if it has one, "
                            "else the configuration's), log, configuration, or degrees")
    tilt_deg: float = Field(0.0, ge=-180.0, le=180.0,
                            description="sample tilt in degrees (pyFAI fiber tilt)")
    sample_orientation: int = Field(1, ge=1, le=8,
                                    description="sample orientation 1–8 (pyFAI fiber)")
    preview: Literal["first", "sum"] = Field(
        "first", description="frame the PNG previews show: the first, or the sum of all")
    block_frames: int = Field(16, ge=1, le=4096,
                              description="frames converted and written per block")
    compression: Literal["gzip", "none", "bitshuffle-lz4", "bitshuffle-zstd"] = Field(
        "gzip", description="compression of output datasets: gzip (read by every HDF5 "
                            "reader), none, bitshuffle-lz4 or -zstd (faster; readers "
                            "need hdf5plugin)")
    img_gid_q: str = _axes_field("img_gid_q")
    img_gid_pol: str = _axes_field("img_gid_pol")
    img_gid_pseudopol: str = _axes_field("img_gid_pseudopol")
    img_gid_exit: str = _axes_field("img_gid_exit")
    img_q: str = _axes_field("img_q")
    img_pol: str = _axes_field("img_pol")
    img_pseudopol: str = _axes_field("img_pseudopol")
    rad_cut_gid: str = _axes_field("rad_cut_gid")
    azim_cut_gid: str = _axes_field("azim_cut_gid")
    horiz_cut_gid: str = _axes_field("horiz_cut_gid")
    vert_cut_gid: str = _axes_field("vert_cut_gid")
    rad_cut: str = _axes_field("rad_cut")
    azim_cut: str = _axes_field("azim_cut")

    @field_validator("outputs", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("outputs")
    @classmethod
    def _known_outputs(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in RESULT_NAMES]
        if unknown:
            raise ValueError(f"unknown result {', '.join(unknown)}; expected names from: "
                             + ", ".join(RESULT_NAMES))
        return list(dict.fromkeys(value))

    @field_validator("corrections")
    @classmethod
    def _corrections(cls, value: str) -> str:
        items = [part.strip() for part in value.split(",")]
        if not all(item in _PLAIN_CORRECTIONS for item in items):
            # nxgid.convert pulls in the conversion engine (numba, ~0.3 s): imported only
            # for values with parameters, which need its checks.
            from nxgid.convert import parse_corrections
            from nxgid.errors import NxgidError

            try:
                parse_corrections(value)
            except NxgidError as exc:
                raise ValueError(str(exc).removeprefix("--corrections ")) from None
        return format_corrections(correction_items(value))

    @field_validator("mask")
    @classmethod
    def _mask(cls, value: str) -> str:
        text = value.strip()
        if text.lower() in MASK_SOURCES:
            return text.lower()
        if not text:
            raise ValueError("expected configuration, gaps, none or the path of a mask image")
        return text

    @field_validator("dark", "flat")
    @classmethod
    def _image_path(cls, value: str) -> str:
        return value.strip()

    @field_validator("incidence_angle")
    @classmethod
    def _incidence_angle(cls, value: str) -> str:
        text = value.strip()
        if text.lower() in INCIDENCE_SOURCES:
            return text.lower()
        try:
            angle = float(text)
        except ValueError:
            raise ValueError("expected auto, log, configuration or an angle in degrees") \
                from None
        if not (math.isfinite(angle) and 0.0 <= angle < 90.0):
            raise ValueError("expected an angle of at least 0 and below 90 degrees")
        return format_number(angle)

    @field_validator("tilt_deg")
    @classmethod
    def _no_negative_zero(cls, value: float) -> float:
        return value + 0.0  # -0 and 0 are one recipe

    @field_validator(*RESULT_NAMES)
    @classmethod
    def _axes(cls, value: str, info: ValidationInfo) -> str:
        result = str(info.field_name)
        return format_axes(result, parse_axes(result, value))

    def axes(self, result: str) -> AxesSpec:
        """The parsed axes key of *result*."""
        return parse_axes(result, getattr(self, result))


if missing := [name for name in RESULT_NAMES if name not in ReductionSettings.model_fields]:
    raise RuntimeError(f"ReductionSettings has no axes key for {', '.join(missing)}")


class BeamlineSettings(Section):
    """``[beamline]``: how the beamline plugins read the raw tree (the ``spec`` beamline:
    which SPEC file, image folders, and which motors and counters mean what)."""

    spec_file: str = Field("{sample}.spec", description="SPEC file of a sample, relative to "
                           "the raw directory ({sample}, {label}; a glob allowed)")
    image_folder: str = Field("{sample}_{scan:03d}", description="image folder of a SPEC "
                              "scan, next to the SPEC file ({sample}, {label}, {scan})")
    image_glob: str = Field("*.cbf,*.tif,*.tiff,*.edf",
                            description="image files of a scan, comma-separated patterns")
    motor_phi: str = Field("phi", description="SPEC motor of the phi rotation")
    motor_chi: str = Field("chi", description="SPEC motor of chi")
    motor_omega: str = Field("omega", description="SPEC motor of omega")
    motor_theta: str = Field("th", description="SPEC motor of theta")
    motor_incidence_angle: str = Field("ai", description="SPEC motor of the incidence angle")
    monitor: str = Field("mon", description="SPEC counter of the beam monitor")
    counting_time: str = Field("Seconds", description="SPEC counter of the counting time")
    temperature: str = Field("temp", description="SPEC counter or motor of the temperature")
    temperature_unit: Literal["K", "C"] = Field("K", description="unit of that temperature")

    @property
    def motors(self) -> dict[str, str]:
        """Angle → SPEC motor, as the spec beamline takes it."""
        return {"phi": self.motor_phi, "chi": self.motor_chi, "omega": self.motor_omega,
                "theta": self.motor_theta, "incidence_angle": self.motor_incidence_angle}


class ExperimentInfo(Section):
    """``[experiment]``: identity of an experiment (only in ``tasks/settings.ini``)."""

    name: str = Field(description="experiment name")
    id: str = Field(default_factory=lambda: uuid.uuid4().hex,
                    description="unique identifier, keys the experiment in a shared database")
    created: datetime = Field(default_factory=lambda: datetime.now(UTC),
                              description="creation time (ISO 8601)")


#: Section name -> model, in file order. ``experiment`` only appears in experiment files.
SECTIONS: dict[str, type[Section]] = {
    "server": ServerSettings,
    "instrument": InstrumentSettings,
    "configuration": ConfigurationSettings,
    "reduction": ReductionSettings,
    "beamline": BeamlineSettings,
}


class Settings(BaseModel):
    """The effective settings: defaults, overridden by the site file, then the experiment's."""

    model_config = ConfigDict(extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    instrument: InstrumentSettings = Field(default_factory=InstrumentSettings)
    configuration: ConfigurationSettings = Field(default_factory=ConfigurationSettings)
    reduction: ReductionSettings = Field(default_factory=ReductionSettings)
    beamline: BeamlineSettings = Field(default_factory=BeamlineSettings)

    def section(self, name: str) -> Section:
        return getattr(self, name)


def format_value(value: Any) -> str:
    """How a value is written to ``settings.ini`` (booleans as ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e16 else f"{value:.1f}"
    return str(value)
