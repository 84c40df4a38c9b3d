"""Detector names from pyFAI's detector database.

pyFAI is imported only when a name must be checked, so commands that do not touch
detectors stay fast.
"""

from __future__ import annotations

import difflib
from functools import cache

from nxgid.errors import NxgidError


@cache
def detector_names() -> tuple[str, ...]:
    """Every name and alias pyFAI's ``detector_factory`` accepts, as pyFAI spells them."""
    from pyFAI.detectors import ALL_DETECTORS

    names = set()
    for alias, cls in ALL_DETECTORS.items():
        names.add(alias)
        for spelled in getattr(cls, "aliases", []) or []:
            names.add(spelled)
    return tuple(sorted(names, key=str.lower))


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def check_detector_name(name: str) -> str:
    """Return *name* if pyFAI knows the detector, else raise with the closest matches."""
    known = detector_names()
    wanted = _normalise(name)
    if any(_normalise(known_name) == wanted for known_name in known):
        return name
    by_key = {_normalise(n): n for n in known}
    close = difflib.get_close_matches(wanted, list(by_key), n=4, cutoff=0.6)
    hint = f"; closest: {', '.join(by_key[c] for c in close)}" if close else ""
    raise NxgidError(f"detector {name!r} is not in pyFAI's detector database{hint}")
