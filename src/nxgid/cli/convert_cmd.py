"""``nxgid convert``, ``nxgid show`` and ``nxgid plot``: standalone, no experiment needed."""

from __future__ import annotations

from pathlib import Path

import click

from nxgid.cli.common import console, progress_bar
from nxgid.errors import ExistsError, NxgidError


def _pairs(values: tuple[str, ...], option: str, kind) -> dict[str, object]:
    """``AXIS=VALUE`` options → {axis: parsed value}."""
    parsed = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise NxgidError(f"{option} {text!r}: expected AXIS=VALUE, e.g. {option} "
                             + ("q_xy=-2:2" if kind is _interval else "q_z=500"))
        parsed[key.strip()] = kind(value, f"{option} {text!r}")
    return parsed


def _interval(text: str, what: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(low), float(high)
    except ValueError:
        raise NxgidError(f"{what}: expected LOW:HIGH, e.g. 0.1:2.5") from None


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise NxgidError(f"{what}: {text!r} is not a whole number of bins") from None


def _count(text: str, what: str) -> int:
    """A count with an optional k or M suffix: 500k, 4M, 25000000."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text.strip()[-1:].lower(), 1)
    number = text.strip()[:-1] if scale != 1 else text.strip()
    try:
        value = round(float(number) * scale)
    except ValueError:
        raise NxgidError(f"{what} {text!r}: expected a count, e.g. 4M or 500k") from None
    if value < 1:
        raise NxgidError(f"{what} {text!r}: expected at least 1")
    return value


def _float(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise NxgidError(f"{what}: {text!r} is not a number") from None


def _angles(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NxgidError(f"--incidence {text!r}: expected degrees, e.g. 0.15 or "
                         "0.1,0.15,0.2 (one per frame)") from None


def _numbers(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NxgidError(f"{what} {text!r}: expected numbers separated by commas") from None


def _variable(text: str) -> tuple[str, tuple[list[float], str]]:
    """``temperature=300,310:K`` → ("temperature", ([300, 310], "K"))."""
    from nxgid.names import check_name

    name, sep, rest = text.partition("=")
    if not sep:
        raise NxgidError(f"--var {text!r}: expected NAME=VALUE[,VALUE…][:UNIT], e.g. "
                         "temperature=300:K")
    check_name(name.strip(), "scan variable")
    values, _, unit = rest.partition(":")
    return name.strip(), (_numbers(values, f"--var {name}"), unit.strip())


def _specs(to: str, ranges, bins, steps, cuts):
    from nxgid.conversion import TargetSpec
    from nxgid.conversion.grid import axis_names
    from nxgid.nexus.convert import result_name

    names = [result_name(n) for n in to.split(",") if n.strip()]
    used = set()
    specs = []
    for name in names:
        axes = axis_names(name)
        used.update(a for a in (*ranges, *bins, *steps) if a in axes)
        specs.append(TargetSpec(
            name, ranges={a: v for a, v in ranges.items() if a in axes},
            bins={a: v for a, v in bins.items() if a in axes},
            steps={a: v for a, v in steps.items() if a in axes}, cut=cuts.get(name)))
    unused = sorted({*ranges, *bins, *steps} - used)
    if unused:
        raise NxgidError(f"axis {unused[0]!r} belongs to none of the results "
                         f"{', '.join(names)}")
    for name in cuts:
        if name not in names:
            raise NxgidError(f"--cut {name}: {name} is not among the results of --to")
    return specs


def _site_instrument() -> dict:
    """Source and instrument names from the site settings, if there are any."""
    try:
        from nxgid.settings import load_effective, site_settings_path

        settings = load_effective(site_settings_path(), None).settings
    except Exception:  # no or unreadable site settings: convert stays standalone
        return {}
    inst = settings.instrument
    return {"source_name": inst.source or None, "source_type": inst.source_type,
            "instrument_name": inst.instrument or "unknown"}


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--poni", required=True, type=click.Path(path_type=Path),
              help="Detector geometry (pyFAI PONI file).")
@click.option("--incidence", metavar="DEG[,DEG…]",
              help="Angle of incidence in degrees: one for all frames or one per frame.")
@click.option("--transmission", is_flag=True, help="Transmission geometry (no incidence).")
@click.option("--tilt", "tilt_deg", type=float, default=0.0, show_default=True,
              help="Sample tilt about the beam in degrees (grazing incidence).")
@click.option("--to", "to", default=None, metavar="RESULTS",
              help="Comma-separated results, e.g. gid_q,gid_pol,rad_cut_gid "
                   "[default: gid_q, or q with --transmission].")
@click.option("--range", "ranges", multiple=True, metavar="AXIS=LO:HI",
              help="Range of an axis in its unit (q unit or degrees); repeatable.")
@click.option("--bins", multiple=True, metavar="AXIS=N", help="Bins along an axis.")
@click.option("--step", "steps", multiple=True, metavar="AXIS=STEP", help="Bin width.")
@click.option("--cut", "cuts", multiple=True, metavar="PROFILE=LO:HI",
              help="Range a profile is cut over, e.g. vert_cut_gid=-0.05:0.05 (in q_xy).")
@click.option("--q-unit", type=click.Choice(["A^-1", "nm^-1"]), default="A^-1",
              show_default=True)
@click.option("--mask", type=click.Path(path_type=Path),
              help="Mask image (non-zero = masked), or a NeXus file whose NXdetector has a "
                   "pixel_mask (e.g. configurations/NAME.nxs: gaps and user masks).")
@click.option("--no-detector-mask", is_flag=True, help="Do not mask the detector's gaps.")
@click.option("--dark", type=click.Path(path_type=Path), help="Dark image (subtracted).")
@click.option("--flat", type=click.Path(path_type=Path), help="Flat-field image (divided).")
@click.option("--corrections", default="solid_angle,polarization=0.99", show_default=True,
              help="Comma-separated: none, solid_angle, polarization[=P], air=L_m[:OFF_m], "
                   "sensor=L_m[:T_m], film=T_m:L_m, lorentz=gid|powder, refraction=DEG.")
@click.option("--method", type=click.Choice(["integrate", "bilinear", "nearest"]),
              default="integrate", show_default=True,
              help="integrate: average the pixels of each bin; bilinear/nearest: sample "
                   "at bin centres (pygid-like).")
@click.option("--pixel-splitting", type=click.Choice(["auto", "all", "none"]), default="auto",
              show_default=True,
              help="Pixels shared among the bins their area covers: auto (those wider than "
                   "a bin, so no bin is left empty), all, or none.")
@click.option("--max-bins", metavar="N", default="4M", show_default=True,
              help="Most bins per frame a result may have (e.g. 4M, 25M, 500k).")
@click.option("--no-errors", is_flag=True, help="Do not propagate Poisson errors.")
@click.option("--dataset", metavar="PATH", help="Dataset in HDF5 inputs [default: found].")
@click.option("--frames", metavar="RANGE",
              help="Frames of the series, e.g. 0:100, -10:, 0,5,7:9 (0-based).")
@click.option("--monitor", metavar="V[,V…]",
              help="Normalisation monitor: one value or one per frame (intensities are "
                   "divided by it).")
@click.option("--var", "variables", multiple=True, metavar="NAME=V[,V…][:UNIT]",
              help="A scan variable recorded per frame, e.g. temperature=300,310,320:K; "
                   "repeatable.")
@click.option("--sample", "metadata_file", type=click.Path(path_type=Path),
              help="YAML file with the sample (layers) and/or experiment metadata.")
@click.option("--title", help="Entry title.")
@click.option("--source", "source_name", help="Facility (NXsource name) [site settings].")
@click.option("--instrument", "instrument_name", help="Beamline [site settings].")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output NeXus file.")
@click.option("--append", "append", is_flag=True,
              help="Add the frames to OUTPUT (matching results are stacked).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT (when the new one is done).")
@click.option("--compression", type=click.Choice(
    ["gzip", "none", "bitshuffle-lz4", "bitshuffle-zstd"]), default="gzip",
    show_default=True,
    help="gzip (level 1, shuffle) is read by every HDF5 reader (pygid, the mlgid "
         "tools, H5Web); bitshuffle is faster but needs the hdf5plugin package to read.")
@click.option("--block", "block_frames", type=click.IntRange(1, 4096), default=16,
              show_default=True, help="Frames converted and written at a time.")
@click.option("--progress/--no-progress", default=None,
              help="Progress: a bar when stderr is a terminal, else a line every 2 s "
                   "[default]; --progress: the bar; --no-progress: none.")
def convert(images, poni, incidence, transmission, tilt_deg, to, ranges, bins, steps, cuts,
            q_unit, mask, no_detector_mask, dark, flat, corrections, method, pixel_splitting,
            max_bins, no_errors, dataset, frames, monitor, variables, metadata_file, title,
            source_name, instrument_name, output, append, overwrite, compression, block_frames,
            progress) -> None:
    """Convert IMAGES (files or globs; any fabio format, HDF5/NeXus stacks, Eiger master
    files) to reciprocal space, into one NeXus file.

    \b
    Examples:
        nxgid convert 'scan1/*.cbf' --poni lab6.poni --incidence 0.15 \\
            --to gid_q,gid_pol,rad_cut_gid --range q_xy=-2:2 --bins q_z=600 -o scan1.nxs
        nxgid convert eiger_master.h5 --poni det.poni --incidence 0.2 --frames 0:100 \\
            --sample film.yaml -o film.nxs --append
    """
    from nxgid.conversion.corrections import parse_corrections
    from nxgid.experiment.boundary import guard_outputs
    from nxgid.nexus.convert import ConvertJob, run_convert

    if append and overwrite:
        raise NxgidError("give --append or --overwrite, not both")
    guard_outputs([output], [*images, poni, mask, dark, flat, metadata_file])
    mode = "append" if append else "overwrite" if overwrite else "create"
    if mode == "create" and output.exists():
        raise ExistsError(f"{output} exists: use --append to add frames to it or "
                          "--overwrite to replace it")
    specs = _specs(to or ("q" if transmission else "gid_q"),
                   _pairs(ranges, "--range", _interval), _pairs(bins, "--bins", _int),
                   _pairs(steps, "--step", _float),
                   {k: v for k, v in _pairs(cuts, "--cut", _interval).items()})
    site = _site_instrument()
    job = ConvertJob(
        inputs=list(images), output=output, poni=poni, targets=specs,
        incidence_deg=_angles(incidence), transmission=transmission, tilt_deg=tilt_deg,
        dataset=dataset, frames=frames, mask=mask, dark=dark, flat=flat,
        use_detector_mask=not no_detector_mask, corrections=parse_corrections(corrections),
        q_unit=q_unit, method=method, pixel_splitting=pixel_splitting,
        max_bins=_count(max_bins, "--max-bins"), errors=not no_errors,
        mode=mode, compression=compression, metadata_file=metadata_file, title=title,
        source_type=site.get("source_type", "Synchrotron X-ray Source"),
        source_name=source_name or site.get("source_name"),
        instrument_name=instrument_name or site.get("instrument_name", "unknown"),
        block_frames=block_frames,
        monitor=_numbers(monitor, "--monitor") if monitor else None,
        variables=dict(_variable(text) for text in variables))
    out = console()
    with progress_bar("converting", progress) as report:
        summary = run_convert(job, report)
    rate = summary.frames / summary.seconds if summary.seconds else 0.0
    out.print(f"{summary.output}: {summary.frames} frame(s) from {summary.files} file(s) in "
              f"{summary.seconds:.1f} s ({rate:.1f} frames/s), "
              f"{summary.bytes_written / 1e6:.1f} MB")
    for result, entry in summary.entries.items():
        out.print(f"  {result} → /{entry}")


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--tree", is_flag=True, help="Print every group and dataset.")
@click.option("--attributes", is_flag=True, help="With --tree: also the attributes.")
def show(file: Path, tree: bool, attributes: bool) -> None:
    """A readable summary of a NeXus FILE: entries, results, shapes, axes, metadata.

    \b
    Examples:
        nxgid show scan7.nxs
        nxgid show scan7.nxs --tree --attributes
    """
    from nxgid.nexus.reader import NexusFile
    from nxgid.nexus.summary import summarise

    nexus = NexusFile(file)
    out = console()
    if tree:
        out.print(nexus.tree(attributes=attributes))
        return
    out.print(summarise(nexus))


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--entry", help="Entry or result name [default: the file's default]; for a "
                              "scan file, its entry (f1, f2…) [the first].")
@click.option("--frame", type=int, default=None,
              help="Frame to draw (negative counts from the end) [default: mean of all].")
@click.option("--mask", "mask", is_flag=False, flag_value="file", default=None,
              metavar="[MASKFILE]",
              help="Raw frames: draw the mask over them — alone, the pixel_mask the file "
                   "carries (a scan file's); or that of MASKFILE (a configuration, a scan "
                   "file, or a mask image: non-zero = masked).")
@click.option("--log/--linear", default=True, show_default=True, help="Intensity scale.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Picture file (.png, .pdf or .svg).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def plot(file: Path, entry: str | None, frame: int | None, mask: str | None, log: bool,
         output: Path, overwrite: bool) -> None:
    """Draw a map or profile of FILE with axis labels, units and a colour bar; or, for an
    image file, a raw stack or a scan file, the raw frame as the detector sees it
    (pixels, x = column, y = row, row 0 at the top), with the mask over it on request.

    \b
    Examples:
        nxgid plot scan7.nxs -o mean.png                   # default entry, all frames
        nxgid plot scan7.nxs --entry rad_cut_gid --frame 3 --linear -o profile.svg
        nxgid plot raw/s001/img_00001.cbf -o frame.png     # a raw frame
        nxgid plot film/rt/film_s001.nxs --entry f1 --frame 0 --mask -o f1.png
    """
    from nxgid.experiment.boundary import guard_outputs
    from nxgid.nexus.reader import NexusFile
    from nxgid.safety.resources import check_output_file

    if output.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise NxgidError(f"{output}: expected a .png, .pdf or .svg file name")
    guard_outputs([output], [file, *([Path(mask)] if mask not in (None, "file") else [])])
    check_output_file(output, "picture")
    if output.exists() and not overwrite:
        raise ExistsError(f"{output} exists: use --overwrite to replace it")
    if not _holds_results(file):
        from nxgid.nexus.detector_frames import load_frame
        from nxgid.plot.frames import draw_detector_image

        view = load_frame(file, entry=entry, frame=frame, mask=mask)
        path = draw_detector_image(view.image, view.bits, output, title=view.label, log=log)
        console().print(f"{path}: {view.label}" + (", with its mask" if mask else ""))
        return
    if mask is not None:
        raise NxgidError(f"--mask: {file} holds converted results, whose masked bins are "
                         "empty already; --mask draws over raw frames")
    from nxgid.plot.results import plot_result

    stored = NexusFile(file).result(entry)
    result = stored.read(frame) if frame is not None else stored.read()
    path = plot_result(result, output, frame=0 if frame is not None else None, log=log,
                       frame_label=f"frame {frame} of /{stored.entry}")
    console().print(f"{path}: {stored.name} from /{stored.entry}"
                    + (f", frame {frame}" if frame is not None else
                       f", mean of {stored.frames} frame(s)"))


def _holds_results(file: Path) -> bool:
    """True for a NeXus file of converted results (nxgid's or pygid's entries)."""
    import h5py

    from nxgid.nexus.reader import NexusFile

    if not (file.is_file() and h5py.is_hdf5(file)):
        return False
    return bool(NexusFile(file).entries())
