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
