"""The base of every settings section, and how values are written to ``settings.ini``."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every section: strict about keys, lenient about ini spellings of values."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def describe(cls, key: str) -> str:
        """The documentation of *key* (with its unit)."""
        return cls.model_fields[key].description or ""


def _relative_path(value: str, key: str, below: str = "the home directory") -> str:
    if not value:
        return ""
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{key} must be a relative path below {below}, without '..'")
    return str(path)


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
