"""Reading older settings files: one schema step after the other.

* schema 0: NXRefine's layout (sections ``nxrefine``/``nxreduce``, its key names);
* schema 1: one boolean ``[reduction]`` key per correction;
* schema 2: ``pixel_splitting`` a boolean, ``compression`` defaulting to bitshuffle-LZ4;
* schema 3 (now): ``pixel_splitting`` auto/all/none, ``compression`` gzip by default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from nxgid.errors import SettingsError
from nxgid.settings.model import SCHEMA_VERSION, SECTIONS

log = logging.getLogger("nxgid.settings")

SCHEMA_SECTION = "schema"
#: The section that override sections ``[reduction SCOPE]`` refine.
OVERRIDE_SECTION = "reduction"
_warned: set[str] = set()

#: NXRefine (schema 0) section and key names -> nxgid (schema 1).
_V0_SECTIONS = {"nxrefine": "configuration", "nxreduce": "reduction"}
_V0_KEYS = {
    "configuration": {
        "wavelength": "wavelength_A", "distance": "distance_mm", "phi": "phi_start_deg",
        "phi_end": "phi_end_deg", "phi_step": "phi_step_deg", "chi": "chi_deg",
        "omega": "omega_deg", "theta": "theta_deg", "x": "detector_x_mm",
        "y": "detector_y_mm", "frame_rate": "frame_rate_hz",
    },
    "server": {"cores": "workers"},
}

#: Schema 1 had one boolean [reduction] key per correction; schema 2 has ``corrections``.
#: Key -> item of ``corrections``; schema 1's defaults for keys a file does not hold.
_V1_CORRECTIONS = {"solid_angle": "solid_angle", "polarization": "polarization",
                   "lorentz": "lorentz=gid"}
_V1_DEFAULTS = {"solid_angle": True, "polarization": True}
#: Corrections schema 1 switched on without their parameters: dropped, with the item to set.
_V1_DROPPED = {"air_absorption": "air=L_m[:OFFSET_m]",
               "sensor_efficiency": "sensor=L_m[:THICKNESS_m]",
               "film_absorption": "film=THICKNESS_m:L_m",
               "refraction": "refraction=ALPHA_C_DEG"}
_V1_KEYS = (*_V1_CORRECTIONS, *_V1_DROPPED)
_BOOLEANS = {"1": True, "true": True, "t": True, "yes": True, "y": True, "on": True,
             "0": False, "false": False, "f": False, "no": False, "n": False, "off": False}


#: Schema 2's written-out defaults of [reduction] (``settings init`` and ``experiment new``
#: write every key) that schema 3 changed: old value -> new default.
_V2_DEFAULTS = {"pixel_splitting": ("false", "auto"), "compression": ("bitshuffle-lz4", "gzip")}


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def schema_version(path: Path, values: Mapping[str, Mapping[str, str]]) -> int:
    raw = values.get(SCHEMA_SECTION, {}).get("version")
    if raw is None:
        if set(values) & set(_V0_SECTIONS):
            return 0
        reduction = values.get(OVERRIDE_SECTION, {})
        if "corrections" not in reduction and set(reduction) & set(_V1_KEYS):
            return 1  # hand-written without [schema], with schema 1's correction switches
        return SCHEMA_VERSION
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(
            f"settings file {path}: [schema] version = {raw!r}: expected an integer") from None


def migrate(values: dict[str, dict[str, str]], version: int, path: Path
             ) -> dict[str, dict[str, str]]:
    """Upgrade an older file to the current layout, one schema step after the other."""
    if version < 1:
        values = _migrate_v0(values)
    if version < 2:
        values = _migrate_v1(values, path)
    if version < 3:
        values = _migrate_v2(values, path)
    return values


def _migrate_v0(values: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """NXRefine's layout (schema 0) → schema 1."""
    migrated: dict[str, dict[str, str]] = {}
    for section, items in values.items():
        target = _V0_SECTIONS.get(section, section)
        renames = _V0_KEYS.get(target, {})
        out = migrated.setdefault(target, {})
        for key, value in items.items():
            new_key = renames.get(key, key)
            if value.strip() in {"1", "0"} and _is_bool_field(target, new_key):
                value = "true" if value.strip() == "1" else "false"
            out[new_key] = value
    return migrated


def _migrate_v1(values: dict[str, dict[str, str]], path: Path) -> dict[str, dict[str, str]]:
    """Schema 1 → 2: the boolean correction keys of [reduction] become ``corrections``.

    Keys the file does not hold take schema 1's defaults (solid angle and polarization
    on). Corrections that need parameters schema 1 never recorded (air, sensor, film,
    refraction) are dropped with a warning naming the ``corrections`` item to set. A value
    that is not a boolean is kept as an (unknown, reported) key.
    """
    reduction = values.get(OVERRIDE_SECTION)
    if not reduction or not set(reduction) & set(_V1_KEYS):
        return values
    reduction = dict(reduction)
    switches = dict(_V1_DEFAULTS)
    for key in _V1_KEYS:
        if key not in reduction:
            continue
        on = _BOOLEANS.get(reduction[key].strip().lower())
        if on is None:
            continue
        del reduction[key]
        switches[key] = on
    items = [item for key, item in _V1_CORRECTIONS.items() if switches.get(key)]
    if "corrections" not in reduction:
        reduction["corrections"] = ", ".join(items) or "none"
    for key, item in _V1_DROPPED.items():
        if switches.get(key):
            warn_once(f"{path}: [reduction] {key} = true dropped when reading settings "
                       f"schema 1 (its parameters were never recorded): add {item} to "
                       "[reduction] corrections, e.g. `nxgid recipe set corrections "
                       f"\"{reduction['corrections']}, {item}\"`")
    return {**values, OVERRIDE_SECTION: reduction}


def _is_bool_field(section: str, key: str) -> bool:
    model = SECTIONS.get(section)
    return bool(model and key in model.model_fields
                and model.model_fields[key].annotation is bool)




def _migrate_v2(values: dict[str, dict[str, str]], path: Path) -> dict[str, dict[str, str]]:
    """Schema 2 → 3: ``[reduction]`` keys that hold schema 2's default take schema 3's.

    Schema 2 files hold every key with its default, so its ``pixel_splitting = false``
    (leaving empty bins where pixels are wider than bins) and ``compression =
    bitshuffle-lz4`` (unreadable without hdf5plugin) are the old defaults, not choices;
    they become ``auto`` and ``gzip``, with a note. Override sections ``[reduction
    SCOPE]`` hold only what was set on purpose and are kept.
    """
    reduction = values.get(OVERRIDE_SECTION)
    if not reduction:
        return values
    reduction = dict(reduction)
    for key, (old, new) in _V2_DEFAULTS.items():
        if reduction.get(key, "").strip().lower() == old:
            reduction[key] = new
            warn_once(f"{path}: [reduction] {key} = {old} (schema 2's default) read as "
                      f"{new}, the default now; set it again to keep {old}")
    return {**values, OVERRIDE_SECTION: reduction}
