"""Reading, validating, merging and writing ``settings.ini`` files.

Two files matter: the *site* file (``$NXGID_HOME/settings.ini``, else the user config
directory) and an experiment's ``tasks/settings.ini``, copied from the site file without
``[server]`` when the experiment is created. Effective values are the model defaults,
overridden by the site file, overridden by the experiment file; :class:`Effective`
remembers where each value came from.

An experiment file may also hold *override sections* ``[reduction SAMPLE]``,
``[reduction SAMPLE/LABEL]`` and ``[reduction SAMPLE/LABEL/SCAN]``, each with the
``[reduction]`` keys it changes for that part of the experiment; :mod:`nxgid.experiment.recipe`
layers them. This module recognises, validates key by key and renders them.

Unknown keys and sections are never dropped: they are kept in the file and reported as
warnings. Writes go to a temporary file that is renamed over the old one, so a crash
leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import configparser
import difflib
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nxgid.errors import ExistsError, InvalidNameError, SettingsError
from nxgid.settings.migration import (
    OVERRIDE_SECTION,
    SCHEMA_SECTION,
    migrate,
    schema_version,
    warn_once,
)
from nxgid.settings.model import (
    SCHEMA_VERSION,
    SECTIONS,
    ExperimentInfo,
    ReductionSettings,
    Section,
    Settings,
    format_value,
)

log = logging.getLogger("nxgid.settings")

SETTINGS_FILENAME = "settings.ini"
EXPERIMENT_SECTION = "experiment"
HOME_ENV = "NXGID_HOME"

def parse_scope(scope: str) -> str:
    """``SAMPLE``, ``SAMPLE/LABEL`` or ``SAMPLE/LABEL/SCAN`` checked against the naming
    rule (surrounding slashes dropped); "" is the whole experiment. Raises
    :class:`InvalidNameError`."""
    from nxgid.names import check_name, check_sample_name  # no import cycle

    text = scope.strip().strip("/")
    if not text:
        return ""
    parts = text.split("/")
    if len(parts) > 3:
        raise InvalidNameError(f"scope {scope!r}: expected SAMPLE, SAMPLE/LABEL or "
                               "SAMPLE/LABEL/SCAN")
    check_sample_name(parts[0])
    for part, kind in zip(parts[1:], ("label", "scan"), strict=False):
        check_name(part, kind)
    return text


def override_scope(section: str) -> str | None:
    """The scope of an override section ``[reduction SCOPE]``; None for any other name."""
    head, sep, scope = section.partition(" ")
    if head != OVERRIDE_SECTION or not sep:
        return None
    try:
        scope = parse_scope(scope)
    except InvalidNameError:
        return None
    return scope or None


def override_section(scope: str) -> str:
    """The section name of the overrides for *scope* ("" is ``[reduction]`` itself)."""
    scope = parse_scope(scope)
    return f"{OVERRIDE_SECTION} {scope}" if scope else OVERRIDE_SECTION


def section_model(section: str) -> type[Section] | None:
    """The model of a section name, override sections included; None if unknown."""
    if section == EXPERIMENT_SECTION:
        return ExperimentInfo
    if section in SECTIONS:
        return SECTIONS[section]
    if override_scope(section) is not None:
        return ReductionSettings
    return None


def _scope_order(section: str) -> tuple[str, ...]:
    return tuple((override_scope(section) or "").split("/"))


def site_directory() -> Path:
    """The site directory: ``$NXGID_HOME`` if set, else the user configuration directory."""
    home = os.environ.get(HOME_ENV, "").strip()
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("nxgid", appauthor=False))


def site_settings_path() -> Path:
    return site_directory() / SETTINGS_FILENAME


def _new_parser() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00defaults")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    return parser


def atomic_write_text(path: Path, text: str) -> None:
    """Write *text* to *path* through a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class SettingsFile:
    """The raw contents of one ``settings.ini``: every key, known or not, as text."""

    path: Path
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Schema version the file was written with (0 = NXRefine layout).
    read_version: int = SCHEMA_VERSION

    @classmethod
    def read(cls, path: Path) -> SettingsFile:
        """Read *path*, migrating an older layout in memory (written back on :meth:`write`)."""
        parser = _new_parser()
        try:
            with path.open(encoding="utf-8") as handle:
                parser.read_file(handle)
        except FileNotFoundError:
            raise SettingsError(f"settings file {path} does not exist") from None
        except OSError as exc:
            raise SettingsError(f"settings file {path} cannot be read: "
                                f"{exc.strerror or exc}") from None
        except (configparser.Error, UnicodeDecodeError) as exc:
            first_line = str(exc).strip().splitlines()[0]
            raise SettingsError(f"settings file {path} is not a valid ini file: {first_line}") \
                from None
        values = {s: dict(parser.items(s)) for s in parser.sections()}
        version = schema_version(path, values)
        if version > SCHEMA_VERSION:
            raise SettingsError(
                f"settings file {path} has schema version {version}; this nxgid reads up to "
                f"{SCHEMA_VERSION}: upgrade nxgid")
        if version < SCHEMA_VERSION:
            values = migrate(values, version, path)
        values.pop(SCHEMA_SECTION, None)
        return cls(path=path, values=values, read_version=version)

    @classmethod
    def read_or_empty(cls, path: Path) -> SettingsFile:
        return cls.read(path) if path.exists() else cls(path=path)

    @property
    def needs_upgrade(self) -> bool:
        return self.read_version < SCHEMA_VERSION

    def get(self, section: str, key: str) -> str | None:
        return self.values.get(section, {}).get(key)

    def set(self, section: str, key: str, value: str) -> None:
        self.values.setdefault(section, {})[key] = value

    def unknown_keys(self) -> Iterator[tuple[str, str | None]]:
        """(section, key) pairs nxgid does not know; key None for a whole unknown section."""
        for section, items in self.values.items():
            model = section_model(section)
            if model is None:
                yield section, None
                continue
            for key in items:
                if key not in model.model_fields:
                    yield section, key

    def warn_unknown(self) -> list[str]:
        """Report unknown keys (once per process) and return the messages."""
        messages = []
        for section, key in self.unknown_keys():
            if key is None:
                messages.append(f"{self.path}: unknown section [{section}] kept, not used")
            else:
                model = section_model(section) or ExperimentInfo
                close = difflib.get_close_matches(key, list(model.model_fields), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                messages.append(f"{self.path}: unknown key [{section}] {key} kept, "
                                f"not used{hint}")
        for message in messages:
            warn_once(message)
        return messages

    def override_sections(self) -> dict[str, str]:
        """Scope -> name of its override section, shallowest scopes first."""
        sections = sorted((s for s in self.values if override_scope(s) is not None),
                          key=_scope_order)
        return {override_scope(s) or "": s for s in sections}

    def render(self) -> str:
        """The file text: known keys in model order with their documentation, then the rest;
        override sections follow ``[reduction]``."""
        lines = [
            "# nxgid settings. Edit with `nxgid settings set SECTION.KEY VALUE`;",
            "# `nxgid settings show` lists every effective value and where it comes from.",
            "",
            f"[{SCHEMA_SECTION}]",
            f"version = {SCHEMA_VERSION}",
        ]
        order = [EXPERIMENT_SECTION]
        for section in SECTIONS:
            order.append(section)
            if section == OVERRIDE_SECTION:
                order += list(self.override_sections().values())
        order += [s for s in self.values if s not in order]
        for section in order:
            items = self.values.get(section)
            if items is None:
                continue
            lines += ["", f"[{section}]"]
            model = section_model(section)
            known = [k for k in (model.model_fields if model else []) if k in items]
            for key in known:
                doc = model.describe(key) if model else ""
                if doc:
                    lines.append(f"# {doc}")
                lines.append(f"{key} = {items[key]}")
            for key in items:
                if key not in known:
                    lines.append(f"{key} = {items[key]}")
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        atomic_write_text(self.path, self.render())
        self.read_version = SCHEMA_VERSION


# --- validation ---------------------------------------------------------------------


def _known_items(file: SettingsFile, section: str, model: type[Section]) -> dict[str, str]:
    return {k: v for k, v in file.values.get(section, {}).items() if k in model.model_fields}


def _validation_error(exc: ValidationError, section: str, raw: Mapping[str, str],
                      origins: Mapping[str, str]) -> SettingsError:
    err = exc.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["loc"]:
        key = str(err["loc"][0])
        where = origins.get(key, "settings")
        prefix = f"{where}: " if where else ""
        return SettingsError(f"{prefix}[{section}] {key} = {raw.get(key, '')!r}: {msg}")
    files = sorted(set(origins.values())) or ["settings"]
    return SettingsError(f"{', '.join(files)}: [{section}]: {msg}")


def validate_section(section: str, raw: Mapping[str, str], origins: Mapping[str, str],
                     *, check_detector: bool = False) -> Section:
    """Validate the raw text values of one section (an override section validates as
    ``[reduction]``); errors name file, section, key, value."""
    model = section_model(section)
    if model is None or model is ExperimentInfo:
        raise KeyError(section)
    try:
        return model.model_validate(dict(raw), context={"check_detector": check_detector})
    except ValidationError as exc:
        raise _validation_error(exc, section, raw, origins) from None


def validate_file(file: SettingsFile, *, check_detector: bool = False) -> None:
    """Validate every known key of one file on its own."""
    for section, model in SECTIONS.items():
        raw = _known_items(file, section, model)
        origins = dict.fromkeys(raw, str(file.path))
        validate_section(section, raw, origins, check_detector=check_detector)
    for section in file.override_sections().values():
        raw = _known_items(file, section, ReductionSettings)
        validate_section(section, raw, dict.fromkeys(raw, str(file.path)))


def read_experiment_info(file: SettingsFile) -> ExperimentInfo:
    raw = file.values.get(EXPERIMENT_SECTION)
    if not raw:
        raise SettingsError(f"settings file {file.path} has no [experiment] section: "
                            "expected the settings of an nxgid experiment")
    try:
        return ExperimentInfo.model_validate(
            {k: v for k, v in raw.items() if k in ExperimentInfo.model_fields})
    except ValidationError as exc:
        raise _validation_error(exc, EXPERIMENT_SECTION, raw,
                                dict.fromkeys(raw, str(file.path))) from None


# --- effective settings -------------------------------------------------------------


@dataclass(frozen=True)
class Effective:
    """Effective settings with the origin of every value."""

    settings: Settings
    #: (section, key) -> "default" or the path of the file the value came from.
    origins: dict[tuple[str, str], str]
    site_file: SettingsFile
    experiment_file: SettingsFile | None = None

    def rows(self) -> Iterator[tuple[str, str, str, str]]:
        """(section, key, value as written, origin) for every known key."""
        for section, model in SECTIONS.items():
            values = self.settings.section(section)
            for key in model.model_fields:
                value = format_value(getattr(values, key))
                yield section, key, value, self.origins[(section, key)]


def load_effective(site_path: Path | None = None,
                   experiment_settings: Path | None = None) -> Effective:
    """Merge defaults, the site file and (optionally) an experiment's ``tasks/settings.ini``."""
    site = SettingsFile.read_or_empty(site_path or site_settings_path())
    layers = [site]
    experiment = None
    if experiment_settings is not None:
        experiment = SettingsFile.read(experiment_settings)
        layers.append(experiment)
    for section in site.override_sections().values():
        warn_once(f"{site.path}: [{section}] kept, not used: override sections apply only "
                   "in an experiment's tasks/settings.ini")
    for layer in layers:
        layer.warn_unknown()
        if layer.needs_upgrade:
            warn_once(f"{layer.path} uses settings schema {layer.read_version}; it is read as "
                       f"schema {SCHEMA_VERSION} and upgraded when next written "
                       "(`nxgid settings upgrade`)")
    sections: dict[str, Any] = {}
    origins: dict[tuple[str, str], str] = {}
    for section, model in SECTIONS.items():
        raw: dict[str, str] = {}
        key_origin: dict[str, str] = {}
        for layer in layers:
            if layer is experiment and section == "server":
                continue  # [server] is site-wide by design
            for key, value in _known_items(layer, section, model).items():
                raw[key] = value
                key_origin[key] = str(layer.path)
        sections[section] = validate_section(section, raw, key_origin)
        for key in model.model_fields:
            origins[(section, key)] = key_origin.get(key, "default")
    return Effective(Settings(**sections), origins, site, experiment)


def resolve_key(dotted: str) -> tuple[str, str]:
    """Split ``SECTION.KEY``, checking both exist; suggests the closest names otherwise."""
    section, sep, key = dotted.partition(".")
    if not sep or not section or not key:
        raise SettingsError(f"setting {dotted!r}: expected SECTION.KEY, "
                            "e.g. configuration.wavelength_A")
    if section not in SECTIONS:
        close = difflib.get_close_matches(section, list(SECTIONS), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise SettingsError(f"unknown settings section {section!r}: expected one of "
                            f"{', '.join(SECTIONS)}{hint}")
    fields = SECTIONS[section].model_fields
    if key not in fields:
        close = difflib.get_close_matches(key, list(fields), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise SettingsError(f"unknown key {key!r} in [{section}]{hint}")
    return section, key


def normalise_value(section: str, key: str, value: str, *, check_detector: bool = True) -> str:
    """Validate one value on its own and return it as it will be written."""
    model = SECTIONS[section]
    defaults = model()
    raw = {k: format_value(getattr(defaults, k)) for k in model.model_fields}
    raw[key] = value
    try:
        validated = model.model_validate(raw, context={"check_detector": check_detector})
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["loc"] and err["loc"][0] != key:
            raise _validation_error(exc, section, raw, {}) from None
        if not err["loc"]:
            # Cross-field rules are checked when the value is merged with the others.
            return value
        raise _validation_error(exc, section, {key: value}, {key: ""}) from None
    return format_value(getattr(validated, key))


def set_values(file: SettingsFile, changes: Iterable[tuple[str, str, str]],
               *, others: SettingsFile | None = None) -> list[str]:
    """Set several ``(section, key, value)`` in *file*, validated together; write atomically.

    Rules spanning keys (e.g. the direction of the phi scan) are checked on the effective
    values, so related keys can change in one step. *others* is the layer below (the site
    file when *file* is an experiment's). Returns the values as written. Nothing is
    written when any value is invalid.
    """
    changes = list(changes)
    written = [normalise_value(section, key, value) for section, key, value in changes]
    for section in dict.fromkeys(section for section, _, _ in changes):
        model = SECTIONS[section]
        merged: dict[str, str] = {}
        origins: dict[str, str] = {}
        for layer in (others, file):
            if layer is None:
                continue
            for k, v in _known_items(layer, section, model).items():
                merged[k], origins[k] = v, str(layer.path)
        for (sec, key, _), value in zip(changes, written, strict=True):
            if sec == section:
                merged[key], origins[key] = value, str(file.path)
        validate_section(section, merged, origins)
    for (section, key, _), value in zip(changes, written, strict=True):
        file.set(section, key, value)
    file.write()
    return written


def set_value(file: SettingsFile, section: str, key: str, value: str,
              *, others: SettingsFile | None = None) -> str:
    """Set one value (see :func:`set_values`); returns it as written."""
    return set_values(file, [(section, key, value)], others=others)[0]


def default_values() -> dict[str, dict[str, str]]:
    """Every known key with its default value, as written to a file."""
    return {
        section: {k: format_value(getattr(model(), k)) for k in model.model_fields}
        for section, model in SECTIONS.items()
    }


def create_site_file(path: Path, values: Mapping[str, Mapping[str, str]],
                     *, overwrite: bool = False) -> SettingsFile:
    """Create the site file from defaults overridden by *values* (validated first)."""
    if path.exists() and not overwrite:
        raise ExistsError(f"site settings {path} already exist: change values with "
                          "`nxgid settings set SECTION.KEY VALUE`, or pass --overwrite")
    file = SettingsFile(path=path, values=default_values())
    for section, items in values.items():
        for key, value in items.items():
            file.set(section, key, normalise_value(section, key, value))
    validate_file(file)
    file.write()
    return file


def create_experiment_file(path: Path, site: SettingsFile, info: ExperimentInfo) -> SettingsFile:
    """An experiment's settings: the site file's sections without ``[server]``, plus identity."""
    values: dict[str, dict[str, str]] = {
        EXPERIMENT_SECTION: {k: format_value(v) for k, v in info.model_dump().items()}
    }
    defaults = default_values()
    for section in [*SECTIONS, *site.values]:
        if section in ("server", EXPERIMENT_SECTION) or section in values \
                or override_scope(section) is not None:
            continue
        values[section] = {**defaults.get(section, {}), **site.values.get(section, {})}
    file = SettingsFile(path=path, values=values)
    file.write()
    return file
