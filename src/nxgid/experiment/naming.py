"""The naming rule for experiments, samples, labels and scans.

Names become directory and file names, so they are restricted to letters, digits,
``-``, ``_`` and ``.``; they are not empty, not ``.`` or ``..``, contain no path
separator and have at most :data:`MAX_NAME_LENGTH` characters.
"""

from __future__ import annotations

import re

from nxgid.errors import InvalidNameError

MAX_NAME_LENGTH = 64
_ALLOWED = re.compile(r"[A-Za-z0-9._-]")

#: Top-level directories of an experiment; no sample may take these names.
RESERVED_DIRECTORIES = ("tasks", "calibrations", "configurations", "scripts")


def check_name(name: str, kind: str = "name") -> str:
    """Return *name* if it obeys the rule, else raise naming the rule it broke.

    *kind* ("sample", "label", …) is used in the message.
    """
    if not isinstance(name, str) or name == "":
        raise InvalidNameError(f"{kind} name is empty: expected 1 to {MAX_NAME_LENGTH} "
                               "letters, digits, '-', '_' or '.'")
    if name in {".", ".."}:
        raise InvalidNameError(f"{kind} name {name!r} is not allowed: '.' and '..' "
                               "name directories already")
    if "/" in name or "\\" in name or "\x00" in name:
        raise InvalidNameError(f"{kind} name {name!r} contains a path separator: expected "
                               "a single name, not a path")
    bad = sorted({ch for ch in name if not _ALLOWED.fullmatch(ch)})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        raise InvalidNameError(f"{kind} name {name!r} contains {shown}: use only letters, "
                               "digits, '-', '_' or '.'")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"{kind} name {name[:20]!r}… has {len(name)} characters: "
                               f"at most {MAX_NAME_LENGTH} are allowed")
    return name


def is_valid_name(name: str) -> bool:
    try:
        check_name(name)
    except InvalidNameError:
        return False
    return True


def check_sample_name(name: str) -> str:
    check_name(name, "sample")
    if name in RESERVED_DIRECTORIES:
        raise InvalidNameError(f"sample name {name!r} is reserved for the experiment's "
                               f"{name}/ directory: choose another name")
    return name
