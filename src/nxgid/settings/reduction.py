"""``[reduction]``: the recipe keys, their axes syntax and the corrections list.

Re-exported by :mod:`nxgid.settings.model`, which holds the other sections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from nxgid.names import MAP_RESULTS, PROFILE_RESULTS, RESULT_NAMES
from nxgid.settings.section import Section

#: The pseudo-axis of a profile's axes key: the range of the coordinate it is cut over.
CUT_KEY = "cut"

#: Items of the ``corrections`` value, in the order nxgid writes them.
CORRECTION_ITEMS = ("solid_angle", "polarization", "polarization_offset", "air", "sensor",
                    "film", "lorentz", "refraction")

#: Where the incidence angle of a scan comes from, besides a fixed number of degrees.
INCIDENCE_SOURCES = ("auto", "log", "configuration")

#: Mask keywords, besides a path to a mask image.
MASK_SOURCES = ("configuration", "gaps", "none")


#: Correction items without parameters, always valid for
#: :func:`nxgid.conversion.corrections.parse_corrections`: values made only of these are
#: checked without importing it (tests/test_recipe.py checks that it accepts each).
_PLAIN_CORRECTIONS = frozenset({"", "none", "solid_angle", "solid-angle", "polarization",
                                "lorentz=gid", "lorentz=powder"})


def format_number(value: float) -> str:
    """A number as recipes write it: the shortest exact form, without a trailing ``.0``."""
    text = repr(float(value) + 0.0)  # + 0.0 turns -0.0 into 0.0
    return text[:-2] if text.endswith(".0") else text


def result_axes(result: str) -> tuple[str, ...]:
    """The axes of a result: (x, y) of a map, (x,) of a profile."""
    if result in MAP_RESULTS:
        return MAP_RESULTS[result][1]
    if result in PROFILE_RESULTS:
        return (PROFILE_RESULTS[result][1],)
    raise ValueError(f"unknown result {result!r}: expected one of " + ", ".join(RESULT_NAMES))


@dataclass(frozen=True)
class AxesSpec:
    """What a result's axes key asks for; axis values in the q unit or degrees."""

    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    bins: dict[str, int] = field(default_factory=dict)
    #: For a profile: the range of the coordinate it is cut over.
    cut: tuple[float, float] | None = None


def _finite(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: {text.strip()!r} is not a finite number")
    return value


def _interval(name: str, low_text: str, high_text: str) -> tuple[float, float]:
    low, high = _finite(name, low_text), _finite(name, high_text)
    if not low < high:
        raise ValueError(f"{name}={low_text.strip()}:{high_text.strip()}: expected MIN < MAX")
    return low, high


def _bins(name: str, text: str) -> int:
    try:
        bins = int(text.strip())
    except ValueError:
        raise ValueError(f"{name}: {text.strip()!r} bins: expected a whole number ≥ 1") \
            from None
    if bins < 1:
        raise ValueError(f"{name}: {bins} bins: expected a whole number ≥ 1")
    return bins


def parse_axes(result: str, text: str) -> AxesSpec:
    """``q_xy=-2.4:2.4:800, q_z=467`` (and ``cut=LO:HI`` for a profile) → :class:`AxesSpec`.

    Items: ``AXIS=MIN:MAX`` (range), ``AXIS=MIN:MAX:BINS`` (range and bins), ``AXIS=BINS``
    (bins, automatic range). Raises ValueError naming the item and what was expected.
    """
    axes = result_axes(result)
    profile = result in PROFILE_RESULTS
    expected = "AXIS=MIN:MAX, AXIS=MIN:MAX:BINS or AXIS=BINS" + \
        (", or cut=LO:HI" if profile else "")
    ranges: dict[str, tuple[float, float]] = {}
    bins: dict[str, int] = {}
    cut: tuple[float, float] | None = None
    seen: set[str] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise ValueError(f"{item!r}: expected {expected}")
        if name in seen:
            raise ValueError(f"{name} is given twice")
        seen.add(name)
        parts = value.split(":")
        if name == CUT_KEY:
            if not profile:
                raise ValueError(f"{item!r}: only profiles ({', '.join(PROFILE_RESULTS)}) "
                                 "take a cut range")
            if len(parts) != 2:
                raise ValueError(f"{item!r}: expected cut=LO:HI")
            cut = _interval(name, *parts)
            continue
        if name not in axes:
            raise ValueError(f"{result} has no axis {name!r}: its axes are "
                             + ", ".join(axes) + (" (and cut)" if profile else ""))
        if len(parts) == 1:
            bins[name] = _bins(name, parts[0])
        elif len(parts) in (2, 3):
            ranges[name] = _interval(name, parts[0], parts[1])
            if len(parts) == 3:
                bins[name] = _bins(name, parts[2])
        else:
            raise ValueError(f"{item!r}: expected {expected}")
    return AxesSpec(ranges, bins, cut)


def format_axes(result: str, spec: AxesSpec) -> str:
    """The canonical text of an axes key: the result's axis order, then ``cut``."""
    items = []
    for axis in result_axes(result):
        if axis in spec.ranges:
            low, high = spec.ranges[axis]
            text = f"{axis}={format_number(low)}:{format_number(high)}"
            items.append(text + (f":{spec.bins[axis]}" if axis in spec.bins else ""))
        elif axis in spec.bins:
            items.append(f"{axis}={spec.bins[axis]}")
    if spec.cut is not None:
        items.append(f"{CUT_KEY}={format_number(spec.cut[0])}:{format_number(spec.cut[1])}")
    return ", ".join(items)


def correction_items(text: str) -> dict[str, str]:
    """The items of a ``corrections`` value: name → value ("" for a bare item such as
    ``solid_angle``), in the canonical order; ``none`` is left out and a repeated item
    keeps its last value, as :func:`nxgid.conversion.corrections.parse_corrections` reads them."""
    items: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item or item == "none":
            continue
        key, _, value = item.partition("=")
        items[key.strip().replace("-", "_")] = value.strip()
    order = {name: index for index, name in enumerate(CORRECTION_ITEMS)}
    return dict(sorted(items.items(), key=lambda kv: order.get(kv[0], len(order))))


def format_corrections(items: dict[str, str]) -> str:
    """The canonical text of (valid) correction items; ``none`` when there are none."""
    parts = []
    for key, value in items.items():
        if value and key != "lorentz":
            value = ":".join(format_number(float(v)) for v in value.split(":"))
        parts.append(f"{key}={value}" if value else key)
    return ", ".join(parts) or "none"


def _axes_field(result: str) -> Any:
    axes = result_axes(result)
    if result in MAP_RESULTS:
        what = (f"axes of {result}: {axes[0]}=MIN:MAX[:BINS] or {axes[0]}=BINS, and the "
                f"same for {axes[1]}")
    else:
        what = (f"axis of {result}: {axes[0]}=MIN:MAX[:BINS] or {axes[0]}=BINS, and "
                "cut=LO:HI, the range it is cut over")
    return Field("", description=f"{what} (q unit or degrees); empty = automatic")


class ReductionSettings(Section):
    """``[reduction]``: the recipe, how scans are reduced to reciprocal space.

    ``[reduction SAMPLE]``, ``[reduction SAMPLE/LABEL]`` and
    ``[reduction SAMPLE/LABEL/SCAN]`` sections of an experiment override any of these keys
    for part of it (:mod:`nxgid.experiment.recipe`).
    """

    outputs: list[str] = Field(
        default_factory=lambda: ["img_gid_q", "img_gid_pol"],
        description="results to produce, comma-separated (pygid names, e.g. img_gid_q)")
    q_unit: Literal["A^-1", "nm^-1"] = Field("A^-1", description="unit of q: A^-1 or nm^-1")
    method: Literal["integrate", "bilinear", "nearest"] = Field(
        "integrate", description="integrate pixels into bins, or sample the image at bin "
                                 "centres (bilinear, nearest) as pygid interpolates")

    @field_validator("method", mode="before")
    @classmethod
    def _old_method_name(cls, value: Any) -> Any:
        # schema 1 called pygid-like sampling "interpolate": it is bilinear sampling
        return "bilinear" if value == "interpolate" else value
    pixel_splitting: Literal["auto", "all", "none"] = Field(
        "auto", description="which pixels are shared among the bins their area covers: "
                            "auto (those wider than a bin: no empty bins), all, none")

    @field_validator("pixel_splitting", mode="before")
    @classmethod
    def _splitting_from_boolean(cls, value: Any) -> Any:
        # schema 2 had a boolean: true split every pixel, false none
        text = str(value).strip().lower()
        words = {**dict.fromkeys(("1", "true", "t", "yes", "y", "on"), "all"),
                 **dict.fromkeys(("0", "false", "f", "no", "n", "off"), "none")}
        return words.get(text, text)
    max_bins: int = Field(4_000_000, ge=1,
                          description="most bins per frame a result may have")
    errors: bool = Field(True, description="propagate Poisson variance into errors")
    corrections: str = Field(
        "solid_angle, polarization",
        description="intensity corrections, comma-separated: none, solid_angle, "
                    "polarization[=P] (bare: [configuration] polarization_factor), "
                    "polarization_offset=DEG, air=L_m[:OFFSET_m], sensor=L_m[:THICKNESS_m], "
                    "film=THICKNESS_m:L_m, lorentz=gid|powder, refraction=ALPHA_C_DEG")
    monitor_normalisation: bool = Field(False,
                                        description="divide each frame by its monitor count")
    mask: str = Field(
        "configuration",
        description="pixel mask: configuration (the configuration's detector gaps and user "
                    "mask), gaps (detector gaps only), none, or a mask image path (relative "
                    "to the experiment)")
    dark: str = Field("", description="dark image path (relative to the experiment); "
                                      "empty = none")
    flat: str = Field("", description="flat-field image path (relative to the experiment); "
                                      "empty = none")
    incidence_angle: str = Field(
        "auto", description="incidence angle: auto (the scan's per-frame log if it has one, "
                            "else the configuration's), log, configuration, or degrees")
    tilt_deg: float = Field(0.0, ge=-180.0, le=180.0,
                            description="sample tilt in degrees (pyFAI fiber tilt)")
    sample_orientation: int = Field(1, ge=1, le=8,
                                    description="sample orientation 1–8 (pyFAI fiber)")
    preview: Literal["first", "sum"] = Field(
        "first", description="frame the PNG previews show: the first, or the sum of all")
    block_frames: int = Field(16, ge=1, le=4096,
                              description="frames converted and written per block")
    compression: Literal["gzip", "none", "bitshuffle-lz4", "bitshuffle-zstd"] = Field(
        "gzip", description="compression of output datasets: gzip (read by every HDF5 "
                            "reader), none, bitshuffle-lz4 or -zstd (faster; readers "
                            "need hdf5plugin)")
    img_gid_q: str = _axes_field("img_gid_q")
    img_gid_pol: str = _axes_field("img_gid_pol")
    img_gid_pseudopol: str = _axes_field("img_gid_pseudopol")
    img_gid_exit: str = _axes_field("img_gid_exit")
    img_q: str = _axes_field("img_q")
    img_pol: str = _axes_field("img_pol")
    img_pseudopol: str = _axes_field("img_pseudopol")
    rad_cut_gid: str = _axes_field("rad_cut_gid")
    azim_cut_gid: str = _axes_field("azim_cut_gid")
    horiz_cut_gid: str = _axes_field("horiz_cut_gid")
    vert_cut_gid: str = _axes_field("vert_cut_gid")
    rad_cut: str = _axes_field("rad_cut")
    azim_cut: str = _axes_field("azim_cut")

    @field_validator("outputs", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("outputs")
    @classmethod
    def _known_outputs(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in RESULT_NAMES]
        if unknown:
            raise ValueError(f"unknown result {', '.join(unknown)}; expected names from: "
                             + ", ".join(RESULT_NAMES))
        return list(dict.fromkeys(value))

    @field_validator("corrections")
    @classmethod
    def _corrections(cls, value: str) -> str:
        items = [part.strip() for part in value.split(",")]
        if not all(item in _PLAIN_CORRECTIONS for item in items):
            # the corrections module pulls in the geometry (pyFAI): imported only for
            # values with parameters, which need its checks.
            from nxgid.conversion.corrections import parse_corrections
            from nxgid.errors import NxgidError

            try:
                parse_corrections(value)
            except NxgidError as exc:
                raise ValueError(str(exc).removeprefix("--corrections ")) from None
        return format_corrections(correction_items(value))

    @field_validator("mask")
    @classmethod
    def _mask(cls, value: str) -> str:
        text = value.strip()
        if text.lower() in MASK_SOURCES:
            return text.lower()
        if not text:
            raise ValueError("expected configuration, gaps, none or the path of a mask image")
        return text

    @field_validator("dark", "flat")
    @classmethod
    def _image_path(cls, value: str) -> str:
        return value.strip()

    @field_validator("incidence_angle")
    @classmethod
    def _incidence_angle(cls, value: str) -> str:
        text = value.strip()
        if text.lower() in INCIDENCE_SOURCES:
            return text.lower()
        try:
            angle = float(text)
        except ValueError:
            raise ValueError("expected auto, log, configuration or an angle in degrees") \
                from None
        if not (math.isfinite(angle) and 0.0 <= angle < 90.0):
            raise ValueError("expected an angle of at least 0 and below 90 degrees")
        return format_number(angle)

    @field_validator("tilt_deg")
    @classmethod
    def _no_negative_zero(cls, value: float) -> float:
        return value + 0.0  # -0 and 0 are one recipe

    @field_validator(*RESULT_NAMES)
    @classmethod
    def _axes(cls, value: str, info: ValidationInfo) -> str:
        result = str(info.field_name)
        return format_axes(result, parse_axes(result, value))

    def axes(self, result: str) -> AxesSpec:
        """The parsed axes key of *result*."""
        return parse_axes(result, getattr(self, result))


if missing := [name for name in RESULT_NAMES if name not in ReductionSettings.model_fields]:
    raise RuntimeError(f"ReductionSettings has no axes key for {', '.join(missing)}")
