"""Per-pixel intensity corrections, expressed as one multiplicative "norm" per pixel.

The engine bins ``Σ signal_p / Σ norm_p`` where ``norm_p`` is the product of every enabled
factor below: the fraction of the "true" intensity that pixel *p* records (relative to a
reference stated for each factor). The corrected intensity is therefore
``measured / norm``. A factor that is NaN, infinite or zero marks a pixel where the
correction is undefined; the engine masks such pixels.

Factors (each switchable in :class:`Corrections`, each computable alone):

* solid angle — pyFAI's ``solidAngleArray`` (cos³ of the ray's incidence on the detector,
  tilt included), 1 at the PONI pixel;
* polarization — pyFAI's ``polarization(factor, axis_offset)``;
* air absorption — ``exp(-path / L_air)`` along the ray from the sample to the pixel;
* sensor efficiency — ``(1 - exp(-t / (L cos β))) / (1 - exp(-t / L))``, relative to
  normal incidence;
* film absorption (grazing incidence only) — depth-averaged transmission of a film;
* Lorentz — ``"powder"`` (random 3D powder) or ``"gid"`` (2D powder / fibre texture about
  the surface normal).

Refraction is not an intensity factor: :func:`refracted_q_z` gives the q_z inside the film
(DWBA), to be binned instead of the vacuum q_z.

Dark-current subtraction, flat field and monitor normalisation are *not* handled here: the
engine subtracts the dark and puts flat field and monitor into the norm itself.

Angles in the sample frame (α_i, α_f, in-plane angles) are derived here from the scattering
vector of :class:`~nxgid.geometry.coordinates.PixelCoordinates` (``q_z``, ``q_xy``), so
that they are consistent with the q axes the engine bins on: the specular ray
(q_xy = 0, q_z = 2k sin α_i) has α_f = α_i. (``PixelCoordinates.alpha_f`` reproduces
pyFAI's ``exit_angle_vert``, which places the specular ray at α_f ≈ 3α_i and is not used.)
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nxgid.errors import NxgidError
from nxgid.geometry.coordinates import PixelCoordinates, SampleGeometry

if TYPE_CHECKING:
    from nxgid.geometry.detector import DetectorGeometry

#: Lorentz modes: None (off), "gid" (2D powder, GI) or "powder" (random 3D powder).
LORENTZ_MODES = ("gid", "powder")

#: Version of the :meth:`Corrections.describe` record (bump when a formula changes).
DESCRIBE_VERSION = 1


# --- parameters -------------------------------------------------------------------------


def _fail(name: str, value: Any, expected: str) -> NxgidError:
    return NxgidError(f"corrections: {name} = {value!r}: expected {expected}")


def _check_real(name: str, value: Any, *, minimum: float | None = None,
                strict: bool = False, maximum: float | None = None) -> float:
    """*value* as a finite float within the bounds, or an :class:`NxgidError`."""
    bounds = []
    if minimum is not None:
        bounds.append(f"{'>' if strict else '≥'} {minimum:g}")
    if maximum is not None:
        bounds.append(f"≤ {maximum:g}")
    expected = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(name, value, expected)
    number = float(value)
    if not math.isfinite(number):
        raise _fail(name, value, expected)
    if minimum is not None and (number <= minimum if strict else number < minimum):
        raise _fail(name, value, expected)
    if maximum is not None and number > maximum:
        raise _fail(name, value, expected)
    return number


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool | np.bool_):
        raise _fail(name, value, "true or false")


def _check_length(name: str, value: Any) -> float:
    """An attenuation length: finite and > 0 m."""
    return _check_real(name, value, minimum=0.0, strict=True)


def _check_polarization(factor: Any) -> float:
    return _check_real("polarization_factor", factor, minimum=-1.0, maximum=1.0)


def _check_lorentz(mode: Any) -> None:
    if mode is not None and mode not in LORENTZ_MODES:
        raise _fail("lorentz", mode, "None, 'gid' or 'powder'")


def _check_critical_angle(value: Any) -> float:
    angle = _check_real("critical_angle_deg", value, minimum=0.0)
    if angle >= 90.0:
        raise _fail("critical_angle_deg", value, "a finite number ≥ 0 and < 90")
    return angle


@dataclass(frozen=True)
class Corrections:
    """Which intensity corrections to apply, with their parameters (SI units, degrees).

    Defaults: solid angle and polarization (factor 0.99, a horizontally polarized
    synchrotron beam) on, everything else off. Energy-dependent attenuation lengths have
    no default (None): they must be given when their correction is switched on.

    * ``solid_angle`` — pyFAI's solid angle relative to the PONI pixel.
    * ``polarization_factor`` — pyFAI's P = (I_h − I_v)/(I_h + I_v) in [-1, 1]; None = off.
      ``polarization_offset_deg`` — angle of the polarization plane from the lab
      horizontal (pyFAI's ``axis_offset``, here in degrees).
    * ``air_absorption`` — ``air_attenuation_length_m`` (1/μ of air at the beam energy,
      ≈ 1.6 m at 10 keV, 0.85 m at 8 keV) and ``air_path_offset_m``, the part of every
      ray not in air (an evacuated flight tube), subtracted from each ray's path.
    * ``sensor_efficiency`` — ``sensor_thickness_m`` (default 450 µm, a Pilatus/Eiger
      silicon sensor) and ``sensor_attenuation_length_m`` (Si: ≈ 127 µm at 10 keV).
    * ``film_absorption`` — ``film_thickness_m`` and ``film_attenuation_length_m``
      (grazing incidence only).
    * ``lorentz`` — None, ``"gid"`` (grazing incidence only) or ``"powder"``.
    * ``refraction`` — ``critical_angle_deg`` α_c of the film: q_z is replaced by its value
      inside the film (:func:`refracted_q_z`); not an intensity factor.

    Parameters of a correction that is off are validated but not recorded by
    :meth:`describe`, so they do not change :meth:`key`.
    """

    solid_angle: bool = True
    polarization_factor: float | None = 0.99
    polarization_offset_deg: float = 0.0
    air_absorption: bool = False
    air_attenuation_length_m: float | None = None
    air_path_offset_m: float = 0.0
    sensor_efficiency: bool = False
    sensor_thickness_m: float = 450e-6
    sensor_attenuation_length_m: float | None = None
    film_absorption: bool = False
    film_thickness_m: float | None = None
    film_attenuation_length_m: float | None = None
    lorentz: str | None = None
    refraction: bool = False
    critical_angle_deg: float | None = None

    def __post_init__(self) -> None:
        for name in ("solid_angle", "air_absorption", "sensor_efficiency",
                     "film_absorption", "refraction"):
            _check_bool(name, getattr(self, name))
        if self.polarization_factor is not None:
            _check_polarization(self.polarization_factor)
        _check_real("polarization_offset_deg", self.polarization_offset_deg)
        _check_real("air_path_offset_m", self.air_path_offset_m, minimum=0.0)
        _check_real("sensor_thickness_m", self.sensor_thickness_m, minimum=0.0, strict=True)
        for name in ("air_attenuation_length_m", "sensor_attenuation_length_m",
                     "film_attenuation_length_m"):
            if getattr(self, name) is not None:
                _check_length(name, getattr(self, name))
        if self.film_thickness_m is not None:
            _check_real("film_thickness_m", self.film_thickness_m, minimum=0.0)
        _check_lorentz(self.lorentz)
        if self.critical_angle_deg is not None:
            _check_critical_angle(self.critical_angle_deg)
        required = {
            "air_absorption": ("air_attenuation_length_m",),
            "sensor_efficiency": ("sensor_attenuation_length_m",),
            "film_absorption": ("film_thickness_m", "film_attenuation_length_m"),
            "refraction": ("critical_angle_deg",),
        }
        for switch, names in required.items():
            if getattr(self, switch):
                for name in names:
                    if getattr(self, name) is None:
                        raise NxgidError(f"corrections: {switch} is on but {name} is not "
                                         "set: expected a value")

    @classmethod
    def none(cls) -> Corrections:
        """Every correction off (norm = 1)."""
        return cls(solid_angle=False, polarization_factor=None)

    def check_sample(self, sample: SampleGeometry) -> None:
        """Raise :class:`NxgidError` if a grazing-incidence-only correction is on for a
        transmission sample."""
        if sample.mode == "gid":
            return
        for name, on in (("film_absorption", self.film_absorption),
                         ("lorentz='gid'", self.lorentz == "gid"),
                         ("refraction", self.refraction)):
            if on:
                raise NxgidError(f"corrections: {name} needs a grazing-incidence sample, "
                                 f"got a {sample.mode} sample")

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable record of what is applied, with every parameter used.

        Keys are the correction names; each holds ``applied`` and, when applied, the
        formula and parameters (units in the names).
        """
        record: dict[str, Any] = {"version": DESCRIBE_VERSION}
        record["solid_angle"] = {"applied": bool(self.solid_angle)}
        if self.solid_angle:
            record["solid_angle"].update(
                formula="pyFAI solidAngleArray: cos^3(beta), beta = ray incidence on the "
                        "detector", reference="PONI pixel")
        on = self.polarization_factor is not None
        record["polarization"] = {"applied": on}
        if on:
            record["polarization"].update(
                formula="pyFAI polarization: 0.5*(1+cos^2(2th)-P*cos(2*(chi+offset))"
                        "*(1-cos^2(2th)))",
                factor=float(self.polarization_factor),  # type: ignore[arg-type]
                offset_deg=float(self.polarization_offset_deg))
        record["air_absorption"] = {"applied": bool(self.air_absorption)}
        if self.air_absorption:
            record["air_absorption"].update(
                formula="exp(-max(r - path_offset, 0) / L), r = sample-pixel distance",
                attenuation_length_m=float(self.air_attenuation_length_m),  # type: ignore[arg-type]
                path_offset_m=float(self.air_path_offset_m))
        record["sensor_efficiency"] = {"applied": bool(self.sensor_efficiency)}
        if self.sensor_efficiency:
            record["sensor_efficiency"].update(
                formula="(1-exp(-t/(L*cos(beta)))) / (1-exp(-t/L))",
                reference="normal incidence",
                thickness_m=float(self.sensor_thickness_m),
                attenuation_length_m=float(self.sensor_attenuation_length_m))  # type: ignore[arg-type]
        record["film_absorption"] = {"applied": bool(self.film_absorption)}
        if self.film_absorption:
            record["film_absorption"].update(
                formula="(1-exp(-x))/x, x = (t/L)*(1/sin(alpha_i)+1/sin(alpha_f))",
                reference="transparent film",
                thickness_m=float(self.film_thickness_m),  # type: ignore[arg-type]
                attenuation_length_m=float(self.film_attenuation_length_m))  # type: ignore[arg-type]
        record["lorentz"] = {"applied": self.lorentz is not None}
        if self.lorentz is not None:
            record["lorentz"].update(mode=self.lorentz, formula=_LORENTZ_FORMULA[self.lorentz])
        record["refraction"] = {"applied": bool(self.refraction)}
        if self.refraction:
            record["refraction"].update(
                formula="q_z = k*(sqrt(sin^2(alpha_f)-sin^2(alpha_c)) "
                        "+ sqrt(max(sin^2(alpha_i)-sin^2(alpha_c), 0)))",
                critical_angle_deg=float(self.critical_angle_deg))  # type: ignore[arg-type]
        return record

    def key(self) -> str:
        """A short stable hash of :meth:`describe`, for caches (16 hex digits)."""
        text = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


_LORENTZ_FORMULA = {
    "powder": "L = 1/(4*sin^2(theta)*cos(theta)); norm = L",
    "gid": "L = 1/(cos(alpha_i)*cos(alpha_f)*|sin(dphi)|); norm = L",
}


# --- sample-frame angles ----------------------------------------------------------------


def sin_incidence(sample: SampleGeometry) -> float:
    """sin α_i of the incident beam on the sample plane, with the sample tilt.

    The incident beam in the sample frame of :class:`PixelCoordinates` has the component
    −k·cos(tilt)·sin(α_i) along the surface normal, so sin α_i,eff = cos(tilt)·sin(α_i).
    """
    if sample.mode != "gid":
        raise NxgidError(f"corrections: incidence angle needs a grazing-incidence sample, "
                         f"got a {sample.mode} sample")
    return math.cos(math.radians(sample.tilt_deg)) * math.sin(math.radians(sample.incidence_deg))


def sin_exit(coords: PixelCoordinates) -> np.ndarray:
    """sin α_f of each scattered ray above the sample plane (= q_z/k − sin α_i for the
    unrefracted q_z; owned by :class:`PixelCoordinates`, so refraction-corrected q_z
    values do not change it)."""
    return np.sin(coords.alpha_f)


def exit_angle(coords: PixelCoordinates) -> np.ndarray:
    """Exit angle α_f (rad) above the sample plane; negative below the horizon."""
    return coords.alpha_f


# --- factors ----------------------------------------------------------------------------


def solid_angle_factor(geometry: DetectorGeometry) -> np.ndarray:
    """pyFAI's solid angle relative to the PONI pixel, cos³β with β the ray's incidence
    angle on the detector (tilt included): 1 at the PONI, < 1 elsewhere."""
    return np.array(geometry.solid_angle(), dtype=np.float64)


def polarization_factor_array(geometry: DetectorGeometry, factor: float,
                              offset_deg: float = 0.0) -> np.ndarray:
    """pyFAI's polarization array, ``geometry.pyfai.polarization(factor=P,
    axis_offset=radians(offset_deg))``, as float64:

    ``0.5·(1 + cos²2θ − P·cos(2(χ + offset))·(1 − cos²2θ))`` with χ = atan2(y, x) the lab
    azimuth. P = 1: horizontal polarization (factor cos²2θ in the horizontal plane, 1 in
    the vertical one); P = 0: unpolarized; P = −1: vertical.
    """
    factor = _check_polarization(factor)
    offset = _check_real("polarization_offset_deg", offset_deg)
    array = geometry.pyfai.polarization(factor=factor, axis_offset=math.radians(offset))
    return np.array(array, dtype=np.float64)


def _distance_m(geometry: DetectorGeometry) -> np.ndarray:
    x, y, z = geometry.positions_m()
    return np.sqrt(x * x + y * y + z * z)


def air_absorption_factor(geometry: DetectorGeometry, attenuation_length_m: float,
                          path_offset_m: float = 0.0) -> np.ndarray:
    """Transmission of air along each ray: ``exp(−max(r − path_offset, 0) / L)``.

    r (m) is the distance from the sample to the pixel centre; *path_offset_m* is the
    length of every ray that is not in air (an evacuated flight tube, taken as the same for
    every ray). Absolute, not normalised: with ``path_offset_m = 0`` it is the fraction of
    the scattered beam that reaches the pixel; ``path_offset_m`` = the sample–detector
    distance makes it relative to the PONI pixel (r ≥ distance on a flat detector).
    """
    length = _check_length("air_attenuation_length_m", attenuation_length_m)
    offset = _check_real("air_path_offset_m", path_offset_m, minimum=0.0)
    path = np.maximum(_distance_m(geometry) - offset, 0.0)
    return np.exp(-path / length)


def detector_cos_incidence(geometry: DetectorGeometry) -> np.ndarray:
    """cos β, β the angle between each ray (sample → pixel centre) and the detector normal.

    The normal is the third column of pyFAI's ``rotation_matrix()`` (the detector's
    out-of-plane axis rotated into the lab frame; pyFAI's lab axes 1, 2, 3 are our y, x,
    z). For a flat detector cos β = distance / r, and cos³β is pyFAI's solid angle.
    """
    rotation = np.asarray(geometry.pyfai.rotation_matrix(), dtype=np.float64)
    normal_x, normal_y, normal_z = rotation[1, 2], rotation[0, 2], rotation[2, 2]
    x, y, z = geometry.positions_m()
    return (normal_x * x + normal_y * y + normal_z * z) / _distance_m(geometry)


def sensor_efficiency_factor(geometry: DetectorGeometry, thickness_m: float,
                             attenuation_length_m: float) -> np.ndarray:
    """Absorption efficiency of the sensor relative to normal incidence:

    ``ε(β)/ε(0)`` with ``ε(β) = 1 − exp(−t / (L·cos β))`` (t thickness, L attenuation length
    of the sensor material, β from :func:`detector_cos_incidence`). 1 at the PONI pixel,
    > 1 for oblique rays (longer path in the sensor); → 1 for a sensor much thicker than L,
    → 1/cos β for a very thin one.
    """
    thickness = _check_real("sensor_thickness_m", thickness_m, minimum=0.0, strict=True)
    length = _check_length("sensor_attenuation_length_m", attenuation_length_m)
    cos_beta = detector_cos_incidence(geometry)
    ratio = thickness / length
    with np.errstate(divide="ignore", over="ignore"):
        efficiency = -np.expm1(-ratio / cos_beta)
    return efficiency / -math.expm1(-ratio)


def film_absorption_factor(coords: PixelCoordinates, thickness_m: float,
                           attenuation_length_m: float) -> np.ndarray:
    """Depth-averaged transmission of a film in grazing incidence (reflection geometry).

    ``A = (1 − exp(−x)) / x`` with ``x = μ·t·(1/sin α_i + 1/sin α_f)``, μ = 1/L: the
    intensity scattered by the film, ∫₀ᵗ exp(−μz(1/sin α_i + 1/sin α_f)) dz, divided by
    its value t for a transparent film — so A → 1 for a thin or transparent film and
    A < 1 otherwise. Vacuum angles are used (refraction at the surface is neglected; close
    to the critical angle the real path is longer). The illuminated volume (∝ 1/sin α_i)
    is the same for every pixel of a frame and is left out.

    Pixels at or below the sample horizon (α_f ≤ 0) get NaN: the scattered ray does not
    leave through the film surface. Raises :class:`NxgidError` for a transmission sample
    or α_i ≤ 0.
    """
    thickness = _check_real("film_thickness_m", thickness_m, minimum=0.0)
    length = _check_length("film_attenuation_length_m", attenuation_length_m)
    sin_i = sin_incidence(coords.sample)
    if sin_i <= 0.0:
        raise NxgidError(f"corrections: film absorption needs a positive incidence angle, "
                         f"got {coords.sample.incidence_deg}°")
    sin_f = sin_exit(coords)
    above = sin_f > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (thickness / length) * (1.0 / sin_i + 1.0 / np.where(above, sin_f, np.nan))
        result = np.where(x > 0.0, -np.expm1(-x) / x, 1.0)
    return np.where(above, result, np.nan)


def lorentz_factor(coords: PixelCoordinates, mode: str) -> np.ndarray:
    """The Lorentz factor L as a norm (``norm = L``, corrected intensity = measured / L).

    L is the factor by which the measured integrated intensity of a reflection exceeds
    |F|²·multiplicity, so the correction multiplies the measured intensity by 1/L.
    No normalisation to a detector maximum: the formula is absolute, so corrected images
    from different geometries stay comparable.

    * ``"powder"`` — random 3D powder, L = 1/(4 sin²θ cos θ) = cos θ / sin²2θ
      (International Tables for Crystallography Vol. H (2018), §2.5.3.3.4, eq. 2.5.26;
      the classic Lorentz factor of powder diffraction, 2D detectors included).
    * ``"gid"`` — 2D powder (fibre texture about the surface normal) in grazing
      incidence, L = 1/(cos α_i · cos α_f · |sin Δφ|), Δφ the in-plane angle between the
      incident and scattered rays. A reflection spread uniformly over a ring of radius
      q_xy about q_z meets the Ewald sphere at an angle; the integrated intensity is
      ``1/(2π q_xy |k̂_f·t̂|)``, t̂ the ring tangent, and ``q_xy·|k̂_f·t̂|·k =
      |k_i∥ × k_f∥| = k² cos α_i cos α_f |sin Δφ|``. This is pygid's ``powder_dim=2``
      Lorentz matrix ``1/|sin γ|`` (γ = in-plane angle of k_f) with the cos α factors kept
      and without its normalisation to the image maximum; for small angles
      |sin Δφ| ≈ sin 2θ_∥, the in-plane scattering angle.

    NaN where L is undefined: 2θ = 0 (powder); Δφ = 0, i.e. the q_z axis (gid) — rays
    within rounding of the q_z axis get a very large finite value instead.
    """
    _check_lorentz(mode)
    if mode == "powder":
        theta = coords.tth / 2.0
        sin_theta = np.sin(theta)
        norm = 4.0 * sin_theta * sin_theta * np.cos(theta)
    elif mode == "gid":
        norm = _in_plane_cross(coords)
    else:  # None
        return np.ones(coords.tth.shape)
    with np.errstate(divide="ignore"):
        result = 1.0 / norm
    return np.where(np.isfinite(result), result, np.nan)


def _in_plane_cross(coords: PixelCoordinates) -> np.ndarray:
    """|k̂_i∥ × k̂_f∥| = cos α_i · cos α_f · |sin Δφ|, from q_xy and q_z only.

    With a = k_i∥, b = k_f∥ and q∥ = b − a: a·q∥ = (|b|² − |a|² − q_xy²)/2 and
    |a × q∥|² = |a|² q_xy² − (a·q∥)², and a × b = a × q∥.
    """
    k = coords.k
    sin_i = sin_incidence(coords.sample)
    sin_f = np.clip(sin_exit(coords), -1.0, 1.0)
    a2 = 1.0 - sin_i * sin_i
    b2 = 1.0 - sin_f * sin_f
    q2 = (coords.q_xy / k) ** 2
    dot = 0.5 * (b2 - a2 - q2)
    return np.sqrt(np.maximum(a2 * q2 - dot * dot, 0.0))


# --- refraction -------------------------------------------------------------------------


def refracted_q_z(coords: PixelCoordinates, critical_angle_deg: float) -> np.ndarray:
    """q_z (Å⁻¹) inside a film of critical angle α_c, corrected for refraction (DWBA).

    Snell's law with n = cos α_c gives, inside the film, n·k·sin α' = k·√(sin²α − sin²α_c)
    for both the incident and the exit ray, so

    ``q_z' = k·(√(sin²α_f − sin²α_c) + √(sin²α_i − sin²α_c))``

    with α_i, α_f the vacuum angles (:func:`sin_incidence`, :func:`sin_exit`). Below the
    critical angle the incident wave is evanescent in the film and contributes no real
    momentum transfer (its term is 0); pixels with α_f < α_c (Yoneda region and below)
    get NaN. → ``coords.q_z`` as α_c → 0 above the horizon. q_xy is unchanged by
    refraction.
    """
    critical = _check_critical_angle(critical_angle_deg)
    sin_c2 = math.sin(math.radians(critical)) ** 2
    sin_i = sin_incidence(coords.sample)
    sin_f = sin_exit(coords)
    k = coords.k
    incident = math.sqrt(max(sin_i * sin_i - sin_c2, 0.0))
    inside = (sin_f >= 0.0) & (sin_f * sin_f >= sin_c2)
    exit_term = np.sqrt(np.where(inside, sin_f * sin_f - sin_c2, np.nan))
    return k * (exit_term + incident)


def corrected_q_z(corrections: Corrections, coords: PixelCoordinates) -> np.ndarray:
    """``coords.q_z``, or :func:`refracted_q_z` when ``corrections.refraction`` is on."""
    corrections.check_sample(coords.sample)
    if corrections.refraction:
        return refracted_q_z(coords, corrections.critical_angle_deg)  # type: ignore[arg-type]
    return coords.q_z


# --- all together -----------------------------------------------------------------------


def correction_factors(corrections: Corrections, geometry: DetectorGeometry,
                       coords: PixelCoordinates) -> np.ndarray:
    """The norm per pixel: the product of every enabled factor (float64, detector shape;
    all ones when none is enabled). *coords* must be the pixel centres of *geometry*."""
    corrections.check_sample(coords.sample)
    shape = tuple(geometry.shape)
    if coords.tth.shape != shape:
        raise ValueError(f"coordinates of shape {coords.tth.shape} do not match the "
                         f"detector shape {shape}")
    norm = np.ones(shape, dtype=np.float64)
    c = corrections
    if c.solid_angle:
        norm *= solid_angle_factor(geometry)
    if c.polarization_factor is not None:
        norm *= polarization_factor_array(geometry, c.polarization_factor,
                                          c.polarization_offset_deg)
    if c.air_absorption:
        norm *= air_absorption_factor(geometry, c.air_attenuation_length_m,  # type: ignore[arg-type]
                                      c.air_path_offset_m)
    if c.sensor_efficiency:
        norm *= sensor_efficiency_factor(geometry, c.sensor_thickness_m,
                                         c.sensor_attenuation_length_m)  # type: ignore[arg-type]
    if c.film_absorption:
        norm *= film_absorption_factor(coords, c.film_thickness_m,  # type: ignore[arg-type]
                                       c.film_attenuation_length_m)  # type: ignore[arg-type]
    if c.lorentz is not None:
        norm *= lorentz_factor(coords, c.lorentz)
    return norm


# --- the corrections list of `convert --corrections` and `[reduction] corrections` ---


def parse_corrections(text: str) -> Corrections:
    """``solid_angle,polarization=0.99,lorentz=gid,…`` → :class:`Corrections`.

    Items: ``none``; ``solid_angle``; ``polarization[=P]`` (P default 0.99);
    ``polarization_offset=DEG``; ``air=L_m[:OFFSET_m]``; ``sensor=L_m[:THICKNESS_m]``;
    ``film=THICKNESS_m:L_m``; ``lorentz=gid|powder``; ``refraction=ALPHA_C_DEG``.
    Corrections not listed are off.
    """
    values: dict = {"solid_angle": False, "polarization_factor": None}
    for item in (part.strip() for part in text.split(",")):
        if not item or item == "none":
            continue
        key, _, value = item.partition("=")
        key = key.strip().replace("-", "_")
        try:
            numbers = [float(v) for v in value.split(":")] if value and key != "lorentz" \
                else []
        except ValueError:
            raise NxgidError(f"--corrections {item!r}: {value!r} is not a number") from None
        if key == "solid_angle" and not value:
            values["solid_angle"] = True
        elif key == "polarization":
            values["polarization_factor"] = numbers[0] if numbers else 0.99
        elif key == "polarization_offset" and len(numbers) == 1:
            values["polarization_offset_deg"] = numbers[0]
        elif key == "air" and len(numbers) in (1, 2):
            values.update(air_absorption=True, air_attenuation_length_m=numbers[0])
            if len(numbers) == 2:
                values["air_path_offset_m"] = numbers[1]
        elif key == "sensor" and len(numbers) in (1, 2):
            values.update(sensor_efficiency=True, sensor_attenuation_length_m=numbers[0])
            if len(numbers) == 2:
                values["sensor_thickness_m"] = numbers[1]
        elif key == "film" and len(numbers) == 2:
            values.update(film_absorption=True, film_thickness_m=numbers[0],
                          film_attenuation_length_m=numbers[1])
        elif key == "lorentz" and value in ("gid", "powder"):
            values["lorentz"] = value
        elif key == "refraction" and len(numbers) == 1:
            values.update(refraction=True, critical_angle_deg=numbers[0])
        else:
            raise NxgidError(
                f"--corrections {item!r}: expected none, solid_angle, polarization[=P], "
                "polarization_offset=DEG, air=L_m[:OFFSET_m], sensor=L_m[:THICKNESS_m], "
                "film=THICKNESS_m:L_m, lorentz=gid|powder or refraction=ALPHA_C_DEG")
    return Corrections(**values)
