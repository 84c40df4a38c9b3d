"""Names shared with the outside world and the rules for the names users choose.

One module owns these strings so that every writer, reader and validator agrees:

- the NeXus vocabulary and result names (they follow pygid's, so nxgid files feed the
  mlgid analysis tools);
- the naming rule for experiments, samples, labels and scans. Those names become
  directory and file names, so they are restricted to letters, digits, ``-``, ``_`` and
  ``.``; they are not empty, not ``.`` or ``..``, contain no path separator and have at
  most :data:`MAX_NAME_LENGTH` characters.
"""

from __future__ import annotations

import re

from nxgid.errors import InvalidNameError

#: ``NXsource/type`` values allowed by the NeXus base class (NeXus v2024+ wording).
SOURCE_TYPES: tuple[str, ...] = (
    "Synchrotron X-ray Source",
    "Rotating Anode X-ray",
    "Fixed Tube X-ray",
    "Metal Jet X-ray",
    "Free-Electron Laser",
    "Spallation Neutron Source",
    "Pulsed Reactor Neutron Source",
    "Reactor Neutron Source",
    "Pulsed Muon Source",
    "UV Laser",
    "Optical Laser",
    "Ion Source",
    "UV Plasma Source",
)

#: Two-dimensional results: name -> (geometry, (x axis, y axis)).
MAP_RESULTS: dict[str, tuple[str, tuple[str, str]]] = {
    "img_gid_q": ("gid", ("q_xy", "q_z")),
    "img_gid_pol": ("gid", ("q_gid_pol", "ang_gid_pol")),
    "img_gid_pseudopol": ("gid", ("q_gid_rad", "q_gid_azimuth")),
    "img_gid_exit": ("gid", ("ang_gid_inplane", "ang_gid_exit")),
    "img_q": ("transmission", ("q_x", "q_y")),
    "img_pol": ("transmission", ("q_pol", "ang_pol")),
    "img_pseudopol": ("transmission", ("q_rad", "q_azimuth")),
}

#: One-dimensional profiles: name -> (geometry, axis).
PROFILE_RESULTS: dict[str, tuple[str, str]] = {
    "rad_cut_gid": ("gid", "q_gid_pol"),
    "azim_cut_gid": ("gid", "ang_gid_pol"),
    "horiz_cut_gid": ("gid", "q_xy"),
    "vert_cut_gid": ("gid", "q_z"),
    "rad_cut": ("transmission", "q_pol"),
    "azim_cut": ("transmission", "ang_pol"),
}

RESULT_NAMES: tuple[str, ...] = (*MAP_RESULTS, *PROFILE_RESULTS)

#: The results pygid 0.2.20's reader knows. It rejects a whole file when any top-level
#: group is not one of them, so nxgid's other results (exit-angle maps) are nested in
#: the collection :data:`OTHER_RESULTS` of the pygid entry converted from the same frames.
PYGID_RESULTS: frozenset[str] = frozenset(RESULT_NAMES) - {"img_gid_exit"}

# --- the nxgid NeXus format (see docs/nexus-format.md) ------------------------------

#: The application definition nxgid's converted files follow (shipped in
#: ``nxgid/nexus/definitions``), and its version.
DEFINITION = "NXgid"
DEFINITION_VERSION = "1.0"

#: Groups of an entry.
DATA = "data"
INSTRUMENT = "instrument"
SOURCE = "source"
MONOCHROMATOR = "monochromator"
DETECTOR = "detector"
SAMPLE = "sample"
PROCESS = "process"
ANALYSIS = "analysis"

#: Where a raw stack (``<scan>/fN.h5``, made by nxgid.experiment.stack or linked by an import)
#: holds its detector frames; scan files link it from their entries ``fN``.
RAW_STACK_DATA = "/entry/data/data"

#: The frame axis of every stacked result (pygid's name, so mlgid tools read it).
FRAME_AXIS = "frame_ind"
#: Per-frame provenance in ``data``: raw file and frame number in it (pygid's names).
FRAME_FILE = "filename"
FRAME_NUMBER = "frame_num"
#: Per-frame normalisation monitor in ``data``.
FRAME_MONITOR = "monitor"
#: Per-frame angle of incidence: the dataset lives in ``instrument`` (pygid's place)
#: and ``data`` holds a hard link to it under ``FRAME_INCIDENCE_LINK``.
INCIDENCE_ANGLE = "angle_of_incidence"
FRAME_INCIDENCE_LINK = "incidence_angle"
#: Suffix of the uncertainty dataset of a signal (NeXus ``FIELDNAME_errors``).
ERRORS_SUFFIX = "_errors"
#: In ``data``: pygid's per-frame analysis groups ``analysis/frameNNNNN`` (the mlgid
#: tools write their peak tables there).
FRAME_ANALYSIS = "analysis"
FRAME_GROUP = "frame{:05d}"
#: Groups in ``process`` that the mlgid tools write their parameters into (made by nxgid
#: as NXparameters: the tools would make NXprocess groups, which NXprocess may not hold).
ANALYSIS_TOOLS: tuple[str, ...] = ("mlgiddetect", "pygidfit", "mlgidmatch", "peak_tracking")
#: In an entry: the NXcollection holding the results pygid does not know.
OTHER_RESULTS = "other_results"
#: The detector's pixel mask in reduced files: the NXdetector ``pixel_mask`` bitfield,
#: named ``mask`` because pynxtools 0.16 rejects any field with the reserved suffix
#: ``_mask`` that has no sibling field (here ``pixel``).
DETECTOR_MASK = "mask"
#: Units of the beam centre in reduced files: pixels, as pygid reads it.
BEAM_CENTER_UNITS = "pixel"

#: ``process`` contents.
PROCESS_CONFIGURATION = "configuration"  # NXnote with the JSON
PROCESS_CONFIGURATION_HASH = "configuration_sha256"
PROCESS_CORRECTIONS = "corrections"  # NXcollection, one group per correction
PROCESS_INPUTS = "inputs"  # NXcollection: poni, mask, dark, flat, sample file, images
PROCESS_RECIPE = "recipe"  # NXnote with the reduction recipe's JSON (optional)
PROCESS_RECIPE_HASH = "recipe_sha256"

#: What each result is, for readers and ``nxgid show``.
RESULT_DESCRIPTIONS: dict[str, str] = {
    "img_gid_q": "grazing-incidence map in q_xy and q_z",
    "img_gid_pol": "grazing-incidence polar map in |q| and chi",
    "img_gid_pseudopol": "grazing-incidence pseudo-polar map in |q| and |q|*chi",
    "img_gid_exit": "grazing-incidence map in exit angles (in-plane and out-of-plane)",
    "img_q": "transmission map in q_x and q_y",
    "img_pol": "transmission polar map in |q| and chi",
    "img_pseudopol": "transmission pseudo-polar map in |q| and |q|*chi",
    "rad_cut_gid": "grazing-incidence radial profile (intensity against |q|)",
    "azim_cut_gid": "grazing-incidence azimuthal profile (intensity against chi)",
    "horiz_cut_gid": "grazing-incidence horizontal profile (intensity against q_xy)",
    "vert_cut_gid": "grazing-incidence vertical profile (intensity against q_z)",
    "rad_cut": "transmission radial profile (intensity against |q|)",
    "azim_cut": "transmission azimuthal profile (intensity against chi)",
}

#: Axis descriptions, for ``@long_name``.
AXIS_DESCRIPTIONS: dict[str, str] = {
    "q_xy": "in-plane scattering vector q_xy",
    "q_z": "out-of-plane scattering vector q_z",
    "q_gid_pol": "scattering vector |q|",
    "ang_gid_pol": "polar angle chi from +q_xy",
    "q_gid_rad": "scattering vector |q|",
    "q_gid_azimuth": "arc length |q|*chi",
    "ang_gid_inplane": "in-plane exit angle phi_f",
    "ang_gid_exit": "exit angle alpha_f",
    "q_x": "horizontal scattering vector q_x",
    "q_y": "vertical scattering vector q_y",
    "q_pol": "scattering vector |q|",
    "ang_pol": "azimuthal angle chi",
    "q_rad": "scattering vector |q|",
    "q_azimuth": "arc length |q|*chi",
}

#: NXdetector ``pixel_mask`` bits nxgid sets (NeXus meaning).
PIXEL_MASK_GAP = 1 << 0
PIXEL_MASK_USER = 1 << 8


#: Corrections by their key in a conversion's ``process["corrections"]``, as said in labels.
_CORRECTION_WORDS = {
    "solid_angle": "solid angle", "polarization": "polarization",
    "air_absorption": "air absorption", "sensor_efficiency": "sensor efficiency",
    "film_absorption": "film absorption", "lorentz": "Lorentz factor",
    "refraction": "refraction (q_z)",
}


def intensity_label(process: dict) -> str:
    """What the intensity of a result is, from its conversion record (``process``):
    counts per pixel, per monitor count or not, and every correction applied — the same
    words in the file (``@long_name``), in ``nxgid show`` and on every picture."""
    what = "counts per pixel"
    if process.get("method") in ("bilinear", "nearest"):
        what = f"counts per pixel ({process['method']} sample)"
    if process.get("monitor_normalised"):
        what += " per monitor count"
    applied = [word for key, word in _CORRECTION_WORDS.items()
               if isinstance(process.get("corrections", {}).get(key), dict)
               and process["corrections"][key].get("applied")]
    parts = [what]
    if process.get("dark"):
        parts.append("dark subtracted")
    if applied:
        parts.append("corrected for " + ", ".join(applied))
    if process.get("flat"):
        parts.append("flat-field corrected")
    if len(parts) == 1:
        parts.append("no corrections")
    return "; ".join(parts)


# --- the naming rule of experiments, samples, labels and scans ---

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
