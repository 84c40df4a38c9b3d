"""Units: the one place that knows how nxgid spells and converts them.

Internally nxgid computes q in Å⁻¹ and angles in radians; results carry q in the user's
unit (Å⁻¹ default, or nm⁻¹) and angles in degrees. Unit strings written to NeXus files
are the ones pint (and so pynxtools) understands: never ``A`` (ampere) or ``1/A``.
"""

from __future__ import annotations

import math
from typing import Literal

QUnit = Literal["A^-1", "nm^-1"]

#: Multiply a q value in Å⁻¹ by this to get the unit.
Q_SCALE: dict[str, float] = {"A^-1": 1.0, "nm^-1": 10.0}

#: NeXus ``@units`` strings.
NEXUS_UNITS: dict[str, str] = {
    "A^-1": "1/angstrom",
    "nm^-1": "1/nm",
    "deg": "degree",
    "rad": "rad",
    "m": "m",
    "mm": "mm",
    "angstrom": "angstrom",
    "keV": "keV",
}

#: Metres per unit of the length units nxgid reads from NeXus ``@units``.
LENGTH_UNITS_M: dict[str, float] = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6,
                                    "micron": 1e-6, "nm": 1e-9, "angstrom": 1e-10,
                                    "Angstrom": 1e-10, "Å": 1e-10}


def length_m(value: float, units: str) -> float:
    """A length with its NeXus ``@units`` in metres (ValueError for another unit)."""
    try:
        return float(value) * LENGTH_UNITS_M[units.strip()]
    except KeyError:
        raise ValueError(f"unit {units!r}: expected a length unit "
                         f"({', '.join(LENGTH_UNITS_M)})") from None


#: hc in keV·Å, to convert photon energy and wavelength.
HC_KEV_ANGSTROM = 12.398419843320026


def check_q_unit(unit: str) -> QUnit:
    if unit not in Q_SCALE:
        raise ValueError(f"q unit {unit!r}: expected one of {', '.join(Q_SCALE)}")
    return unit  # type: ignore[return-value]


def energy_keV_to_wavelength_A(energy_keV: float) -> float:
    return HC_KEV_ANGSTROM / energy_keV


def wavelength_A_to_energy_keV(wavelength_A: float) -> float:
    return HC_KEV_ANGSTROM / wavelength_A


def wavevector_A(wavelength_A: float) -> float:
    """k = 2π/λ in Å⁻¹."""
    return 2.0 * math.pi / wavelength_A


# --- positions on the detector ---------------------------------------------------------
# One convention everywhere a user gives or reads a position on the detector: pixels,
# x = column and y = row (fit2d's and pyFAI's centerX/centerY, ImageJ's), row 0 at the
# top of every picture. nxgid's array code indexes (row, column).

def parse_pixel_xy(text: str, option: str) -> tuple[float, float]:
    """``"X,Y"`` in pixels → (row, column) = (y, x)."""
    from nxgid.errors import NxgidError

    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise NxgidError(f"{option} {text!r}: expected X,Y in pixels (x = column, "
                         "y = row)") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise NxgidError(f"{option} {text!r}: expected finite pixel positions")
    return y, x


def pixel_xy_text(row: float, column: float) -> str:
    """A position as every output prints it: ``x 760.0, y 60.0 pixels (column, row)``."""
    return f"x {column:.1f}, y {row:.1f} pixels (column, row)"
