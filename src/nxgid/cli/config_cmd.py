"""``nxgid config``, ``nxgid calibrate`` and ``nxgid mask``: the experiment's
configurations, their powder calibration and their masks."""

from __future__ import annotations

from pathlib import Path

import click

from nxgid.cli.common import console, experiment_option, pass_state
from nxgid.errors import NxgidError

#: CLI option → per-position field of nxgid.experiment.configuration.Position.
POSITION_OPTIONS = {
    "phi_start": "phi_start_deg", "phi_end": "phi_end_deg", "phi_step": "phi_step_deg",
    "chi": "chi_deg", "omega": "omega_deg", "theta": "theta_deg",
    "incidence": "incidence_angle_deg", "detector_x": "detector_x_mm",
    "detector_y": "detector_y_mm", "frame_rate": "frame_rate_hz",
}


def _per_position(option: str, values: tuple[str, ...]):
    """Repeated (``--chi 0 --chi 5``: one per position) or indexed (``--chi 2=5``)."""
    if not values:
        return None
    indexed = {}
    plain = []
    for text in values:
        key, sep, value = text.partition("=")
        try:
            if sep:
                indexed[int(key)] = float(value)
            else:
                plain.append(float(text))
        except ValueError:
            raise NxgidError(f"--{option.replace('_', '-')} {text!r}: expected a number, "
                             "or POSITION=NUMBER (e.g. 2=0.15)") from None
    if indexed and plain:
        raise NxgidError(f"--{option.replace('_', '-')}: give plain values (one per "
                         "position) or indexed ones (N=VALUE), not both")
    return indexed or plain


def _position_options(function):
    for option in reversed(POSITION_OPTIONS):
        flag = "--" + option.replace("_", "-")
        unit = {"detector_x": "mm", "detector_y": "mm", "frame_rate": "Hz"}.get(option, "°")
        function = click.option(flag, option, multiple=True, metavar="[N=]VALUE",
                                help=f"{option.replace('_', ' ')} ({unit}), per position: "
                                     "repeat for each, or N=VALUE")(function)
    return function


@click.group()
def config() -> None:
    """Configurations: instrument and detector templates the scans are made from.

    \b
    Examples:
        nxgid config new gid --detector Pilatus2M --distance 285 --wavelength 0.9537 \\
            --incidence 0.1 --incidence 0.15 --incidence 0.2
        nxgid config list
        nxgid config show gid
    """


@config.command("new")
@click.argument("name")
@click.option("--wavelength", type=float, help="Wavelength in Å [settings].")
@click.option("--energy", type=float, help="Photon energy in keV (instead of --wavelength).")
@click.option("--distance", type=float, help="Sample–detector distance in mm [settings].")
@click.option("--detector", help="Detector name from pyFAI's database [settings].")
@click.option("--beam-center", metavar="X,Y",
              help="Beam centre in pixels, x = column and y = row, as for `nxgid mask` "
                   "and in every picture [the detector centre].")
@click.option("--source", help="Facility or source name [settings].")
@click.option("--source-type", help="NXsource type, e.g. 'Synchrotron X-ray Source' "
              "[settings].")
@click.option("--instrument", help="Beamline name [settings].")
@click.option("--positions", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Number of entries f1…fN (detector positions, rotation or incidence "
                   "scans).")
@_position_options
@click.option("--overwrite", is_flag=True, help="Replace an existing configuration.")
@experiment_option
@pass_state
def config_new(state, name, wavelength, energy, distance, detector, beam_center, source,
               source_type, instrument, positions, overwrite, **per_position) -> None:
    """Create configurations/NAME.nxs from the settings' defaults and these values.

    \b
    Example:
        nxgid config new gid --detector Pilatus2M --distance 285 --beam-center 760,60 \\
            --positions 2 --incidence 1=0.1 --incidence 2=0.2
    """
    from nxgid.experiment.configuration import spec_from_settings, write_configuration
    from nxgid.units import energy_keV_to_wavelength_A
    from nxgid.workflow.workspace import effective_settings

    experiment = state.experiment()
    settings = effective_settings(experiment).settings
    if wavelength is not None and energy is not None:
        raise NxgidError("give --wavelength or --energy, not both")
    values: dict = {}
    if energy is not None:
        if energy <= 0:
            raise NxgidError(f"--energy {energy}: expected a positive energy in keV")
        values["wavelength_A"] = energy_keV_to_wavelength_A(energy)
    if wavelength is not None:
        values["wavelength_A"] = wavelength
    if distance is not None:
        values["distance_mm"] = distance
    if detector:
        values["detector"] = detector
    if source:
        values["source_name"] = source
    if instrument:
        values["instrument_name"] = instrument
    if source_type:
        from nxgid.names import SOURCE_TYPES

        if source_type not in SOURCE_TYPES:
            raise NxgidError(f"--source-type {source_type!r}: expected one of "
                             + ", ".join(SOURCE_TYPES))
        values["source_type"] = source_type
    if beam_center:
        from nxgid.units import parse_pixel_xy

        values["beam_center_px"] = parse_pixel_xy(beam_center, "--beam-center")
    given = {POSITION_OPTIONS[k]: v for k, raw in per_position.items()
             if (v := _per_position(k, raw)) is not None}
    spec = spec_from_settings(name, settings, values=values, positions=positions,
                              per_position=given)
    path = write_configuration(experiment.configuration_file(name), spec,
                               overwrite=overwrite)
    console().print(f"{path}: {spec.detector} at {spec.distance_mm:g} mm, "
                    f"λ = {spec.wavelength_A:g} Å, {len(spec.positions)} position(s)")


@config.command("list")
@experiment_option
@pass_state
def config_list(state) -> None:
    """The experiment's configurations.

    \b
    Example:
        nxgid config list
    """
    from nxgid.experiment.configuration import configurations, read_configuration

    experiment = state.experiment()
    out = console()
    names = configurations(experiment.configurations_dir)
    if not names:
        out.print("no configurations: create one with `nxgid config new NAME`")
    for name in names:
        info = read_configuration(experiment.configuration_file(name))
        out.print(f"{name:<16} {info['detector']:<14} {info['distance_mm']:8.2f} mm  "
                  f"λ {info['wavelength_A']:.4f} Å  {len(info['positions'])} position(s)  "
                  + ("calibrated" if info["calibrated"] else "not calibrated"))


@config.command("show")
@click.argument("name")
@experiment_option
@pass_state
def config_show(state, name) -> None:
    """Everything in one configuration.

    \b
    Example:
        nxgid config show gid
    """
    from nxgid.experiment.configuration import read_configuration

    info = read_configuration(state.experiment().configuration_file(name))
    out = console()
    out.print(f"configuration {info['name']}")
    out.print(f"  detector       {info['detector']}, {info['masked_pixels']} masked pixels")
    out.print(f"  distance       {info['distance_mm']:.3f} mm")
    from nxgid.units import pixel_xy_text

    row, column = info["beam_center_px"]
    out.print(f"  beam centre    {pixel_xy_text(row, column)}; "
              f"x {info['beam_center_mm'][0]:.3f}, y {info['beam_center_mm'][1]:.3f} mm")
    out.print(f"  wavelength     {info['wavelength_A']:.5f} Å")
    out.print(f"  calibrated     {'yes' if info['calibrated'] else 'no'}")
    for entry, values in info["positions"]:
        out.print(f"  {entry:<4} " + ", ".join(f"{k} {v:g}" for k, v in values.items()))


def _config_path(state, name: str) -> tuple:
    experiment = state.experiment()
    path = experiment.configuration_file(name)
    if not path.is_file():
        from nxgid.errors import MissingError

        raise MissingError(f"configuration {name} does not exist ({path}); create it "
                           "with `nxgid config new`")
    return experiment, path


@click.command()
@click.argument("configuration")
@click.option("--image", type=click.Path(path_type=Path), help="Powder calibrant image.")
@click.option("--calibrant", help="pyFAI calibrant name (e.g. LaB6) or a d-spacing file.")
@click.option("--guess-poni", type=click.Path(path_type=Path),
              help="Start geometry [the configuration's].")
@click.option("--distance", type=float, help="Start distance in mm.")
@click.option("--beam-center", metavar="X,Y",
              help="Start beam centre in pixels, x = column and y = row.")
@click.option("--refine-wavelength", is_flag=True, help="Refine the wavelength too.")
@click.option("--import-poni", type=click.Path(path_type=Path),
              help="Take an existing calibration (PONI file) instead.")
@click.option("--export-poni", type=click.Path(path_type=Path),
              help="Also write the calibration as a PONI file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing calibration.")
@experiment_option
@pass_state
def calibrate(state, configuration, image, calibrant, guess_poni, distance, beam_center,
              refine_wavelength, import_poni, export_poni, overwrite) -> None:
    """Calibrate CONFIGURATION from a powder image (headless pyFAI), or import a PONI.

    \b
    Examples:
        nxgid calibrate gid --image lab6.cbf --calibrant LaB6
        nxgid calibrate gid --import-poni lab6.poni --overwrite
        nxgid calibrate gid --export-poni calibrations/gid.poni
    """
    from nxgid.experiment.calibration_job import run_calibration

    experiment, path = _config_path(state, configuration)
    report = run_calibration(
        experiment, path, image=image, calibrant=calibrant, guess_poni=guess_poni,
        distance_mm=distance, beam_center=beam_center, refine_wavelength=refine_wavelength,
        import_poni=import_poni, export_poni=export_poni, overwrite=overwrite)
    out = console()
    for line in report:
        out.print(line)


@click.command()
@click.argument("configuration")
@click.option("--rect", "rects", multiple=True, metavar="X,Y,W,H",
              help="Rectangle in pixels (x = column, y = row); repeatable.")
@click.option("--circle", "circles", multiple=True, metavar="X,Y,R", help="Circle.")
@click.option("--polygon", "polygons", multiple=True, metavar="X1,Y1,X2,Y2,…",
              help="Polygon.")
@click.option("--import", "imports", multiple=True, type=click.Path(path_type=Path),
              help="Mask image (tif, edf, npy, h5): non-zero = masked.")
@click.option("--below", type=float,
              help="Mask pixels at or below this count in the calibration image.")
@click.option("--replace", is_flag=True, help="Start again from the detector gaps.")
@click.option("--clear", is_flag=True, help="Remove every user mask.")
@experiment_option
@pass_state
def mask(state, configuration, rects, circles, polygons, imports, below, replace,
         clear) -> None:
    """Edit the mask of CONFIGURATION (gaps stay in bit 0, user masks go in bit 8).

    \b
    Examples:
        nxgid mask gid --rect 700,0,80,60 --circle 760,60,25     # a beam stop
        nxgid mask gid --import hot_pixels.tif --below 0
        nxgid mask gid --clear
    """
    from nxgid.experiment.calibration_job import run_mask

    experiment, path = _config_path(state, configuration)
    for line in run_mask(experiment, path, rects=rects, circles=circles, polygons=polygons,
                         imports=imports, below=below, replace=replace, clear=clear):
        console().print(line)
