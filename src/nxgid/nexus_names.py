"""Names shared with the outside world: NeXus vocabulary and result names.

One module owns these strings so that every writer, reader and validator agrees.
Result names follow pygid's, so nxgid files feed the mlgid analysis tools.
"""

from __future__ import annotations

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
