"""Run inside pygid's own environment (``.venv-bench``, pygid 0.2.20): read files with
pygid's real reader, or write one with pygid's own converter, and print JSON.

    python pygid_reader.py read FILE...
    python pygid_reader.py write PONI IMAGE INCIDENCE_DEG OUT.nxs
    python pygid_reader.py store FILE ENTRY FRAME

``store`` saves detected and fitted peaks (two made-up peaks) into frame FRAME of ENTRY
exactly as mlgidbase's ``save_detect``/``save_fit`` do — they call pygid's
``_save_img_container_detect``/``_save_img_container_fit`` on the group
``/ENTRY/data/analysis/frameNNNNN``, with the tools' metadata into ``/ENTRY/process/…``
— then reads them back with h5py and the file with pygid's reader.

``read`` prints, per file, either the error pygid raised or, per entry, what pygid
rebuilt: the experimental parameters (wavelength in Å, distance in m, rot1–3 in rad,
beam centre in pixels, PONI in m, incidence angles in degrees), the result's shape and
its axes (name, first and last value, length), and the per-frame analysis groups.
"""

from __future__ import annotations

import json
import sys
import warnings


def _params(params) -> dict:
    return {key: (list(map(float, value)) if isinstance(value, list | tuple) else
                  float(value))
            for key, value in (("wavelength_A", params.wavelength), ("distance_m", params.SDD),
                               ("rot1", params.rot1), ("rot2", params.rot2),
                               ("rot3", params.rot3), ("center_x_px", params.centerX),
                               ("center_y_px", params.centerY), ("poni1_m", params.poni1),
                               ("poni2_m", params.poni2), ("px_size_m", params.px_size))} | {
        "incidence_deg": [float(a) for a in (params.ai if hasattr(params.ai, "__len__")
                                             else [params.ai])]}


def read(paths: list[str]) -> dict:
    import h5py
    import numpy as np
    import pygid

    out = {}
    for path in paths:
        try:
            nexus = pygid.NexusFile(path)
        except Exception as exc:
            out[path] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        entries = {}
        for name, info in nexus.entry_dict.items():
            try:
                conversion = nexus.load_entry(name)
                image = np.asarray(getattr(conversion, info["img_type"]))
                matrix = conversion.matrix[0]
                axes = {}
                for axis in info["axes"]:
                    values = np.asarray(getattr(matrix, axis))
                    axes[axis] = [float(values[0]), float(values[-1]), int(values.size)]
                with h5py.File(path, "r") as root:
                    group = root[name].get("data/analysis")
                    frames = sorted(group) if group is not None else []
                    nx_class = group.attrs.get("NX_class") if group is not None else None
                entries[name] = {"result": info["img_type"], "shape": list(image.shape),
                                 "finite": int(np.isfinite(image).sum()),
                                 "axes": axes, "params": _params(matrix.params),
                                 "analysis_groups": frames,
                                 "analysis_class": None if nx_class is None else
                                 (nx_class.decode() if isinstance(nx_class, bytes)
                                  else str(nx_class))}
            except Exception as exc:
                entries[name] = {"error": f"{type(exc).__name__}: {exc}"}
        out[path] = {"entries": entries}
    return out


def write(poni: str, image: str, incidence_deg: float, output: str) -> dict:
    import pygid

    params = pygid.ExpParams(poni_path=poni, ai=incidence_deg)
    matrix = pygid.CoordMaps(params)
    conversion = pygid.Conversion(matrix=matrix, path=image)
    conversion.det2q_gid(save_result=True, path_to_save=output, h5_group="img_gid_q",
                         overwrite_file=True, plot_result=False)
    return {"written": output}


class _Peaks:
    """What mlgiddetect's and pygidfit's image containers carry, for two peaks."""

    def __init__(self, tool: str) -> None:
        self.radius = [1.40, 1.75]
        self.radius_width = [0.01, 0.012]
        self.angle = [15.0, 40.0]
        self.angle_width = [1.0, 1.2]
        self.qzqxyboxes = [[0.36, 1.12], [1.35, 1.34]]
        self.scores = self.score = [0.9, 0.8]
        self.amplitude = [120.0, 80.0]
        self.theta = self.A = self.B = self.C = [0.0, 0.0]
        self.is_ring = self.is_cut_qz = self.is_cut_qxy = [False, False]
        self.visibility = [1, 1]
        self.id = [0, 1]
        for name in ("amplitude", "angle", "angle_width", "radius", "radius_width", "theta",
                     "A", "B", "C"):
            setattr(self, f"{name}_err", [0.01, 0.02])
        self.qzqxyboxes_err = [[0.001, 0.002], [0.001, 0.002]]
        self.metadata = {"program": tool, "version": "test", "threshold": 0.5}


def store(path: str, entry: str, frame: int) -> dict:
    import h5py
    import pygid

    group = f"/{entry}/data/analysis/frame{frame:05d}"
    with h5py.File(path, "r+") as root:
        pygid._save_img_container_detect(root, group, _Peaks("mlgiddetect"))
        pygid._save_img_container_fit(root, group, _Peaks("pygidfit"))
    with h5py.File(path, "r") as root:
        stored = {name: root[group][name][()]["q_xy"].tolist() for name in
                  ("detected_peaks", "fitted_peaks")}
        classes = {tool: root[f"/{entry}/process/{tool}"].attrs["NX_class"]
                   for tool in ("mlgiddetect", "pygidfit")}
    return {"stored": stored, "classes": {k: v.decode() if isinstance(v, bytes) else str(v)
                                          for k, v in classes.items()},
            "reread": read([path])[path]}


def main() -> None:
    warnings.simplefilter("ignore")
    command, *args = sys.argv[1:]
    if command == "read":
        result = read(args)
    elif command == "store":
        result = store(args[0], args[1], int(args[2]))
    elif command == "write":
        result = write(args[0], args[1], float(args[2]), args[3])
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
