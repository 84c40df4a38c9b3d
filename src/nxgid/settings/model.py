"""Typed settings: one pydantic model per ``settings.ini`` section.

Units live in the key names (``wavelength_A``, ``distance_mm``, ``*_deg``, ``*_hz``).
Every model forbids unknown fields; the store (:mod:`nxgid.settings.store`) sets unknown
keys aside before validation, keeps them in the file and reports them.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nxgid.names import SOURCE_TYPES
from nxgid.settings.reduction import (  # noqa: F401  (re-exported)
    _PLAIN_CORRECTIONS,
    CORRECTION_ITEMS,
    CUT_KEY,
    INCIDENCE_SOURCES,
    MASK_SOURCES,
    AxesSpec,
    ReductionSettings,
    correction_items,
    format_axes,
    format_corrections,
    format_number,
    parse_axes,
    result_axes,
)
from nxgid.settings.section import Section, _relative_path, format_value  # noqa: F401

#: Version of the settings layout written by this nxgid, migrated on read from older ones:
#: 0 is NXRefine's layout (sections ``nxrefine`` / ``nxreduce``, keys without units);
#: 1 had one boolean ``[reduction]`` key per correction instead of ``corrections``.
SCHEMA_VERSION = 3

#: Database URL schemes nxgid supports (SQLAlchemy dialect+driver names).
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "mysql+pymysql",
                    "mariadb+pymysql")


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
    database_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="how long a command waits for the workflow "
                                         "database while another holds it locked, in seconds")

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
    instrument: str = Field("", description="beamline or instrument name, e.g. ID10 "
                                            "(NXinstrument name; the plugin that imports "
                                            "scans is beamline.plugin)")
    raw_home: Path | None = Field(
        None, description="directory holding raw experiment directories (only ever read)")
    raw_path: str = Field("", description="path of the raw data below <raw_home>/<experiment>")
    analysis_home: Path | None = Field(
        None, description="directory in which experiments are created "
                          "(empty = the current directory)")
    analysis_path: str = Field(
        "", description="path of the experiment below <analysis_home>/<experiment>")
    outside_roots: list[Path] = Field(
        default_factory=list,
        description="folders outside the experiment and its raw tree that symlinks and "
                    "HDF5 links in them may lead to, comma-separated absolute paths "
                    "(empty: none)")

    @field_validator("outside_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("outside_roots")
    @classmethod
    def _absolute_roots(cls, value: list[Path]) -> list[Path]:
        roots = [Path(v).expanduser() for v in value]
        relative = [str(r) for r in roots if not r.is_absolute()]
        if relative:
            raise ValueError(f"{relative[0]} is not an absolute path")
        return roots

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
            from nxgid.geometry.detectors import check_detector_name

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

class BeamlineSettings(Section):
    """``[beamline]``: how the beamline plugins read the raw tree (the ``spec`` beamline:
    which SPEC file, image folders, and which motors and counters mean what)."""

    plugin: str = Field("", description="beamline plugin that imports scans for `nxgid "
                        "import` and `nxgid watch`: spec, hdf5, images or an installed one "
                        "(`nxgid beamlines`); empty = give --beamline")
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

    @field_validator("spec_file", "image_folder")
    @classmethod
    def _inside_raw_tree(cls, value: str, info: ValidationInfo) -> str:
        # the raw tree is a boundary: a pattern may not climb out of it
        if not value.strip():
            raise ValueError("expected a path pattern relative to the raw directory")
        return _relative_path(value, str(info.field_name), "the raw directory")

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
