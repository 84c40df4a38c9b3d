"""Conversion: detector frames → reciprocal-space maps and profiles.

``grid`` (axes and targets) → ``binmap`` (pixel→bin maps) → ``kernels`` (numba) →
``converter`` (the API) → ``result``; ``corrections`` computes intensity corrections.
"""

from __future__ import annotations

import importlib

#: Names the package offers, and the module each comes from: imported on first use
#: (PEP 562), so that ``nxgid.conversion.corrections`` can be imported (by the settings'
#: validation) without the engine and numba.
_EXPORTS = {"Converter": "converter", "TargetSpec": "converter",
            "combine_masks": "converter", "Axis": "grid", "Target": "grid",
            "Result": "result"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"nxgid.conversion.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'nxgid.conversion' has no attribute {name!r}")
