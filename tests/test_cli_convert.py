"""``nxgid convert``, ``show`` and ``plot`` from the command line."""

from __future__ import annotations

import fabio
import h5py
import hdf5plugin
import numpy as np
import pytest

from nxgid.conversion import Converter, TargetSpec
from nxgid.conversion.corrections import Corrections
from nxgid.geometry import DetectorGeometry, SampleGeometry
from nxgid.images.simulate import Pattern, Ring, Spot, simulate_stack
from nxgid.nexus.reader import NexusFile
from nxgid.plot.results import frame_mean

#: A spot at a known place in reciprocal space, to find again in the converted file.
SPOT_QXY, SPOT_QZ = 1.2, 0.5


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """A PONI file, 5 simulated frames as a multi-frame EDF file, the same frames as a
    bitshuffle-compressed HDF5 stack, and a mask."""
    folder = tmp_path_factory.mktemp("series")
    geometry = DetectorGeometry.from_parameters(
        detector="Pilatus100k", distance_m=0.12, wavelength_A=1.0,
        beam_center_px=(15.0, 240.0))
    poni = folder / "det.poni"
    geometry.save_poni(poni)
    pattern = Pattern(rings=(Ring(d_spacing_A=4.5, intensity=30, width_A=0.02),),
                      spots=(Spot(SPOT_QXY, SPOT_QZ, 800, 0.02),), background=4.0)
    frames = simulate_stack(geometry, SampleGeometry.grazing(0.15), pattern, frames=5,
                            seed=4).astype(np.int32)
    edf = fabio.edfimage.EdfImage(data=frames[0])
    for frame in frames[1:]:
        edf.append_frame(data=frame)
    edf.write(str(folder / "series.edf"))
    with h5py.File(folder / "stack.h5", "w") as f:
        f.create_dataset("entry/data/data", data=frames,
                         **hdf5plugin.Bitshuffle(cname="lz4"))
    mask = np.zeros(geometry.shape, dtype=np.uint8)
    mask[:, :20] = 1
    np.save(folder / "mask.npy", mask)
    return folder, geometry, frames


def _args(folder, *extra):
    return ["convert", str(folder / "series.edf"), "--poni", str(folder / "det.poni"),
            "--incidence", "0.15", "--to", "gid_q,rad_cut_gid", "--bins", "q_xy=150",
            "--bins", "q_z=100", "--range", "q_xy=0:2", "--range", "q_z=0:1.5", *extra]


def test_convert_a_multiframe_edf_series_matches_the_engine(series, tmp_path, nxgid):
    folder, geometry, frames = series
    out = tmp_path / "film.nxs"
    result = nxgid(_args(folder, "-o", str(out)))
    assert result.exit_code == 0, result.output
    assert "5 frame(s) from 1 file(s)" in result.stdout
    # off a terminal: no bar, a progress line (at most every 2 s, and the last one)
    assert "converting: 5 of 5 frames, " in result.stdout and "━" not in result.output
    assert result.stderr == ""
    quiet = nxgid(_args(folder, "-o", str(tmp_path / "quiet.nxs"), "--no-progress"))
    assert quiet.exit_code == 0 and "converting" not in quiet.output
    nexus = NexusFile(out)
    assert nexus.entry_names() == ["img_gid_q", "rad_cut_gid"]
    stored = nexus.load("img_gid_q")
    engine = Converter(geometry, SampleGeometry.grazing(0.15),
                       [TargetSpec("img_gid_q", ranges={"q_xy": (0, 2), "q_z": (0, 1.5)},
                                   bins={"q_xy": 150, "q_z": 100})],
                       corrections=Corrections()).convert(frames)["img_gid_q"]
    np.testing.assert_array_equal(stored.intensity, engine.intensity)
    assert list(stored.frame_values["frame_num"]) == [0, 1, 2, 3, 4]
    assert all(name.endswith("series.edf") for name in stored.frame_values["filename"])
    # the simulated spot is where physics put it
    mean = frame_mean(stored.intensity)
    row, col = np.unravel_index(np.nanargmax(mean), mean.shape)
    assert [a.name for a in stored.axes] == ["q_z", "q_xy"]  # the array's order
    q_xy, q_z = stored.x_axis.centres[col], stored.y_axis.centres[row]
    assert abs(q_xy - SPOT_QXY) < 2 * stored.x_axis.step
    assert abs(q_z - SPOT_QZ) < 2 * stored.y_axis.step


def test_append_frames_ranges_and_hdf5_input(series, tmp_path, nxgid):
    folder, _, _ = series
    out = tmp_path / "film.nxs"
    assert nxgid(_args(folder, "-o", str(out))).exit_code == 0
    second = ["convert", str(folder / "stack.h5"), "--poni", str(folder / "det.poni"),
              "--incidence", "0.15", "--to", "gid_q,rad_cut_gid", "--bins", "q_xy=150",
              "--bins", "q_z=100", "--range", "q_xy=0:2", "--range", "q_z=0:1.5",
              "--frames", "1:3", "-o", str(out), "--append"]
    result = nxgid(second)
    assert result.exit_code == 0, result.output
    stored = NexusFile(out).load("img_gid_q")
    assert stored.frames == 7
    assert list(stored.frame_values["frame_num"]) == [0, 1, 2, 3, 4, 1, 2]
    # the same raw frames give the same converted frames, whatever the file format
    np.testing.assert_array_equal(stored.intensity[5:], stored.intensity[1:3])


def test_existing_output_is_refused_and_left_alone(series, tmp_path, nxgid):
    folder, _, _ = series
    out = tmp_path / "film.nxs"
    assert nxgid(_args(folder, "-o", str(out))).exit_code == 0
    before = out.read_bytes()
    result = nxgid(_args(folder, "-o", str(out)))
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--overwrite" in result.stderr and "Traceback" not in result.output
    assert out.read_bytes() == before
    result = nxgid(_args(folder, "-o", str(out), "--overwrite", "--frames", "0"))
    assert result.exit_code == 0, result.output
    assert NexusFile(out).result("img_gid_q").frames == 1


@pytest.mark.parametrize(("change", "message"), [
    (["--poni", "missing.poni"], "missing.poni does not exist"),
    (["--frames", "7:9"], "frames"),
    (["--bins", "q_xy=many"], "not a whole number"),
    (["--to", "gid_qq"], "result 'gid_qq'"),
    (["--corrections", "polarisation"], "--corrections 'polarisation'"),
    (["--mask", "nothere.npy"], "nothere.npy"),
    (["--incidence", "0.1,0.2"], "2 angles for 5 frames"),
    (["--transmission"], "give --incidence or --transmission"),
])
def test_bad_input_is_one_line_and_writes_nothing(series, tmp_path, nxgid, change, message):
    folder, _, _ = series
    out = tmp_path / "film.nxs"
    args = _args(folder, "-o", str(out))
    if change[0] == "--poni":
        args[args.index("--poni") + 1] = str(tmp_path / change[1])
    elif change[0] == "--mask":
        args += ["--mask", str(tmp_path / change[1])]
    else:
        args += change
    result = nxgid(args)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and message in line, line
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_mask_sample_file_show_and_plot(series, tmp_path, nxgid):
    folder, _, _ = series
    sample_yaml = tmp_path / "film.yaml"
    sample_yaml.write_text(
        "sample:\n  name: pentacene film\n  layers:\n"
        "    - {material: pentacene, chemical_formula: C22H14, thickness: 50 nm}\n"
        "    - {material: Si, thickness: 0.5 mm}\n"
        "experiment:\n  facility: ESRF\n  beamline: ID10\n  proposal: SC-1\n")
    out = tmp_path / "film.nxs"
    result = nxgid(_args(folder, "-o", str(out), "--mask", str(folder / "mask.npy"),
                         "--sample", str(sample_yaml), "--title", "pentacene test"))
    assert result.exit_code == 0, result.output
    nexus = NexusFile(out)
    assert [layer.thickness_nm for layer in nexus.sample().layers] == [50, 5e5]
    with h5py.File(out) as f:
        mask = f["img_gid_q/instrument/detector/mask"][()]
        assert np.all(mask[:, :20] & 256)  # user bit
        assert f["img_gid_q/title"][()].decode() == "pentacene test"
    shown = nxgid(["show", str(out)])
    assert shown.exit_code == 0
    for text in ("img_gid_q", "rad_cut_gid", "5 frame(s)", "pentacene film",
                 "layer 1: pentacene (C22H14) 50 nm", "proposal SC-1", "shuffle+gzip",
                 "counts per pixel; corrected for solid angle, polarization [counts]"):
        assert text in shown.stdout, text
    tree = nxgid(["show", str(out), "--tree"])
    assert "mask int32[195, 487]" in tree.stdout
    png = tmp_path / "map.png"
    plotted = nxgid(["plot", str(out), "--entry", "img_gid_q", "--frame", "-1", "-o",
                     str(png)])
    assert plotted.exit_code == 0, plotted.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = nxgid(["plot", str(out), "-o", str(png)])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    profile = nxgid(["plot", str(out), "--entry", "rad_cut_gid", "-o",
                     str(tmp_path / "profile.svg"), "--linear"])
    assert profile.exit_code == 0, profile.output
    assert "<svg" in (tmp_path / "profile.svg").read_text()[:500]


def test_transmission_and_globs(series, tmp_path, nxgid):
    folder, _, frames = series
    for index, frame in enumerate(frames[:3]):
        fabio.edfimage.EdfImage(data=frame).write(str(tmp_path / f"img_{index + 1}.edf"))
    out = tmp_path / "powder.nxs"
    result = nxgid(["convert", str(tmp_path / "img_*.edf"), "--poni",
                    str(folder / "det.poni"), "--transmission", "--to", "q,rad_cut",
                    "--q-unit", "nm^-1", "--no-errors", "-o", str(out)])
    assert result.exit_code == 0, result.output
    nexus = NexusFile(out)
    assert nexus.entry_names() == ["img_q", "rad_cut"]
    stored = nexus.load("rad_cut")
    assert stored.errors is None and stored.frames == 3
    assert stored.axes[0].unit == "nm^-1"
    assert "incidence_angle_deg" not in stored.frame_values
    with h5py.File(out) as f:
        # pygid's reader needs the field even in transmission: NaN, and not in data
        assert np.isnan(f["img_q/instrument/angle_of_incidence"][()]).all()
        assert "incidence_angle" not in f["img_q/data"]
        assert f["rad_cut/data/q_pol"].attrs["units"] == "1/nm"


def test_monitor_scan_variables_and_forced_progress_bar(series, tmp_path, nxgid):
    folder, _, _ = series
    out = tmp_path / "film.nxs"
    plain = tmp_path / "plain.nxs"
    assert nxgid(_args(folder, "-o", str(plain))).exit_code == 0
    result = nxgid(_args(folder, "-o", str(out), "--monitor", "1,2,4,8,16",
                         "--var", "temperature=300,310,320,330,340:K", "--var", "x=1.5:mm",
                         "--progress"))
    assert result.exit_code == 0, result.output
    assert "converting" in result.stderr  # the bar, when asked for
    stored = NexusFile(out).load("img_gid_q")
    np.testing.assert_array_equal(stored.frame_values["monitor"], [1, 2, 4, 8, 16])
    np.testing.assert_array_equal(stored.frame_values["temperature"],
                                  [300, 310, 320, 330, 340])
    np.testing.assert_array_equal(stored.frame_values["x"], [1.5] * 5)
    with h5py.File(out) as f:
        assert f["img_gid_q/data/temperature"].attrs["units"] == "K"
    # normalisation: intensity per monitor count
    reference = NexusFile(plain).load("img_gid_q").intensity
    np.testing.assert_allclose(stored.intensity[4] * 16, reference[4], rtol=1e-5)
    bad = nxgid(_args(folder, "-o", str(tmp_path / "bad.nxs"), "--var", "monitor=1:K"))
    assert bad.exit_code == 2 and "taken by nxgid" in bad.stderr
    bad = nxgid(_args(folder, "-o", str(tmp_path / "bad.nxs"), "--monitor", "1,2"))
    assert bad.exit_code == 2 and "2 values for 5 frames" in bad.stderr


def test_a_long_series_converts_in_constant_memory(tmp_path):
    """The peak of Python-visible allocations (numpy arrays included) while converting
    200 frames is no larger than for 40: memory does not grow with the series."""
    import tracemalloc

    from nxgid.nexus.convert import ConvertJob, run_convert

    geometry = DetectorGeometry.from_parameters(
        detector=None, pixel_size_m=(172e-6, 172e-6), shape=(200, 240), distance_m=0.1,
        wavelength_A=1.0, beam_center_px=(10.0, 120.0))
    poni = tmp_path / "det.poni"
    geometry.save_poni(poni)
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "long.h5", "w") as f:
        data = f.create_dataset("entry/data/data", shape=(200, 200, 240), dtype=np.uint32,
                                chunks=(1, 200, 240))
        for i in range(200):
            data[i] = rng.poisson(5.0, (200, 240))

    def peak_mb(frames: str, name: str) -> float:
        job = ConvertJob(inputs=[str(tmp_path / "long.h5")], output=tmp_path / name,
                         poni=poni, targets=["img_gid_q"], incidence_deg=[0.2],
                         block_frames=8, frames=frames, cache_dir=tmp_path / "cache")
        tracemalloc.start()
        summary = run_convert(job)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert summary.frames == len(range(200)[slice(*map(int, frames.split(":")))])
        return peak / 1e6

    peak_mb("0:8", "warm.nxs")  # compiles the kernels, fills the map cache
    short, long = peak_mb("0:40", "short.nxs"), peak_mb("0:200", "long.nxs")
    frame_mb = 200 * 240 * 4 / 1e6
    assert long < short + 2 * frame_mb, (short, long)  # 160 more frames: ~0 more memory


def test_too_many_bins_are_refused_with_one_line_and_allowed_when_asked(series, tmp_path,
                                                                         nxgid):
    folder, _, _ = series
    out = tmp_path / "huge.nxs"
    args = ["convert", str(folder / "series.edf"), "--poni", str(folder / "det.poni"),
            "--incidence", "0.15", "--bins", "q_xy=3000", "--bins", "q_z=2000",
            "--pixel-splitting", "none", "--frames", "0:1", "-o", str(out)]
    refused = nxgid(args)
    assert refused.exit_code == 2 and not out.exists()
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error: img_gid_q: ")
    assert "6 M bins per frame" in line and "--max-bins" in line
    allowed = nxgid([*args, "--max-bins", "6M"])
    assert allowed.exit_code == 0, allowed.output
    assert NexusFile(out).result("img_gid_q").shape == (1, 2000, 3000)


def test_export_profiles_and_maps_as_text_tables(series, tmp_path, nxgid):
    """`nxgid export`: the tables hold exactly the stored values, with axis columns."""
    import csv

    folder, _, _ = series
    out = tmp_path / "film.nxs"
    assert nxgid(_args(folder, "-o", str(out))).exit_code == 0
    stored = NexusFile(out)
    profile = stored.result("rad_cut_gid").read()
    table = tmp_path / "profiles.csv"
    done = nxgid(["export", str(out), "--entry", "rad_cut_gid", "-o", str(table)])
    assert done.exit_code == 0, done.output
    with open(table, newline="") as handle:
        rows = list(csv.reader(handle))
    axis = profile.x_axis
    assert rows[0][:3] == [f"{axis.name} (A^-1)", "intensity frame 0", "intensity frame 1"]
    assert len(rows) == 1 + axis.bins and len(rows[0]) == 1 + 2 * 5
    column = np.array([float(r[1]) if r[1] else np.nan for r in rows[1:]])
    assert np.allclose(column, profile.intensity[0], rtol=1e-9, equal_nan=True)
    assert np.allclose([float(r[0]) for r in rows[1:]], axis.centres, rtol=1e-9)
    # one frame of a map, x fastest: x, y, intensity, error
    grid = tmp_path / "map.dat"
    done = nxgid(["export", str(out), "--entry", "img_gid_q", "--frame", "-1", "-o",
                  str(grid)])
    assert done.exit_code == 0, done.output
    header = [line for line in grid.read_text().splitlines() if line.startswith("#")]
    assert "img_gid_q, frame 4" in header[0] and header[-1].startswith("# q_xy (A^-1)\t")
    values = np.loadtxt(grid)
    last = stored.result("img_gid_q").read(4)
    assert values.shape == (150 * 100, 4)
    assert np.allclose(values[:, 2].reshape(100, 150), last.intensity[0], equal_nan=True)
    assert np.allclose(values[:, 3].reshape(100, 150), last.errors[0], equal_nan=True)
    assert np.allclose(values[:150, 0], last.x_axis.centres)
    assert np.all(values[:150, 1] == values[0, 1])  # x runs fastest
    assert np.isnan(values[:, 2]).any() and not np.isnan(values[:, 2]).all()
    again = nxgid(["export", str(out), "--entry", "img_gid_q", "-o", str(grid)])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    bad = nxgid(["export", str(out), "-o", str(tmp_path / "map.xlsx")])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")
    assert not (tmp_path / "map.xlsx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.nxs", "map.dat",
                                                          "profiles.csv"]
