"""Reduction recipes: how a scan is reduced, with overrides per sample, label and scan.

A recipe is the ``[reduction]`` section of the settings (:class:`ReductionSettings`).
An experiment's ``tasks/settings.ini`` may refine it for part of the experiment with
override sections holding only the keys they change::

    [reduction]
    outputs = img_gid_q, vert_cut_gid
    [reduction film1]
    img_gid_q = q_xy=-2.4:2.4:800, q_z=-0.2:2.6:467
    [reduction film1/anneal/12]
    vert_cut_gid = q_z=0:2.5:250, cut=1.28:1.38

The effective recipe of a scan is, from weakest to strongest: the model defaults, the
site file's ``[reduction]``, the experiment's ``[reduction]``, then ``[reduction SAMPLE]``,
``[reduction SAMPLE/LABEL]`` and ``[reduction SAMPLE/LABEL/SCAN]``. Its SHA-256 (of the
canonical JSON of every key's value as written to ``settings.ini``) identifies it: equal
recipes have equal hashes however their files spell the values.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from nxgid.errors import SettingsError
from nxgid.nexus.entries import recipe_hash  # the hash lives with the record it hashes
from nxgid.settings.model import MASK_SOURCES, ReductionSettings, correction_items, format_value
from nxgid.settings.store import (
    OVERRIDE_SECTION,
    Effective,
    SettingsFile,
    _known_items,
    _validation_error,
    override_section,
    parse_scope,
)

if TYPE_CHECKING:
    from nxgid.conversion.converter import TargetSpec
    from nxgid.conversion.corrections import Corrections
    from nxgid.experiment.layout import Experiment, ScanRef

RECIPE_SECTION = OVERRIDE_SECTION
#: Origins of recipe values besides override section names.
DEFAULT, SITE, EXPERIMENT = "default", "site", "experiment"


def scope_section(scope: str) -> str:
    """The section holding the recipe of *scope*: "" → ``reduction``,
    ``s/l`` → ``reduction s/l``. Raises :class:`InvalidNameError` for a bad scope."""
    return override_section(scope)


def _scope_text(scope: ScanRef | str | None) -> str:
    return parse_scope("" if scope is None else str(scope))


def _ancestors(scope: str) -> list[str]:
    """Non-empty scopes from the sample down to *scope* itself: ``a/b`` → [a, a/b]."""
    parts = scope.split("/") if scope else []
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _within(scope: str, parent: str) -> bool:
    return not parent or scope == parent or scope.startswith(parent + "/")


@dataclass(frozen=True)
class Recipe:
    """The effective recipe of a scope, with the origin of every value."""

    values: ReductionSettings
    #: key -> "default", "site", "experiment" or the override section it came from.
    origins: dict[str, str]
    #: What it was resolved for: "" (the experiment) or SAMPLE[/LABEL[/SCAN]].
    scope: str

    def as_dict(self) -> dict[str, str]:
        """Every key with its value as written to ``settings.ini`` (canonical text)."""
        return {key: format_value(getattr(self.values, key))
                for key in ReductionSettings.model_fields}

    @property
    def sha256(self) -> str:
        """The recipe hash (:func:`recipe_hash` of :meth:`as_dict`)."""
        return recipe_hash(self.as_dict())

    def targets(self) -> list[TargetSpec]:
        """One target per output, with the ranges, bins and cut of its axes key."""
        from nxgid.conversion.converter import TargetSpec

        specs = []
        for name in self.values.outputs:
            axes = self.values.axes(name)
            specs.append(TargetSpec(name, ranges=dict(axes.ranges), bins=dict(axes.bins),
                                    cut=axes.cut))
        return specs

    def corrections(self, polarization_factor: float) -> Corrections:
        """The corrections; a bare ``polarization`` item uses *polarization_factor* (the
        configuration's)."""
        from nxgid.conversion.corrections import parse_corrections

        items = correction_items(self.values.corrections)
        if "polarization" in items and not items["polarization"]:
            items["polarization"] = repr(float(polarization_factor))
        text = ", ".join(f"{k}={v}" if v else k for k, v in items.items()) or "none"
        return parse_corrections(text)

    def fixed_incidence_deg(self) -> float | None:
        """The incidence angle when the recipe fixes it to a number of degrees, else None
        (``auto``, ``log``, ``configuration``)."""
        try:
            return float(self.values.incidence_angle)
        except ValueError:
            return None

    def image_path(self, key: str, root: Path) -> Path | None:
        """The file named by ``mask``, ``dark`` or ``flat``, relative paths taken from the
        experiment *root*; None when the key names none (empty, or a mask keyword)."""
        if key not in ("mask", "dark", "flat"):
            raise ValueError(f"{key!r} is not an image key: expected mask, dark or flat")
        value = getattr(self.values, key)
        if not value or (key == "mask" and value in MASK_SOURCES):
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(root) / path


# --- resolving ----------------------------------------------------------------------

#: One layer of a recipe: (origin label, file, section name).
_Layer = tuple[str, SettingsFile, str]


def _experiment_file(experiment: Experiment, effective: Effective) -> SettingsFile:
    file = effective.experiment_file
    if file is not None and file.path.resolve() == experiment.settings_file.resolve():
        return file
    return SettingsFile.read(experiment.settings_file)


def _layers(site: SettingsFile, experiment_file: SettingsFile, scope: str) -> list[_Layer]:
    layers: list[_Layer] = [(SITE, site, RECIPE_SECTION),
                            (EXPERIMENT, experiment_file, RECIPE_SECTION)]
    sections = experiment_file.override_sections()
    for ancestor in _ancestors(scope):
        if ancestor in sections:
            layers.append((sections[ancestor], experiment_file, sections[ancestor]))
    return layers


def _resolve(layers: Iterable[_Layer], scope: str) -> Recipe:
    """Merge the layers and validate; an error names the file, section, key and value."""
    raw: dict[str, str] = {}
    where: dict[str, tuple[str, SettingsFile, str]] = {}
    for label, file, section in layers:
        for key, value in _known_items(file, section, ReductionSettings).items():
            raw[key] = value
            where[key] = (label, file, section)
    try:
        values = ReductionSettings.model_validate(raw)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        key = str(loc[0]) if loc else ""
        section = where[key][2] if key in where else scope_section(scope)
        origins = {k: str(file.path) for k, (_, file, _) in where.items()}
        raise _validation_error(exc, section, raw, origins) from None
    origins = {key: where[key][0] if key in where else DEFAULT
               for key in ReductionSettings.model_fields}
    site = next((file for label, file, _ in layers if label == SITE), None)
    if site is not None:
        _name_seeded_values(origins, values, _known_items(site, RECIPE_SECTION,
                                                          ReductionSettings))
    return Recipe(values=values, origins=origins, scope=scope)


def _name_seeded_values(origins: dict[str, str], values: ReductionSettings,
                        site_raw: Mapping[str, str]) -> None:
    """A new experiment's [reduction] is seeded with every value of the site's (or the
    default), so "experiment" alone would hide where a value came from: one equal to the
    default says ``experiment (= default)``, one equal to the site's ``experiment (=
    site)``, and a bare ``experiment`` is a value chosen for this experiment."""
    defaults = ReductionSettings()

    def parsed(key: str, text: str):
        try:
            return getattr(ReductionSettings.model_validate({key: text}), key)
        except ValidationError:
            return None

    for key, origin in origins.items():
        if origin != EXPERIMENT:
            continue
        value = getattr(values, key)
        if value == getattr(defaults, key):
            origins[key] = f"{EXPERIMENT} (= {DEFAULT})"
        elif key in site_raw and parsed(key, site_raw[key]) == value:
            origins[key] = f"{EXPERIMENT} (= {SITE})"


def effective_recipe(experiment: Experiment, effective: Effective,
                     scope: ScanRef | str | None = None) -> Recipe:
    """The recipe of *scope* (a scan, ``SAMPLE[/LABEL[/SCAN]]``, or None/"" for the
    experiment): ``effective`` (``load_effective(site, experiment.settings_file)``) with
    the experiment's override sections for the scope on top."""
    text = _scope_text(scope)
    layers = _layers(effective.site_file, _experiment_file(experiment, effective), text)
    return _resolve(layers, text)


def recipe_scopes(effective: Effective) -> list[str]:
    """Scopes with an override section in the experiment file, shallowest first."""
    if effective.experiment_file is None:
        return []
    return list(effective.experiment_file.override_sections())


# --- editing ------------------------------------------------------------------------


def _check_key(key: str) -> str:
    fields = ReductionSettings.model_fields
    if key not in fields:
        close = difflib.get_close_matches(key, list(fields), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise SettingsError(f"unknown recipe key {key!r}{hint}")
    return key


def _normalise(section: str, key: str, value: str) -> str:
    """One value validated on its own, as it will be written."""
    try:
        validated = ReductionSettings.model_validate({key: value})
    except ValidationError as exc:
        raise _validation_error(exc, section, {key: value}, {key: ""}) from None
    return format_value(getattr(validated, key))


def _check_affected(site: SettingsFile, file: SettingsFile, scope: str) -> None:
    """Validate the recipe of *scope* and of every override scope below it."""
    scopes = [scope, *(s for s in file.override_sections() if _within(s, scope) and s != scope)]
    for each in scopes:
        _resolve(_layers(site, file, each), each)


def set_recipe(experiment: Experiment, effective: Effective, scope: str,
               pairs: list[tuple[str, str]]) -> list[str]:
    """Set recipe keys for *scope* ("" = the experiment's ``[reduction]``) and write the
    experiment's settings atomically; returns the values as written.

    Values are validated one by one, then merged with every layer below (site,
    experiment, the scope's ancestors) so the resulting recipe is valid, and so are the
    recipes of the override scopes below *scope*. Nothing is written when anything is
    invalid.
    """
    scope = parse_scope(scope)
    section = scope_section(scope)
    for key, _ in pairs:
        _check_key(key)
    written = [_normalise(section, key, value) for key, value in pairs]
    file = SettingsFile.read(experiment.settings_file)
    existing = file.override_sections().get(scope, section) if scope else section
    for (key, _), value in zip(pairs, written, strict=True):
        file.set(existing, key, value)
    _check_affected(effective.site_file, file, scope)
    file.write()
    return written


def unset_recipe(experiment: Experiment, effective: Effective, scope: str,
                 keys: list[str]) -> list[str]:
    """Remove keys from the recipe of *scope*, which then falls back to the layers below
    (scope "" removes them from the experiment's ``[reduction]``: site value or default).
    An override section left empty is removed. Returns the keys that were set; the file
    is only written when there were any."""
    scope = parse_scope(scope)
    section = scope_section(scope)
    for key in keys:
        _check_key(key)
    file = SettingsFile.read(experiment.settings_file)
    existing = file.override_sections().get(scope, section) if scope else section
    items = file.values.get(existing, {})
    removed = [key for key in dict.fromkeys(keys) if key in items]
    if not removed:
        return []
    for key in removed:
        del items[key]
    if scope and not items:
        del file.values[existing]
    _check_affected(effective.site_file, file, scope)
    file.write()
    return removed


__all__ = [
    "RECIPE_SECTION",
    "Recipe",
    "effective_recipe",
    "recipe_hash",
    "recipe_scopes",
    "scope_section",
    "set_recipe",
    "unset_recipe",
]
