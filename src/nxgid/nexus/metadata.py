"""Sample and experiment metadata: typed models, YAML files, NeXus groups.

A sample has a name, a description and its film layers from top to bottom (the last is
usually the substrate); experiment metadata names facility, beamline, proposal and users.
Both come from YAML (``sample.yaml``, ``experiment.yaml`` of ``nxgid examples``), as two files
or one with ``sample:`` and ``experiment:`` sections. Lengths are kept in nm, densities
in g/cm³; YAML may say ``thickness_nm: 50`` or ``thickness: 50 nm`` (``0.05 um``,
``500 angstrom``, …). Errors are one line: file, key path (list indices from 0), what
was expected.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from datetime import date, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nxgid.errors import MissingError, NxgidError

# NeXus vocabulary used here (may move to nxgid.names).
NX_CLASS, UNITS = "NX_class", "units"
NXSAMPLE, NXSAMPLE_COMPONENT, NXCOLLECTION = "NXsample", "NXsample_component", "NXcollection"
NXUSER, NXINSTRUMENT, NXSOURCE = "NXuser", "NXinstrument", "NXsource"
NAME, DESCRIPTION, CHEMICAL_FORMULA = "name", "description", "chemical_formula"
PREPARATION_DATE, NOTES, SEQUENCE_INDEX = "preparation_date", "notes", "sequence_index"
THICKNESS, DENSITY, ROUGHNESS = "thickness", "density", "roughness"
LAYER_PREFIX, USER_PREFIX = "layer_", "user_"  # layer_1 (top), layer_2, …; user_1, …
EXPERIMENT_IDENTIFIER, TITLE, INSTRUMENT, SOURCE = (
    "experiment_identifier", "title", "instrument", "source")
ROLE, AFFILIATION, EMAIL, ORCID, FACILITY_USER_ID = (
    "role", "affiliation", "email", "ORCID", "facility_user_id")
LENGTH_UNIT, DENSITY_UNIT = "nm", "g/cm^3"  # pint-compatible @units
SAMPLE_KEY, EXPERIMENT_KEY = "sample", "experiment"  # sections of a combined YAML file

# Unit -> factor to nm / g/cm³. Keys are NFKC-normalised (µ micro sign -> μ, Å -> Å).
_LENGTH_NM = {"nm": 1.0, "nanometer": 1.0, "um": 1e3, "\u03bcm": 1e3, "micrometer": 1e3,
              "angstrom": 0.1, "\u00c5": 0.1, "A": 0.1, "mm": 1e6, "millimeter": 1e6,
              "m": 1e9, "meter": 1e9}
_DENSITY_G_CM3 = {"g/cm3": 1.0, "g/cm^3": 1.0, "g/cm**3": 1.0, "kg/m3": 1e-3, "kg/m^3": 1e-3}
_QUANTITIES = {"length": (_LENGTH_NM, "50 nm"), "density": (_DENSITY_G_CM3, "1.3 g/cm3")}
_NUMBER_UNIT = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*")
_ORCID = re.compile(r"(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])")


def to_canonical(value: float, unit: str, kind: str) -> float:
    """*value* in *unit* converted to nm (*kind* ``"length"``) or g/cm³ (``"density"``)."""
    table, unit = _QUANTITIES[kind][0], unicodedata.normalize("NFKC", unit.strip())
    factor = table.get(unit, table.get(unit.lower()))
    if factor is None:
        raise ValueError(f"unknown {kind} unit {unit!r}; expected one of: {', '.join(table)}")
    return float(f"{value * factor:.12g}")  # 0.05 um -> 50.0, not 50.00000000000001


def parse_quantity(value: Any, kind: str, unit_required: bool = False) -> float:
    """``'50 nm'`` -> 50.0 (nm), ``'1.3 g/cm3'`` -> 1.3 (g/cm³); bare numbers are canonical."""
    table, example = _QUANTITIES[kind]
    match = _NUMBER_UNIT.fullmatch(value) if isinstance(value, str) else None
    if (isinstance(value, int | float) and not isinstance(value, bool)) or (match and not match[2]):
        if unit_required:
            raise ValueError(f"{value!r} has no unit; expected e.g. {example!r}")
        return float(match[1] if match else value)
    try:
        return to_canonical(float(match[1]), match[2], kind)  # type: ignore[index]
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a {kind}; expected e.g. {example!r} "
                         f"(units: {', '.join(table)})") from None


class _WithUnit:
    """A value given under a key without unit (``thickness``): it must carry a unit."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True,
                              coerce_numbers_to_str=True, validate_assignment=True)

    @field_validator("layers", "users", "notes", mode="before", check_fields=False)
    @classmethod
    def _none_is_empty(cls, value: Any, info: ValidationInfo) -> Any:
        return ({} if info.field_name == NOTES else []) if value is None else value

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable values, unset ones left out (for printing)."""
        return self.model_dump(mode="json", exclude_none=True)


def _quantity_field(key: str, **limits: float) -> Any:
    return Field(None, validation_alias=AliasChoices(key, key.split("_")[0]), **limits)


class Layer(_Model):
    """One film layer. ``thickness``, ``density``, ``roughness`` in YAML carry units."""

    material: str = Field(min_length=1, description="material name, e.g. pentacene")
    chemical_formula: str | None = Field(None, description="e.g. C22H14")
    thickness_nm: float | None = _quantity_field("thickness_nm", gt=0)
    density_g_cm3: float | None = _quantity_field("density_g_cm3", gt=0)
    roughness_nm: float | None = _quantity_field("roughness_nm", ge=0)  # of the top interface
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _mark_unit_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for canonical in ("thickness_nm", "density_g_cm3", "roughness_nm"):
            key = canonical.split("_")[0]
            if key in data and canonical in data:
                raise ValueError(f"give {key} (with unit) or {canonical}, not both")
            if key in data:
                data[key] = _WithUnit(data[key])
        return data

    @field_validator("thickness_nm", "density_g_cm3", "roughness_nm", mode="before")
    @classmethod
    def _quantity(cls, value: Any, info: ValidationInfo) -> float | None:
        raw = value.value if isinstance(value, _WithUnit) else value
        kind = "density" if info.field_name == "density_g_cm3" else "length"
        return None if raw is None else parse_quantity(raw, kind, isinstance(value, _WithUnit))


class SampleInfo(_Model):
    """A sample; ``layers`` run from the top (surface) down, the last is the substrate."""

    name: str = Field(min_length=1)
    description: str | None = None
    chemical_formula: str | None = None
    preparation_date: str | None = Field(None, description="ISO date, e.g. 2024-03-15")
    layers: list[Layer] = Field(default_factory=list, description="top to bottom")
    notes: dict[str, str | float | int | bool] = Field(
        default_factory=dict, description="free extra values, e.g. annealing temperature")

    @field_validator("preparation_date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if isinstance(value, date):  # YAML reads 2024-03-15 as a date
            return value.isoformat()
        try:
            if isinstance(value, str):
                (date if len(value.strip()) == 10 else datetime).fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date; expected e.g. '2024-03-15'") from None
        return value

    @field_validator("notes", mode="before")
    @classmethod
    def _scalar_notes(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        notes = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key or "/" in key or key in {".", ".."}:
                raise ValueError(f"note name {key!r}: expected text without '/'")
            item = item.isoformat() if isinstance(item, date) else item
            if not isinstance(item, str | int | float | bool):
                raise ValueError(f"note {key!r}: expected a single text, number or "
                                 f"true/false, got {type(item).__name__}")
            notes[key] = item
        return notes


class User(_Model):
    """A person on the experiment (NeXus NXuser); the ORCID check digit is verified."""

    name: str = Field(min_length=1)
    affiliation: str | None = None
    email: str | None = None
    role: str | None = Field(None, description="e.g. PI, local contact")
    orcid: str | None = Field(None, description="0000-0000-0000-000X")
    facility_user_id: str | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @field_validator("orcid")
    @classmethod
    def _orcid(cls, value: str | None) -> str | None:
        if not value:
            return value
        match, total = _ORCID.fullmatch(value), 0
        for digit in match[1].replace("-", "")[:-1] if match else "":
            total = (total + int(digit)) * 2
        if not match or match[1][-1] != "0123456789X"[(12 - total % 11) % 11]:
            raise ValueError(f"{value!r} is not an ORCID; expected e.g. '0000-0002-1825-0097'")
        return match[1]


class ExperimentInfo(_Model):
    """Facility, beamline, proposal, title and users of an experiment."""

    facility: str | None = Field(None, description="e.g. ESRF")
    beamline: str | None = Field(None, description="e.g. ID10")
    proposal: str | None = Field(None, description="proposal or experiment identifier")
    title: str | None = None
    users: list[User] = Field(default_factory=list)


# ---------------------------------------------------------------- validation and YAML

def _keys(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts, aliases included."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        keys += [str(a) for a in alias.choices] if isinstance(alias, AliasChoices) else [name]
    return keys


def _message(exc: ValidationError, where: str, model: type[BaseModel], prefix: str) -> str:
    errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
    first = errors[0]  # an unknown key (a typo) explains most other errors
    loc = ([prefix] if prefix else []) + list(first["loc"])
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if first["type"] == "extra_forbidden":
        parent = next((p for p in reversed(first["loc"][:-1]) if isinstance(p, str)), "")
        allowed = _keys({"layers": Layer, "users": User}.get(parent, model))
        close = difflib.get_close_matches(str(first["loc"][-1]), allowed, n=1)
        text = "unknown key; " + (f"did you mean {close[0]!r}?" if close else
                                  "expected one of: " + ", ".join(allowed))
    elif first["type"] == "value_error":
        text = str(first.get("ctx", {}).get("error", first["msg"]))
    else:
        text = first["msg"][0].lower() + first["msg"][1:]
        if isinstance(first.get("input"), str | int | float) and first["type"] != "missing":
            text += f" (got {first['input']!r})"
    more = f" (and {len(errors) - 1} more error{'s' * (len(errors) > 2)})" * (len(errors) > 1)
    return f"{where}: {path or 'top level'}: {text}{more}".replace("\n", " ")


def _validate(model: type[_Model], data: Any, where: str, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        kind = "an empty file" if data is None and not prefix else type(data).__name__
        raise NxgidError(f"{where}: {prefix + ': ' if prefix else ''}expected a mapping of "
                         f"keys, got {kind}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise NxgidError(_message(exc, where, model, prefix)) from None


def _load(path: str | Path, want: str | None) -> tuple[SampleInfo | None, ExperimentInfo | None]:
    try:
        return _load_unguarded(Path(path), want)
    except RecursionError:
        raise NxgidError(f"{path}: nested too deeply to be sample or experiment metadata "
                         "(a metadata file is a few levels of mappings and lists)") from None


def _load_unguarded(path: Path, want: str | None
                    ) -> tuple[SampleInfo | None, ExperimentInfo | None]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingError(f"{path}: no such file") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise NxgidError(f"{path}: {where}invalid YAML: {exc.problem or exc}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise NxgidError(f"{path}: cannot read: {exc}".replace("\n", " ")) from None
    where = str(path)
    if isinstance(data, dict) and (SAMPLE_KEY in data or EXPERIMENT_KEY in data):
        extra = [str(key) for key in data if key not in (SAMPLE_KEY, EXPERIMENT_KEY)]
        if extra:
            raise NxgidError(f"{where}: {extra[0]}: unknown top-level key; a file with "
                             "'sample:' or 'experiment:' sections holds only those two")
        sample, experiment = data.get(SAMPLE_KEY), data.get(EXPERIMENT_KEY)
        return (None if sample is None else _validate(SampleInfo, sample, where, SAMPLE_KEY),
                None if experiment is None else
                _validate(ExperimentInfo, experiment, where, EXPERIMENT_KEY))
    if want is None and isinstance(data, dict):  # a bare mapping: decide by its keys
        keys = set(data)
        want = "experiment" if keys & set(_keys(ExperimentInfo)) and not \
            keys & set(_keys(SampleInfo)) else "sample"
    if want == "experiment":
        return None, _validate(ExperimentInfo, data, where)
    return _validate(SampleInfo, data, where), None


def load_metadata_yaml(path: str | Path) -> tuple[SampleInfo | None, ExperimentInfo | None]:
    """Sample and experiment metadata from one YAML file (either may be ``None``)."""
    return _load(path, None)


def load_sample_yaml(path: str | Path) -> SampleInfo:
    """A bare sample mapping, or the ``sample:`` section of a combined file."""
    sample = _load(path, SAMPLE_KEY)[0]
    if sample is None:
        raise NxgidError(f"{path}: no 'sample:' section")
    return sample


def load_experiment_yaml(path: str | Path) -> ExperimentInfo:
    """A bare experiment mapping, or the ``experiment:`` section of a combined file."""
    experiment = _load(path, EXPERIMENT_KEY)[1]
    if experiment is None:
        raise NxgidError(f"{path}: no 'experiment:' section")
    return experiment


# ---------------------------------------------------------------- NeXus groups

_LAYER, _USER = re.compile(rf"{LAYER_PREFIX}(\d+)"), re.compile(rf"{USER_PREFIX}(\d+)")
_SAMPLE_FIELDS = (NAME, DESCRIPTION, CHEMICAL_FORMULA, PREPARATION_DATE)
_LAYER_FIELDS = ((NAME, "material", None), (CHEMICAL_FORMULA, "chemical_formula", None),
                 (THICKNESS, "thickness_nm", "length"), (DENSITY, "density_g_cm3", "density"),
                 (ROUGHNESS, "roughness_nm", "length"), (DESCRIPTION, "description", None))
_UNIT_OF = {"length": LENGTH_UNIT, "density": DENSITY_UNIT, None: None}
_USER_FIELDS = {NAME: "name", ROLE: "role", AFFILIATION: "affiliation", EMAIL: "email",
                ORCID: "orcid", FACILITY_USER_ID: "facility_user_id"}  # NeXus -> User


def _put(group: h5py.Group, name: str, value: Any, units: str | None = None) -> None:
    """Write a scalar field, replacing one of that name; ``None`` writes nothing."""
    if value is None:
        return
    if name in group:
        del group[name]
    if isinstance(value, str):
        group.create_dataset(name, data=value, dtype=h5py.string_dtype())
    else:
        kind = np.bool_ if isinstance(value, bool) else np.int64 if isinstance(value, int) \
            else np.float64
        group.create_dataset(name, data=kind(value))
    if units:
        group[name].attrs[UNITS] = units


def _get(group: h5py.Group | None, name: str, kind: str | None = None) -> Any:
    """A scalar field as a Python value (``None`` if absent); *kind* converts to nm, g/cm³."""
    item = group.get(name) if group is not None else None
    if not isinstance(item, h5py.Dataset):
        return None
    value = item[()]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size == 1 else None
    value = value.item() if isinstance(value, np.generic) else value
    value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    units = item.attrs.get(UNITS)
    units = units.decode() if isinstance(units, bytes) else units
    if kind and value is not None and units:
        try:
            return to_canonical(float(value), str(units), kind)
        except ValueError as exc:
            raise NxgidError(f"{item.file.filename}:{item.name}: {exc}") from None
    return value


def _numbered(group: h5py.Group, pattern: re.Pattern[str]) -> list[tuple[int, h5py.Group]]:
    """Subgroups named like *pattern* (``layer_<N>``), with their N, sorted by N."""
    return sorted(((int(match[1]), sub) for key, sub in group.items()
                   if (match := pattern.fullmatch(key)) and isinstance(sub, h5py.Group)),
                  key=lambda item: item[0])


def _subgroup(parent: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    if name not in parent:
        parent.create_group(name).attrs[NX_CLASS] = nx_class
    return parent[name]


def write_sample(group: h5py.Group, sample: SampleInfo) -> None:
    """Fill an NXsample group, replacing the sample fields, ``notes`` and ``layer_*``.

    Other fields in the group (e.g. a per-scan ``temperature``) are left alone.
    """
    if NX_CLASS not in group.attrs:
        group.attrs[NX_CLASS] = NXSAMPLE
    for key in [*_SAMPLE_FIELDS, NOTES] + [sub.name for _, sub in _numbered(group, _LAYER)]:
        if key in group:
            del group[key]
    for key in _SAMPLE_FIELDS:
        _put(group, key, getattr(sample, key))
    if sample.notes:
        notes = _subgroup(group, NOTES, NXCOLLECTION)
        for key, value in sample.notes.items():
            _put(notes, key, value)
    for index, layer in enumerate(sample.layers, 1):
        sub = _subgroup(group, f"{LAYER_PREFIX}{index}", NXSAMPLE_COMPONENT)
        for field, attribute, kind in _LAYER_FIELDS:
            _put(sub, field, getattr(layer, attribute), _UNIT_OF[kind])
        _put(sub, SEQUENCE_INDEX, index)


def read_sample(group: h5py.Group) -> SampleInfo:
    """The sample metadata of an NXsample group (foreign fields are ignored)."""
    layers = []
    for number, sub in _numbered(group, _LAYER):
        values = {attribute: _get(sub, field, kind) for field, attribute, kind in _LAYER_FIELDS}
        values["material"] = values["material"] or f"{LAYER_PREFIX}{number}"
        order = _get(sub, SEQUENCE_INDEX)
        layers.append((number if order is None else int(order), values))
    notes = group.get(NOTES)
    data: dict[str, Any] = {key: _get(group, key) for key in _SAMPLE_FIELDS}
    data = {key: value for key, value in data.items() if value is not None}
    data["layers"] = [values for _, values in sorted(layers, key=lambda item: item[0])]
    data["notes"] = {key: value for key in notes if (value := _get(notes, key)) is not None} \
        if isinstance(notes, h5py.Group) else {}
    return _validate(SampleInfo, data, f"{group.file.filename}:{group.name}")


def write_experiment(entry: h5py.Group, info: ExperimentInfo) -> None:
    """Write experiment metadata into an NXentry, replacing ``user_*`` groups.

    ``experiment_identifier`` is replaced; ``title`` is written only if the entry has
    none; facility and beamline, when set, replace ``instrument/source/name`` and
    ``instrument/name`` (other fields there are left alone).
    """
    for key in [EXPERIMENT_IDENTIFIER] + [sub.name for _, sub in _numbered(entry, _USER)]:
        if key in entry:
            del entry[key]
    _put(entry, EXPERIMENT_IDENTIFIER, info.proposal)
    if TITLE not in entry:
        _put(entry, TITLE, info.title)
    if info.beamline is not None or info.facility is not None:
        instrument = _subgroup(entry, INSTRUMENT, NXINSTRUMENT)
        _put(instrument, NAME, info.beamline)
        if info.facility is not None:
            _put(_subgroup(instrument, SOURCE, NXSOURCE), NAME, info.facility)
    for index, user in enumerate(info.users, 1):
        group = _subgroup(entry, f"{USER_PREFIX}{index}", NXUSER)
        for field, attribute in _USER_FIELDS.items():
            _put(group, field, getattr(user, attribute))


def read_experiment(entry: h5py.Group) -> ExperimentInfo:
    """The experiment metadata of an NXentry (see :func:`write_experiment`)."""
    users = []
    for _, group in _numbered(entry, _USER):
        values = {attribute: _get(group, field) for field, attribute in _USER_FIELDS.items()}
        values["orcid"] = values["orcid"] or _get(group, "orcid")
        users.append({key: value for key, value in values.items() if value is not None})
    data = {"proposal": _get(entry, EXPERIMENT_IDENTIFIER), "title": _get(entry, TITLE),
            "beamline": _get(entry, f"{INSTRUMENT}/{NAME}"),
            "facility": _get(entry, f"{INSTRUMENT}/{SOURCE}/{NAME}"), "users": users}
    return _validate(ExperimentInfo, data, f"{entry.file.filename}:{entry.name}")
