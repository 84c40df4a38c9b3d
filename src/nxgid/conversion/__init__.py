"""Conversion: detector frames → reciprocal-space maps and profiles.

``grid`` (axes and targets) → ``binmap`` (pixel→bin maps) → ``kernels`` (numba) →
``converter`` (the API) → ``result``; ``corrections`` computes intensity corrections.
"""

from nxgid.conversion.converter import Converter, TargetSpec, combine_masks
from nxgid.conversion.grid import Axis, Target
from nxgid.conversion.result import Result

__all__ = ["Axis", "Converter", "Result", "Target", "TargetSpec", "combine_masks"]
