"""A readable summary of a NeXus file, for ``nxgid show``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nxgid import names as nx
from nxgid.nexus.frames import read_text, scan_variables
from nxgid.nexus.reader import NexusFile, _text
from nxgid.units import length_m, pixel_xy_text


def _range(values: np.ndarray, unit: str = "") -> str:
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if not finite.size:
        return "none"
    low, high = float(np.min(finite)), float(np.max(finite))
    text = f"{low:g}" if low == high else f"{low:g} … {high:g}"
    return f"{text} {unit}".rstrip()


def summarise(nexus: NexusFile) -> str:
    """Entries, results, shapes, axes, frames and metadata, as lines of text."""
    import h5py
    import hdf5plugin  # noqa: F401

    size_mb = nexus.path.stat().st_size / 1e6
    lines = [f"{nexus.path} ({size_mb:.1f} MB)"]
    entries = nexus.entries()
    with h5py.File(nexus.path, "r") as root:
        creator = root.attrs.get("creator")
        if creator is not None:
            lines[0] += f", written by {_text(creator)}"
        default = root.attrs.get("default")
        linked = linked_lines(root, nexus.path)
        shown = {e.name for e in entries} | {line[1:].split(":")[0] for line in linked
                                              if line.startswith("/")}
        others = [f"/{name} ({_text(item.attrs.get('NX_class', 'group'))})"
                  for name, item in root.items() if name not in shown]
        if not entries and not linked:
            lines.append("no converted results")
        lines.extend(linked)
        for info in entries:
            entry = root[info.name]
            data = entry[nx.DATA]
            signal = data[info.result]
            marker = " (default)" if default is not None and _text(default) == info.name \
                else ""
            lines.append(f"\n/{info.name}{marker}: {info.result} — {info.description}")
            lines.append(f"  {info.frames} frame(s) × "
                         + " × ".join(str(s) for s in info.shape[1:])
                         + f", {signal.dtype}, chunks {signal.chunks}, "
                         + _filters(signal)
                         + (", with errors" if info.result + nx.ERRORS_SUFFIX in data
                            else ""))
            lines.append(f"  intensity        {_intensity(signal)}")
            cut = cut_text(signal.attrs)
            if cut:
                lines.append(f"  cut              {cut}")
            for axis in info.axes:
                values = data[axis][()]
                unit = _text(data[axis].attrs.get("units", ""))
                step = (values[-1] - values[0]) / max(len(values) - 1, 1)
                lines.append(f"  {axis:<16} {_range(values, unit)} ({len(values)} bins of "
                             f"{step:.4g})")
            lines.append(f"  time             {read_text(entry['start_time']) or '?'} → "
                         f"{read_text(entry['end_time']) or '?'}")
            incidence = data.get(nx.FRAME_INCIDENCE_LINK)
            if incidence is not None:
                lines.append("  incidence angle  " + _range(incidence[()], "degree"))
            files = {_text(f) for f in data[nx.FRAME_FILE][()]} - {""}
            if files:
                shown = sorted(files)
                lines.append(f"  raw files        {len(files)}: {', '.join(shown[:3])}"
                             + (", …" if len(shown) > 3 else ""))
            for variable in scan_variables(data):
                unit = _text(data[variable].attrs.get("units", ""))
                lines.append(f"  {variable:<16} {_range(data[variable][()], unit)}")
            lines.extend("  " + line for line in _process(entry))
        if entries:
            first = entries[0].name
            lines.append("")
            lines.extend(_instrument(root[first]))
            lines.extend(_metadata(nexus, first))
        if others:
            lines.append("\nother groups: " + ", ".join(others))
    return "\n".join(lines)


def linked_lines(root, path: Path) -> list[str]:
    """What a scan file (or any file that links instead of holding) points at: per
    NXentry, its frames (an external link to a raw stack) and the results it links in
    an NXcollection (one NXdata per result, linked to a reduced file), each with its
    shape, or "missing" when the target is not there."""
    import h5py

    lines: list[str] = []
    for name, entry in root.items():
        if _text(entry.attrs.get("NX_class", "")) != "NXentry":
            continue
        found = []
        for group_name, group in entry.items():
            if not isinstance(group, h5py.Group):
                continue
            kind = _text(group.attrs.get("NX_class", ""))
            if kind == "NXdata":
                target = _external(group, "data", path)
                if target is not None:
                    found.append(f"  frames   {target}")
            elif kind == "NXcollection":
                for result, data in group.items():
                    signal = _text(data.attrs.get("signal", "")) if isinstance(
                        data, h5py.Group) else ""
                    target = _external(data, signal, path) if signal else None
                    if target is not None:
                        found.append(f"  {group_name:<8} {result}: {target}")
        if found:
            lines += ["", f"/{name}: links to", *found]
    return lines


def _external(group, name: str, path: Path) -> str | None:
    """``FILE:/PATH (shape)`` of an external link *name* in *group*, or None."""
    import h5py

    link = group.get(name, getlink=True)
    if not isinstance(link, h5py.ExternalLink):
        return None
    where = f"{link.filename}:{link.path}"
    try:
        shape = group[name].shape
    except (KeyError, OSError):
        return f"{where} (missing)"
    return f"{where} ({' × '.join(map(str, shape))})"


def _intensity(signal) -> str:
    label = _text(signal.attrs.get("long_name", "")) or "?"
    units = _text(signal.attrs.get("units", ""))
    return f"{label} [{units}]" if units else label


def cut_text(attrs) -> str:
    """``q_xy -0.05 … 0.05 1/angstrom`` from a profile signal's cut attributes."""
    if "cut_axis" not in attrs:
        return ""
    lo, hi = (float(v) for v in attrs["cut_range"])
    return f"{_text(attrs['cut_axis'])} {lo:g} … {hi:g} {_text(attrs.get('cut_units', ''))}"\
        .rstrip()


def _filters(dataset) -> str:
    plist = dataset.id.get_create_plist()
    names = []
    for index in range(plist.get_nfilters()):
        code, _flags, _values, name = plist.get_filter(index)
        names.append({32008: "bitshuffle", 1: "gzip", 2: "shuffle", 32001: "blosc",
                      32015: "zstd"}.get(code, _text(name) or str(code)))
    return "+".join(names) if names else "uncompressed"


def _process(entry) -> list[str]:
    process = entry.get(nx.PROCESS)
    if process is None:
        return []
    program = " ".join(_text(process[k][()]) for k in ("program", "version") if k in process)
    lines = [f"process          {program} on {_text(process['date'][()])}"
             if "date" in process else f"process          {program}"]
    applied = []
    corrections = process.get(nx.PROCESS_CORRECTIONS)
    if corrections is not None:
        for name, group in corrections.items():
            if "applied" in group and bool(group["applied"][()]):
                extra = [f"{k}={group[k][()]:g}" for k in group
                         if k not in ("applied",) and group[k].dtype.kind == "f"]
                applied.append(name + (f" ({', '.join(extra)})" if extra else ""))
    lines.append("corrections      " + (", ".join(applied) if applied else "none"))
    return lines


def _instrument(entry) -> list[str]:
    instrument = entry.get(nx.INSTRUMENT)
    if instrument is None:
        return []

    def value(path, default=""):
        item = instrument.get(path)
        return default if item is None else item[()]

    name = _text(value("name", "?"))
    source = _text(value(f"{nx.SOURCE}/name", "")) or "?"
    lines = [f"instrument: {name} at {source} ({_text(value(f'{nx.SOURCE}/type', '?'))})"]
    wavelength = instrument.get(f"{nx.MONOCHROMATOR}/wavelength")
    energy = value(f"{nx.MONOCHROMATOR}/energy", None)
    if wavelength is not None:
        units = _text(wavelength.attrs.get("units", "angstrom"))
        try:
            shown = f"{length_m(wavelength[()], units) * 1e10:.5f} Å"
        except ValueError:
            shown = f"{float(wavelength[()]):g} {units}"
        lines.append(f"  wavelength {shown}"
                     + (f" ({float(energy):.3f} keV)" if energy is not None else ""))
    detector = instrument.get(nx.DETECTOR)
    if detector is not None:
        desc = _text(detector["description"][()]) if "description" in detector else "?"
        dist = float(detector["distance"][()]) * 1e3 if "distance" in detector else float("nan")
        lines.append(f"  detector {desc} at {dist:.2f} mm")
        if "beam_center_x" in detector:
            units = _text(detector["beam_center_x"].attrs.get("units", ""))
            x, y = float(detector["beam_center_x"][()]), float(detector["beam_center_y"][()])
            if units in ("pixel", "pixels", "px"):
                lines.append(f"  beam centre {pixel_xy_text(y, x)}")
            else:
                lines.append(f"  beam centre x {x * 1e3:.3f}, y {y * 1e3:.3f} mm")
        for name in (nx.DETECTOR_MASK, "pixel_mask"):
            if name in detector:
                mask = detector[name][()]
                lines.append(
                    f"  masked pixels {int(np.count_nonzero(mask & 0xFFFF))} of {mask.size} "
                    f"(gaps {int(np.count_nonzero(mask & nx.PIXEL_MASK_GAP))}, "
                    f"user {int(np.count_nonzero(mask & nx.PIXEL_MASK_USER))})")
                break
    return lines


def _metadata(nexus: NexusFile, entry: str) -> list[str]:
    lines = []
    try:
        sample = nexus.sample(entry)
    except Exception:  # a foreign or incomplete sample group: show nothing
        sample = None
    if sample is not None:
        lines.append(f"sample: {sample.name}"
                     + (f" — {sample.description}" if sample.description else ""))
        for index, layer in enumerate(sample.layers, start=1):
            parts = [layer.material]
            if layer.chemical_formula:
                parts.append(f"({layer.chemical_formula})")
            if layer.thickness_nm is not None:
                parts.append(f"{layer.thickness_nm:g} nm")
            if layer.density_g_cm3 is not None:
                parts.append(f"{layer.density_g_cm3:g} g/cm³")
            if layer.roughness_nm is not None:
                parts.append(f"roughness {layer.roughness_nm:g} nm")
            lines.append(f"  layer {index}: {' '.join(parts)}")
    try:
        experiment = nexus.experiment(entry)
    except Exception:
        experiment = None
    if experiment is not None and any((experiment.facility, experiment.beamline,
                                       experiment.proposal, experiment.users)):
        lines.append("experiment: " + ", ".join(
            f"{k} {v}" for k, v in (("facility", experiment.facility),
                                    ("beamline", experiment.beamline),
                                    ("proposal", experiment.proposal)) if v))
        for user in experiment.users:
            lines.append(f"  user {user.name}" + (f" ({user.role})" if user.role else "")
                         + (f", {user.affiliation}" if user.affiliation else ""))
    return lines
