"""The hostile-input corpus: malformed and hostile inputs for every command that reads.

Each case prepares its input in a fresh :class:`hostile_world.World` and returns the
:class:`Attack` to run. The test (``test_hostile_inputs.py``) then asserts the contract:
the exit status (2 unless the case says otherwise), exactly one line on stderr, starting
``error:``, without a traceback, naming the culprit, and the experiment, the raw tree,
the site folder and the outside folder unchanged, byte for byte.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from hostile_world import DETECTOR_SHAPE, World, frames, write_cbf, write_poni


@dataclass
class Attack:
    """``nxgid ARGS`` run in ``cwd`` (default: the experiment root)."""

    args: list[str]
    #: Text the one error line must contain (the file, key or value to blame).
    culprit: str | list[str]
    status: int = 2
    cwd: Path | None = None
    #: Files under the world the command may create (relative to the world's base).
    may_create: tuple[str, ...] = ()
    #: Seconds the command may take at most (a hang is a failure, not a timeout).
    timeout_s: float = 60.0
    #: Called before the run to start a helper (e.g. a lock holder); returns a stopper.
    during: Callable[[World], Callable[[], None]] | None = None
    extra_checks: list[Callable[[World], None]] = field(default_factory=list)


CASES: dict[str, Callable[[World], Attack]] = {}


def case(function: Callable[[World], Attack]) -> Callable[[World], Attack]:
    CASES[function.__name__] = function
    return function


def _convert(w: World, *images: str | Path, out: str | Path | None = None,
             poni: str | Path | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    return ["convert", *map(str, images), "--poni", str(poni or w.outside / "good.poni"),
            "--incidence", "0.15", "--no-progress",
            "-o", str(out or w.outside / "out.nxs"), *extra]


def _cut(source: Path, target: Path, keep: int | float) -> Path:
    data = source.read_bytes()
    count = keep if isinstance(keep, int) else int(len(data) * keep)
    target.write_bytes(data[:count])
    return target


def _cbf_bytes(w: World) -> bytes:
    return w.good_cbf.read_bytes()


def _edf(path: Path, data: np.ndarray) -> Path:
    import fabio

    fabio.edfimage.EdfImage(data=data).write(str(path))
    return path


# --- inputs and outputs never meet ------------------------------------------------------


@case
def convert_output_is_its_input_overwrite(w: World) -> Attack:
    path = w.outside / "in.h5"
    return Attack(_convert(w, path, out=path, extra=("--overwrite",)), "in.h5")


@case
def convert_output_is_its_input_append(w: World) -> Attack:
    path = w.outside / "in.h5"
    return Attack(_convert(w, path, out=path, extra=("--append",)), "in.h5")


@case
def convert_output_is_a_hard_link_to_its_input(w: World) -> Attack:
    os.link(w.outside / "in.h5", w.outside / "alias.nxs")
    return Attack(_convert(w, w.outside / "in.h5", out=w.outside / "alias.nxs",
                           extra=("--overwrite",)), "alias.nxs")


@case
def convert_output_is_a_symlink_to_its_input(w: World) -> Attack:
    (w.outside / "alias.nxs").symlink_to(w.outside / "in.h5")
    return Attack(_convert(w, w.outside / "in.h5", out=w.outside / "alias.nxs",
                           extra=("--append",)), "alias.nxs")


@case
def convert_output_is_its_mask(w: World) -> Attack:
    mask = w.outside / "mask.h5"
    with h5py.File(mask, "w") as handle:
        handle["mask"] = np.zeros(DETECTOR_SHAPE, np.uint8)
    return Attack(_convert(w, w.good_cbf, out=mask, extra=("--mask", str(mask),
                                                           "--overwrite")), "mask.h5")


@case
def convert_output_is_its_poni(w: World) -> Attack:
    poni = w.outside / "good.poni"
    return Attack(_convert(w, w.good_cbf, out=poni, extra=("--overwrite",)), "good.poni")


@case
def convert_output_inside_the_raw_tree(w: World) -> Attack:
    return Attack(_convert(w, w.good_cbf, out=w.raw / "converted.nxs"), "raw tree")


@case
def convert_output_is_the_raw_stack_of_a_scan(w: World) -> Attack:
    stack = w.scan_dir / "f1.h5"
    return Attack(_convert(w, w.good_cbf, out=stack, extra=("--append",)), "f1.h5")


@case
def convert_output_is_a_folder(w: World) -> Attack:
    return Attack(_convert(w, w.good_cbf, out=w.outside), "outside")


@case
def convert_output_folder_missing(w: World) -> Attack:
    return Attack(_convert(w, w.good_cbf, out=w.outside / "nowhere" / "out.nxs"), "nowhere")


@case
def stack_output_is_one_of_its_inputs(w: World) -> Attack:
    target = w.outside / "good.cbf"
    return Attack(["stack", str(target), "-o", str(target), "--overwrite"], "good.cbf")


@case
def stack_output_inside_the_raw_tree(w: World) -> Attack:
    return Attack(["stack", str(w.good_cbf), "-o", str(w.raw / "stack.h5")], "raw tree")


@case
def stack_into_scan_whose_folder_is_a_symlink_outside(w: World) -> Attack:
    import shutil

    shutil.rmtree(w.scan_dir)
    (w.outside / "elsewhere").mkdir()
    w.scan_dir.symlink_to(w.outside / "elsewhere")
    return Attack(["stack", str(w.good_cbf), "--scan", "film/rt/s001", "--overwrite",
                   "--no-progress"], ["s001", "outside"])


@case
def plot_output_is_its_input(w: World) -> Attack:
    reduced = w.outside / "reduced.nxs"
    return Attack(["plot", str(reduced), "-o", str(reduced), "--overwrite"], "reduced.nxs")


@case
def plot_output_inside_the_raw_tree(w: World) -> Attack:
    return Attack(["plot", str(w.outside / "reduced.nxs"), "-o", str(w.raw / "p.png")],
                  "raw tree")


@case
def calibrate_export_poni_over_its_import(w: World) -> Attack:
    poni = w.outside / "good.poni"
    return Attack(["calibrate", "gid", "--import-poni", str(poni), "--export-poni",
                   str(poni), "--overwrite"], "good.poni")


@case
def calibrate_export_poni_into_the_raw_tree(w: World) -> Attack:
    return Attack(["calibrate", "gid", "--export-poni", str(w.raw / "gid.poni")], "raw tree")


@case
def validate_definitions_into_the_raw_tree(w: World) -> Attack:
    return Attack(["validate", "--definitions", str(w.raw / "defs")], "raw tree")


# --- nothing hangs: images that readers choke on ----------------------------------------


def _cbf_cut_in_binary_header(w: World) -> Path:
    data = _cbf_bytes(w)
    start = data.find(b"--CIF-BINARY-FORMAT-SECTION--")
    path = w.outside / "cut_header.cbf"
    path.write_bytes(data[:start + 100])
    return path


@case
def convert_cbf_cut_inside_its_binary_header(w: World) -> Attack:
    return Attack(_convert(w, _cbf_cut_in_binary_header(w)), "cut_header.cbf", timeout_s=30)


@case
def convert_cbf_cut_inside_its_data(w: World) -> Attack:
    path = _cut(w.good_cbf, w.outside / "cut_data.cbf", 0.6)
    return Attack(_convert(w, path), "cut_data.cbf")


@case
def convert_cbf_with_no_binary_section(w: World) -> Attack:
    data = _cbf_bytes(w)
    path = w.outside / "no_binary.cbf"
    path.write_bytes(data[:data.find(b"--CIF-BINARY-FORMAT-SECTION--")])
    return Attack(_convert(w, path), "no_binary.cbf", timeout_s=30)


@case
def convert_cbf_declaring_a_huge_binary_size(w: World) -> Attack:
    data = _cbf_bytes(w)
    path = w.outside / "huge.cbf"
    path.write_bytes(data.replace(b"X-Binary-Size: 94965", b"X-Binary-Size: 999999999999"))
    return Attack(_convert(w, path), "huge.cbf")


@case
def convert_cbf_declaring_huge_dimensions(w: World) -> Attack:
    data = _cbf_bytes(w)
    path = w.outside / "wide.cbf"
    path.write_bytes(data.replace(b"X-Binary-Size-Fastest-Dimension: 487",
                                  b"X-Binary-Size-Fastest-Dimension: 48700000"))
    return Attack(_convert(w, path), "wide.cbf")


@case
def convert_cbf_with_garbage_after_its_marker(w: World) -> Attack:
    data = _cbf_bytes(w)
    marker = data.find(b"\x0c\x1a\x04\xd5") + 4
    path = w.outside / "garbage.cbf"
    path.write_bytes(data[:marker] + bytes(np.random.default_rng(1).integers(
        0, 256, len(data) - marker, dtype=np.uint8)))
    return Attack(_convert(w, path), "garbage.cbf")


@case
def convert_cbf_that_is_text(w: World) -> Attack:
    path = w.outside / "text.cbf"
    path.write_text("this is not a CBF file\n" * 50)
    return Attack(_convert(w, path), "text.cbf", timeout_s=30)


@case
def convert_empty_cbf(w: World) -> Attack:
    path = w.outside / "empty.cbf"
    path.write_bytes(b"")
    return Attack(_convert(w, path), "empty.cbf", timeout_s=30)


@case
def convert_edf_shorter_than_its_header(w: World) -> Attack:
    path = _edf(w.outside / "short.edf", frames(1)[0])
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 4000])
    return Attack(_convert(w, path), "short.edf")


@case
def convert_edf_with_a_bad_dimension(w: World) -> Attack:
    path = _edf(w.outside / "dim.edf", frames(1)[0])
    data = path.read_bytes()
    path.write_bytes(data.replace(b"Dim_1 = 487", b"Dim_1 = abc"))
    return Attack(_convert(w, path), "dim.edf")


@case
def convert_edf_header_only(w: World) -> Attack:
    path = _edf(w.outside / "header.edf", frames(1)[0])
    data = path.read_bytes()
    path.write_bytes(data[:data.find(b"}") + 2])
    return Attack(_convert(w, path), "header.edf")


@case
def convert_edf_with_an_unclosed_header(w: World) -> Attack:
    path = w.outside / "open.edf"
    path.write_bytes(b"{\nHeaderID = EH:000001:000000:000000 ;\nDim_1 = 487 ;\n" + b" " * 5000)
    return Attack(_convert(w, path), "open.edf", timeout_s=30)


@case
def convert_tiff_cut_short(w: World) -> Attack:
    import fabio

    path = w.outside / "full.tif"
    fabio.tifimage.TifImage(data=frames(1)[0]).write(str(path))
    cut = _cut(path, w.outside / "cut.tif", 0.5)
    path.unlink()
    return Attack(_convert(w, cut), "cut.tif")


@case
def convert_tiff_with_only_a_signature(w: World) -> Attack:
    path = w.outside / "sig.tif"
    path.write_bytes(b"II*\x00\x08\x00\x00\x00")
    return Attack(_convert(w, path), "sig.tif", timeout_s=30)


@case
def convert_tiff_whose_ifd_points_at_itself(w: World) -> Attack:
    import struct

    # one IFD with one entry (width), whose next-IFD offset points back at itself
    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 256, 4, 1, 487) + struct.pack("<I", 8)
    path = w.outside / "loop.tif"
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd)
    return Attack(_convert(w, path), "loop.tif", timeout_s=30)


@case
def convert_hdf5_cut_short(w: World) -> Attack:
    path = _cut(w.outside / "in.h5", w.outside / "cut.h5", 0.5)
    return Attack(_convert(w, path), "cut.h5")


@case
def convert_hdf5_with_no_frames(w: World) -> Attack:
    path = w.outside / "nodata.h5"
    with h5py.File(path, "w") as handle:
        handle["entry/title"] = "nothing here"
    return Attack(_convert(w, path), "nodata.h5")


@case
def convert_hdf5_with_a_text_dataset(w: World) -> Attack:
    path = w.outside / "text.h5"
    with h5py.File(path, "w") as handle:
        handle["entry/data/data"] = np.array([b"a", b"b"])
    return Attack(_convert(w, path, extra=("--dataset", "entry/data/data")), "text.h5")


@case
def convert_hdf5_dataset_missing(w: World) -> Attack:
    return Attack(_convert(w, w.outside / "in.h5", extra=("--dataset", "/no/such")),
                  "/no/such")


@case
def convert_hdf5_external_link_to_a_text_file(w: World) -> Attack:
    (w.outside / "secret.txt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    path = w.outside / "linked.h5"
    with h5py.File(path, "w") as handle:
        handle["entry/data/data"] = h5py.ExternalLink("secret.txt", "/entry/data/data")
    return Attack(_convert(w, path), ["linked.h5", "secret.txt"])


@case
def convert_hdf5_external_link_to_itself(w: World) -> Attack:
    path = w.outside / "loop.h5"
    with h5py.File(path, "w") as handle:
        handle["entry/data/data"] = h5py.ExternalLink("loop.h5", "/entry/data/data")
    return Attack(_convert(w, path), "loop.h5", timeout_s=30)


@case
def convert_npy_holding_objects(w: World) -> Attack:
    path = w.outside / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return Attack(_convert(w, path), "objects.npy")


@case
def convert_npy_cut_short(w: World) -> Attack:
    np.save(w.outside / "full.npy", frames(1)[0])
    path = _cut(w.outside / "full.npy", w.outside / "cut.npy", 0.5)
    (w.outside / "full.npy").unlink()
    return Attack(_convert(w, path), "cut.npy")


@case
def convert_a_named_pipe(w: World) -> Attack:
    path = w.outside / "pipe.cbf"
    os.mkfifo(path)
    return Attack(_convert(w, path), "pipe.cbf", timeout_s=30)


@case
def convert_a_character_device(w: World) -> Attack:
    return Attack(_convert(w, "/dev/zero"), "/dev/zero", timeout_s=30)


@case
def convert_image_of_another_detector(w: World) -> Attack:
    path = write_cbf(w.outside / "small.cbf", frames(1, (100, 100))[0])
    return Attack(_convert(w, path), "small.cbf")


@case
def convert_a_folder_as_image(w: World) -> Attack:
    return Attack(_convert(w, w.raw / "film_001"), "film_001")


@case
def convert_pattern_matching_nothing(w: World) -> Attack:
    return Attack(_convert(w, str(w.outside / "*.nothing")), "*.nothing")


# --- PONI files ------------------------------------------------------------------------


@case
def convert_poni_without_distance(w: World) -> Attack:
    poni = write_poni(w.outside / "nodist.poni", Distance=None)
    return Attack(_convert(w, w.good_cbf, poni=poni), ["nodist.poni", "Distance"])


@case
def convert_poni_with_negative_distance(w: World) -> Attack:
    poni = write_poni(w.outside / "neg.poni", Distance="-0.2")
    return Attack(_convert(w, w.good_cbf, poni=poni), ["neg.poni", "Distance"])


@case
def convert_poni_with_zero_wavelength(w: World) -> Attack:
    poni = write_poni(w.outside / "wl.poni", Wavelength="0")
    return Attack(_convert(w, w.good_cbf, poni=poni), ["wl.poni", "Wavelength"])


@case
def convert_poni_without_wavelength(w: World) -> Attack:
    poni = write_poni(w.outside / "nowl.poni", Wavelength=None)
    return Attack(_convert(w, w.good_cbf, poni=poni), ["nowl.poni", "Wavelength"])


@case
def convert_poni_with_nan_rotation(w: World) -> Attack:
    poni = write_poni(w.outside / "nan.poni", Rot1="nan")
    return Attack(_convert(w, w.good_cbf, poni=poni), ["nan.poni", "Rot1"])


@case
def convert_poni_with_infinite_poni1(w: World) -> Attack:
    poni = write_poni(w.outside / "inf.poni", Poni1="inf")
    return Attack(_convert(w, w.good_cbf, poni=poni), ["inf.poni", "Poni1"])


@case
def convert_poni_with_text_distance(w: World) -> Attack:
    poni = write_poni(w.outside / "text.poni", Distance="far")
    return Attack(_convert(w, w.good_cbf, poni=poni), ["text.poni", "Distance"])


@case
def convert_poni_with_unknown_detector(w: World) -> Attack:
    poni = write_poni(w.outside / "det.poni", Detector="NoSuchDetector9000")
    return Attack(_convert(w, w.good_cbf, poni=poni), ["det.poni", "NoSuchDetector9000"])


@case
def convert_poni_with_negative_pixel_size(w: World) -> Attack:
    poni = write_poni(w.outside / "pix.poni", Detector="Detector",
                      Detector_config='{"pixel1": -1e-4, "pixel2": 1e-4, '
                                      '"max_shape": [195, 487]}')
    return Attack(_convert(w, w.good_cbf, poni=poni), ["pix.poni", "pixel"])


@case
def convert_poni_with_broken_detector_config(w: World) -> Attack:
    poni = write_poni(w.outside / "cfg.poni", Detector_config="{not json")
    return Attack(_convert(w, w.good_cbf, poni=poni), ["cfg.poni", "Detector_config"])


@case
def convert_poni_with_a_line_that_is_not_key_value(w: World) -> Attack:
    poni = w.outside / "line.poni"
    poni.write_text("# pyFAI\nponi_version: 2\nDistance 0.2\n")
    return Attack(_convert(w, w.good_cbf, poni=poni), ["line.poni", "line 3", "Distance 0.2"])


@case
def convert_poni_with_negative_distance_names_its_line(w: World) -> Attack:
    poni = w.outside / "negline.poni"
    poni.write_text((w.outside / "good.poni").read_text().replace("Distance: ",
                                                                   "Distance: -"))
    number = next(i for i, line in enumerate(poni.read_text().splitlines(), start=1)
                  if line.startswith("Distance:"))
    return Attack(_convert(w, w.good_cbf, poni=poni), ["negline.poni", f"line {number}"])


@case
def convert_poni_empty(w: World) -> Attack:
    poni = w.outside / "empty.poni"
    poni.write_text("")
    return Attack(_convert(w, w.good_cbf, poni=poni), "empty.poni")


@case
def convert_poni_binary_junk(w: World) -> Attack:
    poni = w.outside / "junk.poni"
    poni.write_bytes(bytes(np.random.default_rng(3).integers(0, 256, 2000, dtype=np.uint8)))
    return Attack(_convert(w, w.good_cbf, poni=poni), "junk.poni")


@case
def convert_poni_missing(w: World) -> Attack:
    return Attack(_convert(w, w.good_cbf, poni=w.outside / "absent.poni"), "absent.poni")


@case
def calibrate_import_poni_with_negative_distance(w: World) -> Attack:
    poni = write_poni(w.outside / "neg.poni", Distance="-0.2")
    return Attack(["calibrate", "gid", "--import-poni", str(poni), "--overwrite"],
                  ["neg.poni", "Distance"])


@case
def calibrate_import_poni_without_distance(w: World) -> Attack:
    poni = write_poni(w.outside / "nodist.poni", Distance=None)
    return Attack(["calibrate", "gid", "--import-poni", str(poni), "--overwrite"],
                  ["nodist.poni", "Distance"])


@case
def calibrate_import_poni_of_another_detector(w: World) -> Attack:
    poni = write_poni(w.outside / "other.poni", Detector="Pilatus1M")
    return Attack(["calibrate", "gid", "--import-poni", str(poni), "--overwrite"],
                  ["other.poni", "Pilatus 1M", "Pilatus 100k"])


@case
def calibrate_image_cut_inside_its_binary_header(w: World) -> Attack:
    return Attack(["calibrate", "gid", "--image", str(_cbf_cut_in_binary_header(w)),
                   "--calibrant", "LaB6", "--overwrite"], "cut_header.cbf", timeout_s=30)


@case
def calibrate_image_of_another_detector(w: World) -> Attack:
    path = write_cbf(w.outside / "small.cbf", frames(1, (100, 100))[0])
    return Attack(["calibrate", "gid", "--image", str(path), "--calibrant", "LaB6",
                   "--overwrite"], "small.cbf")


@case
def calibrate_unknown_calibrant(w: World) -> Attack:
    return Attack(["calibrate", "gid", "--image", str(w.good_cbf), "--calibrant",
                   "Unobtainium", "--overwrite"], "Unobtainium")


# --- masks, dark, flat -----------------------------------------------------------------


@case
def convert_mask_of_another_shape(w: World) -> Attack:
    mask = w.outside / "mask.npy"
    np.save(mask, np.zeros((10, 10), np.uint8))
    return Attack(_convert(w, w.good_cbf, extra=("--mask", str(mask))), "mask.npy")


@case
def convert_mask_that_is_junk(w: World) -> Attack:
    mask = w.outside / "mask.tif"
    mask.write_bytes(b"\x00\x01" * 300)
    return Attack(_convert(w, w.good_cbf, extra=("--mask", str(mask))), "mask.tif")


@case
def convert_dark_cut_inside_its_binary_header(w: World) -> Attack:
    dark = _cbf_cut_in_binary_header(w)
    return Attack(_convert(w, w.good_cbf, extra=("--dark", str(dark))), "cut_header.cbf",
                  timeout_s=30)


@case
def convert_flat_that_is_missing(w: World) -> Attack:
    return Attack(_convert(w, w.good_cbf, extra=("--flat", str(w.outside / "flat.edf"))),
                  "flat.edf")


@case
def mask_import_of_another_shape(w: World) -> Attack:
    mask = w.outside / "mask.npy"
    np.save(mask, np.zeros((10, 10), np.uint8))
    return Attack(["mask", "gid", "--import", str(mask)], "mask.npy")


@case
def mask_import_of_a_cut_cbf(w: World) -> Attack:
    return Attack(["mask", "gid", "--import", str(_cbf_cut_in_binary_header(w))],
                  "cut_header.cbf", timeout_s=30)


@case
def mask_rectangle_that_is_not_numbers(w: World) -> Attack:
    return Attack(["mask", "gid", "--rect", "a,b,c,d"], "a,b,c,d")


@case
def mask_polygon_with_two_points(w: World) -> Attack:
    return Attack(["mask", "gid", "--polygon", "1,1,5,5"], "1,1,5,5")


@case
def mask_circle_with_negative_radius(w: World) -> Attack:
    return Attack(["mask", "gid", "--circle", "10,10,-5"], "10,10,-5")


# --- YAML, recipes, bins -----------------------------------------------------------------


@case
def convert_sample_yaml_malformed(w: World) -> Attack:
    path = w.outside / "sample.yaml"
    path.write_text("sample:\n  name: [unclosed\n")
    return Attack(_convert(w, w.good_cbf, extra=("--sample", str(path))), "sample.yaml")


@case
def convert_sample_yaml_with_python_tags(w: World) -> Attack:
    path = w.outside / "evil.yaml"
    path.write_text("sample: !!python/object/apply:os.system ['touch /tmp/nxgid-pwned']\n")
    return Attack(_convert(w, w.good_cbf, extra=("--sample", str(path))), "evil.yaml")


@case
def convert_sample_yaml_billion_laughs(w: World) -> Attack:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("sample:\n  name: film\n  description: *j")
    path = w.outside / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    return Attack(_convert(w, w.good_cbf, extra=("--sample", str(path))), "laughs.yaml",
                  timeout_s=30)


@case
def convert_sample_yaml_nested_too_deep(w: World) -> Attack:
    path = w.outside / "deep.yaml"
    path.write_text("sample: " + "[" * 5000 + "]" * 5000 + "\n")
    return Attack(_convert(w, w.good_cbf, extra=("--sample", str(path))), "deep.yaml")


@case
def convert_sample_yaml_binary(w: World) -> Attack:
    path = w.outside / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00\x01" * 100)
    return Attack(_convert(w, w.good_cbf, extra=("--sample", str(path))), "bin.yaml")


@case
def convert_ten_billion_bins(w: World) -> Attack:
    return Attack(_convert(w, w.good_cbf, extra=("--bins", "q_xy=100000", "--bins",
                                                 "q_z=100000", "--max-bins", "1e11")),
                  ["10000000000", "bins"])


@case
def convert_block_too_large_for_memory(w: World) -> Attack:
    # 1e9 bins of 3 frames at once do not fit in 24 GiB; one frame at a time (--block 1)
    # would: the block is what is refused
    return Attack(_convert(w, w.outside / "in.h5", extra=(
        "--bins", "q_xy=40000", "--bins", "q_z=25000", "--max-bins", "1e9",
        "--block", "4096")), ["memory", "--block"])


@case
def convert_incidence_not_finite(w: World) -> Attack:
    args = _convert(w, w.good_cbf)
    args[args.index("--incidence") + 1] = "nan"
    return Attack(args, "nan")


@case
def convert_incidence_beyond_ninety(w: World) -> Attack:
    args = _convert(w, w.good_cbf)
    args[args.index("--incidence") + 1] = "95"
    return Attack(args, "95")


@case
def convert_monitor_zero(w: World) -> Attack:
    return Attack(_convert(w, w.good_cbf, extra=("--monitor", "0")), ["monitor", "0"])


@case
def convert_range_reversed(w: World) -> Attack:
    return Attack(_convert(w, w.good_cbf, extra=("--range", "q_xy=2:-2")), "q_xy")


@case
def convert_frames_out_of_range(w: World) -> Attack:
    return Attack(_convert(w, w.outside / "in.h5", extra=("--frames", "5:9")), "5:9")


@case
def recipe_set_bins_not_a_number(w: World) -> Attack:
    return Attack(["recipe", "set", "img_gid_q", "q_xy=-1:1:many"], "many")


@case
def recipe_set_unknown_key(w: World) -> Attack:
    return Attack(["recipe", "set", "no_such_key", "1"], "no_such_key")


# --- SPEC files and the beamline import ---------------------------------------------------


def _spec(w: World, text: str) -> None:
    (w.raw / "film.spec").write_text(text)


@case
def import_spec_scan_number_not_a_number(w: World) -> Attack:
    _spec(w, "#F film.spec\n\n#S abc  loopscan 3 1\n#N 1\n#L Epoch\n1\n")
    return Attack(["import", "film", "rt", "--config", "gid"], ["film.spec", "line 3"])


@case
def import_spec_scan_number_of_twenty_digits(w: World) -> Attack:
    _spec(w, "#F film.spec\n\n#S 12345678901234567890  loopscan 3 1\n#N 1\n#L Epoch\n1\n")
    return Attack(["import", "film", "rt", "--config", "gid"], ["film.spec", "line 3"])


@case
def import_spec_scan_without_command(w: World) -> Attack:
    _spec(w, "#F film.spec\n\n#S 2\n#N 1\n#L Epoch\n1\n")
    return Attack(["import", "film", "rt", "--config", "gid"], ["film.spec", "line 3"])


@case
def import_spec_negative_scan_number(w: World) -> Attack:
    _spec(w, "#F film.spec\n\n#S -4  loopscan 3 1\n#N 1\n#L Epoch\n1\n")
    return Attack(["import", "film", "rt", "--config", "gid"], ["film.spec", "line 3"])


@case
def import_spec_file_binary_junk(w: World) -> Attack:
    (w.raw / "film.spec").write_bytes(bytes(np.random.default_rng(5).integers(
        0, 256, 4000, dtype=np.uint8)))
    return Attack(["import", "film", "rt", "--config", "gid"], "film.spec")


@case
def import_spec_file_is_a_symlink_outside(w: World) -> Attack:
    from hostile_world import SPEC_TEXT

    (w.outside / "elsewhere.spec").write_text(SPEC_TEXT)
    (w.raw / "film.spec").unlink()
    (w.raw / "film.spec").symlink_to(w.outside / "elsewhere.spec")
    return Attack(["import", "film", "rt", "--config", "gid", "--overwrite"],
                  ["film.spec", "outside"])


@case
def import_spec_file_setting_climbs_out(w: World) -> Attack:
    from hostile_world import SPEC_TEXT

    (w.outside / "elsewhere.spec").write_text(SPEC_TEXT)
    run = w.nxgid("settings", "set", "beamline.spec_file", "../../outside/elsewhere.spec")
    if run.returncode == 2:  # refused when set: then the import reads the settings file
        settings = w.exp / "tasks" / "settings.ini"
        text = settings.read_text()
        settings.write_text(text.replace("[beamline]", "[beamline]\nspec_file = "
                                         "../../outside/elsewhere.spec", 1))
    return Attack(["import", "film", "rt", "--config", "gid"], "spec_file")


@case
def import_image_folder_is_a_symlink_outside(w: World) -> Attack:
    import shutil

    (w.raw / "film.spec").write_text((w.raw / "film.spec").read_text().replace(
        "#S 1  loopscan", "#S 2  loopscan"))
    shutil.copytree(w.raw / "film_001", w.outside / "frames")
    (w.raw / "film_002").symlink_to(w.outside / "frames")
    return Attack(["import", "film", "rt", "--config", "gid"], ["film_002", "outside"])


@case
def import_images_of_another_detector(w: World) -> Attack:
    (w.raw / "film.spec").write_text((w.raw / "film.spec").read_text().replace(
        "#S 1  loopscan", "#S 2  loopscan"))
    for index, frame in enumerate(frames(3, (100, 100)), start=1):
        write_cbf(w.raw / "film_002" / f"frame_{index:05d}.cbf", frame)
    return Attack(["import", "film", "rt", "--config", "gid"], ["film_002", "Pilatus 100k"])


@case
def import_image_cut_inside_its_binary_header(w: World) -> Attack:
    (w.raw / "film.spec").write_text((w.raw / "film.spec").read_text().replace(
        "#S 1  loopscan", "#S 2  loopscan"))
    folder = w.raw / "film_002"
    folder.mkdir()
    data = _cbf_bytes(w)
    (folder / "frame_00001.cbf").write_bytes(data[:data.find(b"--CIF-BINARY") + 100])
    return Attack(["import", "film", "rt", "--config", "gid"], "frame_00001.cbf",
                  timeout_s=30)


@case
def import_unknown_beamline(w: World) -> Attack:
    return Attack(["import", "film", "rt", "--config", "gid", "--beamline", "nope"], "nope")


@case
def stack_images_of_another_detector_into_a_scan(w: World) -> Attack:
    paths = [write_cbf(w.outside / f"small_{i}.cbf", f) for i, f in
             enumerate(frames(2, (100, 100)))]
    return Attack(["stack", *map(str, paths), "--scan", "film/rt/s001", "--overwrite",
                   "--no-progress"], ["Pilatus 100k", "100×100"])


@case
def stack_cbf_cut_inside_its_binary_header(w: World) -> Attack:
    return Attack(["stack", str(_cbf_cut_in_binary_header(w)), "-o",
                   str(w.outside / "s.h5"), "--no-progress"], "cut_header.cbf", timeout_s=30)


@case
def stack_a_named_pipe(w: World) -> Attack:
    path = w.outside / "pipe.edf"
    os.mkfifo(path)
    return Attack(["stack", str(path), "-o", str(w.outside / "s.h5"), "--no-progress"],
                  "pipe.edf", timeout_s=30)


# --- configuration and scan files -----------------------------------------------------------


@case
def scan_new_from_a_configuration_that_is_not_hdf5(w: World) -> Attack:
    w.configuration.write_text("not an HDF5 file")
    return Attack(["scan", "new", "film", "rt", "s009", "--config", "gid"], "gid.nxs",
                  extra_checks=[_no_scan_folder("s009")])


@case
def scan_new_from_an_empty_configuration(w: World) -> Attack:
    w.configuration.write_bytes(b"")
    return Attack(["scan", "new", "film", "rt", "s009", "--config", "gid"], "gid.nxs",
                  extra_checks=[_no_scan_folder("s009")])


@case
def scan_new_from_a_truncated_configuration(w: World) -> Attack:
    data = w.configuration.read_bytes()
    w.configuration.write_bytes(data[:len(data) // 2])
    return Attack(["scan", "new", "film", "rt", "s009", "--config", "gid"], "gid.nxs",
                  extra_checks=[_no_scan_folder("s009")])


@case
def scan_new_from_a_configuration_without_instrument(w: World) -> Attack:
    with h5py.File(w.configuration, "r+") as handle:
        for name in list(handle):
            del handle[name]
    return Attack(["scan", "new", "film", "rt", "s009", "--config", "gid"], "gid.nxs",
                  extra_checks=[_no_scan_folder("s009")])


def _no_scan_folder(scan: str) -> Callable[[World], None]:
    def check(w: World) -> None:
        assert not (w.exp / "film" / "rt" / scan).exists(), f"{scan}/ was left behind"
    return check


@case
def config_show_of_a_configuration_that_is_not_hdf5(w: World) -> Attack:
    w.configuration.write_text("garbage")
    return Attack(["config", "show", "gid"], "gid.nxs")


@case
def config_new_with_unknown_detector(w: World) -> Attack:
    return Attack(["config", "new", "other", "--detector", "NoSuchDetector9000"],
                  "NoSuchDetector9000")


@case
def config_new_with_negative_distance(w: World) -> Attack:
    return Attack(["config", "new", "other", "--distance", "-5"], "-5")


@case
def scan_info_of_a_scan_file_that_is_not_hdf5(w: World) -> Attack:
    w.scan_file.write_text("garbage")
    return Attack(["scan", "info", "film/rt/s001"], "film_s001.nxs")


@case
def scan_info_of_a_truncated_scan_file(w: World) -> Attack:
    data = w.scan_file.read_bytes()
    w.scan_file.write_bytes(data[:len(data) // 3])
    return Attack(["scan", "info", "film/rt/s001"], "film_s001.nxs")


#: A task that fails is recorded as failed: the one change the database may show. `reduce
#: --now` exits 1 when a task failed (its one line on stderr), not 2 like a bad request.
_TASK_RECORD = ("analysis/exp/tasks/nxdatabase.db",)


def _relink(w: World, target: str) -> None:
    with h5py.File(w.scan_file, "r+") as handle:
        del handle["f1/data/data"]
        handle["f1/data/data"] = h5py.ExternalLink(target, "/entry/data/data")


@case
def link_task_with_an_absolute_link_outside(w: World) -> Attack:
    _relink(w, str(w.outside / "in.h5"))
    return Attack(["reduce", "film/rt/s001", "--tasks", "link", "--now", "--overwrite"],
                  ["f1/data/data", str(w.outside / "in.h5")],
                  status=1, may_create=_TASK_RECORD)


@case
def link_task_with_a_link_to_a_system_file(w: World) -> Attack:
    _relink(w, "/etc/passwd")
    return Attack(["reduce", "film/rt/s001", "--tasks", "link", "--now", "--overwrite"],
                  ["f1/data/data", "/etc/passwd"],
                  status=1, may_create=_TASK_RECORD)


@case
def link_task_with_a_relative_link_climbing_out(w: World) -> Attack:
    _relink(w, "../../../../outside/in.h5")
    return Attack(["reduce", "film/rt/s001", "--tasks", "link", "--now", "--overwrite"],
                  ["f1/data/data", "outside/in.h5"],
                  status=1, may_create=_TASK_RECORD)


@case
def raw_stack_is_a_symlink_outside(w: World) -> Attack:
    (w.scan_dir / "f1.h5").unlink()
    (w.scan_dir / "f1.h5").symlink_to(w.outside / "in.h5")
    return Attack(["reduce", "film/rt/s001", "--tasks", "link", "--now", "--overwrite"],
                  ["f1.h5", "outside"],
                  status=1, may_create=_TASK_RECORD)


@case
def experiment_new_inside_the_raw_tree(w: World) -> Attack:
    return Attack(["experiment", "new", "intruder", "--home", str(w.base / "raw")],
                  ["intruder", "raw"])


@case
def sum_into_one_of_its_own_scans(w: World) -> Attack:
    return Attack(["sum", "film", "rt", "s001", "s404", "--into", "s001", "--overwrite"],
                  "s001")


@case
def sample_folder_is_a_symlink_outside(w: World) -> Attack:
    (w.outside / "foreign").mkdir()
    (w.exp / "intruder").symlink_to(w.outside / "foreign")
    return Attack(["sample", "new", "intruder", "rt"], ["intruder", "outside"])


@case
def sum_of_a_scan_that_does_not_exist(w: World) -> Attack:
    return Attack(["sum", "film", "rt", "s001", "s404", "--into", "both"], "s404")


# --- names ------------------------------------------------------------------------------


@case
def sample_name_climbing_out(w: World) -> Attack:
    return Attack(["sample", "new", "../escape", "rt"], "../escape")


@case
def sample_name_with_a_control_character(w: World) -> Attack:
    return Attack(["sample", "new", "bad\x07name", "rt"], "name")


@case
def sample_name_far_too_long(w: World) -> Attack:
    return Attack(["sample", "new", "s" * 300, "rt"], "sss")


@case
def experiment_name_absolute(w: World) -> Attack:
    return Attack(["experiment", "new", "/etc/exp"], "/etc/exp")


# --- settings -------------------------------------------------------------------------


@case
def settings_file_binary_junk(w: World) -> Attack:
    (w.exp / "tasks" / "settings.ini").write_bytes(b"\x00\xff\x13" * 200)
    return Attack(["reduce", "--all"], "settings.ini")


@case
def settings_file_with_a_line_outside_any_section(w: World) -> Attack:
    path = w.site / "settings.ini"
    path.write_text("key without section = 1\n" + path.read_text())
    return Attack(["settings", "show"], "settings.ini")


@case
def settings_set_negative_workers(w: World) -> Attack:
    return Attack(["settings", "set", "--site", "server.workers", "-3"], "workers")


@case
def settings_raw_path_climbing_out(w: World) -> Attack:
    return Attack(["settings", "set", "instrument.raw_path", "../../etc"], "raw_path")


@case
def settings_file_is_a_folder(w: World) -> Attack:
    path = w.exp / "tasks" / "settings.ini"
    path.unlink()
    path.mkdir()
    return Attack(["scan", "list"], "settings.ini")


# --- the workflow database -----------------------------------------------------------------


@case
def database_that_is_random_bytes(w: World) -> Attack:
    w.database.write_bytes(bytes(np.random.default_rng(7).integers(0, 256, 8192,
                                                                   dtype=np.uint8)))
    return Attack(["status"], ["nxdatabase.db", "db sync"])


@case
def database_cut_short(w: World) -> Attack:
    data = w.database.read_bytes()
    w.database.write_bytes(data[:len(data) // 3])
    return Attack(["reduce", "--all"], ["nxdatabase.db", "db sync"])


@case
def database_of_another_program(w: World) -> Attack:
    w.database.unlink()
    with sqlite3.connect(w.database) as connection:
        connection.execute("CREATE TABLE recipes (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO recipes (name) VALUES ('pancakes')")
    return Attack(["status"], ["nxdatabase.db", "not an nxgid"])


@case
def database_of_a_newer_nxgid(w: World) -> Attack:
    with sqlite3.connect(w.database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_future'")
    return Attack(["status"], ["nxdatabase.db", "9999_future"])


@case
def database_that_is_a_folder(w: World) -> Attack:
    w.database.unlink()
    w.database.mkdir()
    return Attack(["status"], "nxdatabase.db")


@case
def workers_on_a_corrupt_database(w: World) -> Attack:
    data = w.database.read_bytes()
    w.database.write_bytes(data[:4096] + b"\x00" * (len(data) - 4096))
    return Attack(["workers", "-n", "2"], ["nxdatabase.db", "db sync"])


def _hold_lock(w: World) -> Callable[[], None]:
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(w.database)!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE')\n"
         "print('locked', flush=True)\n"
         "time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    time.sleep(0.1)

    def stop() -> None:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    return stop


@case
def database_locked_for_too_long(w: World) -> Attack:
    run = w.nxgid("settings", "set", "--site", "server.database_timeout_s", "2")
    assert run.returncode == 0, run.stderr
    return Attack(["reduce", "--all"], ["nxdatabase.db", "locked"], during=_hold_lock,
                  timeout_s=60)


def _read_only_database(w: World) -> Callable[[], None]:
    """The database file read-only: a read-only bind mount of it as root, mode 444
    otherwise."""
    import subprocess

    if os.geteuid() != 0:
        w.database.chmod(0o444)
        return lambda: w.database.chmod(0o644)
    subprocess.run(["mount", "--bind", "-o", "ro", str(w.database), str(w.database)],
                   check=True)
    return lambda: subprocess.run(["umount", str(w.database)], check=True)


@case
def database_read_only(w: World) -> Attack:
    return Attack(["reduce", "--all"], ["nxdatabase.db", "read-only"],
                  during=_read_only_database)


# --- unwritable places ------------------------------------------------------------------------


def _read_only_folder(w: World) -> Callable[[], None]:
    """``<base>/readonly``: a read-only bind mount as root (who may write anywhere else),
    a folder without write permission otherwise."""
    import subprocess

    folder = w.base / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], check=True)
    return lambda: subprocess.run(["umount", str(folder)], check=True)


@case
def convert_into_a_read_only_folder(w: World) -> Attack:
    return Attack(_convert(w, w.good_cbf, out=w.base / "readonly" / "out.nxs"), "readonly",
                  during=_read_only_folder)


@case
def stack_into_a_read_only_folder(w: World) -> Attack:
    return Attack(["stack", str(w.good_cbf), "-o", str(w.base / "readonly" / "s.h5"),
                   "--no-progress"], "readonly", during=_read_only_folder)


@case
def plot_into_a_read_only_folder(w: World) -> Attack:
    return Attack(["plot", str(w.outside / "reduced.nxs"), "-o",
                   str(w.base / "readonly" / "p.png")], "readonly", during=_read_only_folder)


@case
def examples_into_a_file_system_that_takes_no_files(w: World) -> Attack:
    return Attack(["examples", "/proc/nxgid-examples"], "/proc/nxgid-examples")


@case
def examples_into_a_folder_that_holds_files(w: World) -> Attack:
    return Attack(["examples", str(w.outside)], ["outside", "is not empty"])


@case
def export_of_an_image_file(w: World) -> Attack:
    return Attack(["export", str(w.good_cbf), "-o", str(w.outside / "t.csv")],
                  w.good_cbf.name)


@case
def export_over_its_input(w: World) -> Attack:
    reduced = w.outside / "reduced.nxs"
    return Attack(["export", str(reduced), "-o", str(reduced), "--overwrite"],
                  ["reduced.nxs", "is also an input"])


@case
def export_into_the_raw_tree(w: World) -> Attack:
    return Attack(["export", str(w.outside / "reduced.nxs"), "-o", str(w.raw / "t.csv")],
                  "raw tree")


@case
def plot_of_a_named_pipe(w: World) -> Attack:
    path = w.outside / "frame.cbf"
    os.mkfifo(path)
    return Attack(["plot", str(path), "-o", str(w.outside / "p.png")], ["frame.cbf",
                                                                        "named pipe"])


@case
def plot_with_a_mask_of_another_shape(w: World) -> Attack:
    np.save(w.outside / "small.npy", np.zeros((4, 4), np.uint8))
    return Attack(["plot", str(w.good_cbf), "--mask", str(w.outside / "small.npy"), "-o",
                   str(w.outside / "p.png")], ["small.npy", "the mask is 4×4"])
