"""Typed site and experiment settings (``settings.ini``), validated with pydantic."""

from nxgid.settings.model import (
    SCHEMA_VERSION,
    SECTIONS,
    ConfigurationSettings,
    ExperimentInfo,
    InstrumentSettings,
    ReductionSettings,
    ServerSettings,
    Settings,
)
from nxgid.settings.store import (
    Effective,
    SettingsFile,
    create_experiment_file,
    create_site_file,
    load_effective,
    resolve_key,
    set_value,
    site_directory,
    site_settings_path,
)

__all__ = [
    "SCHEMA_VERSION",
    "SECTIONS",
    "ConfigurationSettings",
    "Effective",
    "ExperimentInfo",
    "InstrumentSettings",
    "ReductionSettings",
    "ServerSettings",
    "Settings",
    "SettingsFile",
    "create_experiment_file",
    "create_site_file",
    "load_effective",
    "resolve_key",
    "set_value",
    "site_directory",
    "site_settings_path",
]
