"""The NeXus format: round trip, stacking, mismatches, safety, the reader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from nxgid.conversion import Converter, TargetSpec
from nxgid.conversion.corrections import Corrections
from nxgid.errors import ExistsError, MissingError, NxgidError
from nxgid.geometry import DetectorGeometry, SampleGeometry
from nxgid.images.simulate import Pattern, Ring, Spot, simulate_stack
from nxgid.nexus import writer as writer_module
from nxgid.nexus.metadata import ExperimentInfo, Layer, SampleInfo, User
from nxgid.nexus.reader import NexusFile
from nxgid.nexus.writer import (
    EntryMetadata,
    FrameBlock,
    InstrumentInfo,
    NexusWriter,
    pixel_mask_bits,
)

SHAPE = (195, 487)


@pytest.fixture(scope="module")
def geometry():
    return DetectorGeometry.from_parameters(
        detector=None, pixel_size_m=(172e-6, 172e-6), shape=SHAPE, distance_m=0.12,
        wavelength_A=1.0, beam_center_px=(10.0, 240.0), rot2_rad=-0.01)


@pytest.fixture(scope="module")
def frames(geometry):
    pattern = Pattern(rings=(Ring(d_spacing_A=4.5, intensity=30, width_A=0.02),),
                      spots=(Spot(1.2, 0.5, 500, 0.03),), background=5.0)
    return simulate_stack(geometry, SampleGeometry.grazing(0.15), pattern, frames=6, seed=2)


def _converter(geometry, targets=None, **kwargs):
    targets = targets or [TargetSpec("img_gid_q", bins={"q_xy": 120, "q_z": 60}),
                          TargetSpec("rad_cut_gid", bins={"q_gid_pol": 80})]
    return Converter(geometry, SampleGeometry.grazing(0.15), targets,
                     corrections=kwargs.pop("corrections", Corrections()), **kwargs)


def _metadata(geometry, **kwargs):
    return EntryMetadata(
        InstrumentInfo(geometry, pixel_mask_bits(geometry.detector_mask, None, SHAPE),
                       source_name="ESRF", name="ID10"), **kwargs)


def _write(path, geometry, frames, *, converter=None, mode="create", block=4, **kwargs):
    converter = converter or _converter(geometry)
    with NexusWriter(path, _metadata(geometry, **kwargs), mode=mode) as writer:
        done = 0
        for results in converter.convert_blocks(frames, block_frames=block,
                                                reuse_outputs=True):
            n = next(iter(results.values())).frames
            writer.write(results, FrameBlock(
                files=[f"raw_{i}.h5" for i in range(done, done + n)],
                numbers=list(range(done, done + n)),
                variables={"temperature": (np.linspace(300, 310, n), "K")}))
            done += n
    return converter


def test_round_trip_arrays_axes_errors_and_metadata(tmp_path, geometry, frames):
    sample = SampleInfo(name="pentacene on SiO2", description="test film", layers=[
        Layer(material="pentacene", chemical_formula="C22H14", thickness_nm=50,
              density_g_cm3=1.33, roughness_nm=1.2),
        Layer(material="silicon", chemical_formula="Si", thickness_nm=5e5)])
    experiment = ExperimentInfo(facility="ESRF", beamline="ID10", proposal="SC-1234",
                                title="Pentacene growth",
                                users=[User(name="A. Scientist", role="PI")])
    path = tmp_path / "film.nxs"
    converter = _write(path, geometry, frames, sample=sample, experiment=experiment)
    expected = converter.convert(frames)

    nexus = NexusFile(path)
    assert [e.name for e in nexus.entries()] == ["img_gid_q", "rad_cut_gid"]
    assert nexus.default_entry() == "img_gid_q"
    for name, truth in expected.items():
        back = nexus.load(name)
        assert back.intensity.shape == truth.intensity.shape
        np.testing.assert_array_equal(back.intensity, truth.intensity)
        np.testing.assert_array_equal(back.errors, truth.errors)
        for axis, true_axis in zip(back.axes, truth.axes, strict=True):
            assert axis.name == true_axis.name and axis.bins == true_axis.bins
            np.testing.assert_allclose(axis.centres, true_axis.centres, rtol=1e-12)
            assert axis.unit == true_axis.unit
        np.testing.assert_allclose(back.frame_values["incidence_angle_deg"], 0.15)
        np.testing.assert_allclose(back.frame_values["temperature"][:4],
                                   np.linspace(300, 310, 4))
        assert list(back.frame_values["frame_ind"]) == list(range(6))
        assert list(back.frame_values["filename"]) == [f"raw_{i}.h5" for i in range(6)]
        assert back.process["corrections"] == truth.process["corrections"]
        assert back.process["geometry"] == truth.process["geometry"]
    assert nexus.sample() == sample
    assert nexus.experiment() == experiment
    units = nexus.result("img_gid_q").units()
    assert units == {"q_xy": "1/angstrom", "q_z": "1/angstrom"}
    inst = nexus.instrument()
    # in the units pygid reads them in, and @units says so
    assert inst["monochromator/wavelength"] == (pytest.approx(1e-10), "m")
    assert inst["detector/distance"] == (pytest.approx(0.12), "m")
    assert inst["detector/polar_angle"] == (pytest.approx(0.01), "rad")  # minus rot2
    # the beam centre in pixels: where the direct beam meets the detector (pyFAI's Fit2D
    # centre; the detector is tilted about the horizontal axis only)
    fit2d = geometry.pyfai.getFit2D()
    assert inst["detector/beam_center_x"] == (pytest.approx(240.0), "pixel")
    assert inst["detector/beam_center_y"] == (pytest.approx(fit2d["centerY"]), "pixel")
    assert inst["detector/beam_center_y"][0] != pytest.approx(10.0)
    with h5py.File(path) as f:
        signal = f["img_gid_q/data/img_gid_q"]
        # whole frames per chunk, about 1 MiB (a Pilatus-sized map: one frame per chunk)
        assert signal.chunks[1:] == (60, 120)
        assert signal.chunks[0] == (1 << 20) // (60 * 120 * 4)
        # gzip (1) after shuffle (2): filters every HDF5 library has
        assert [signal.id.get_create_plist().get_filter(i)[0]
                for i in range(signal.id.get_create_plist().get_nfilters())] == [2, 1]
        data = f["img_gid_q/data"]
        assert list(data.attrs["axes"]) == ["frame_ind", "q_z", "q_xy"]
        assert data.attrs["q_xy_indices"] == 2 and data.attrs["frame_ind_indices"] == 0
        assert f.attrs["default"] == "img_gid_q"
        assert f["img_gid_q"].attrs["default"] == "data"
        # the per-frame incidence angle is one dataset reached from data and instrument
        assert f["img_gid_q/data/incidence_angle"].id == \
            f["img_gid_q/instrument/angle_of_incidence"].id
        note = f["img_gid_q/process/configuration/data"][()]
        assert isinstance(note, bytes)
        start = f["img_gid_q/start_time"][()].decode()
        assert start[-6] in "+-" and "T" in start  # ISO 8601 with a zone


def test_lazy_slicing_reads_the_asked_frames(tmp_path, geometry, frames):
    path = tmp_path / "film.nxs"
    converter = _write(path, geometry, frames)
    truth = converter.convert(frames)["img_gid_q"].intensity
    stored = NexusFile(path).result("img_gid_q")
    assert stored.frames == 6 and stored.shape == (6, 60, 120)
    np.testing.assert_array_equal(stored[2].intensity[0], truth[2])
    np.testing.assert_array_equal(stored[-1].intensity[0], truth[5])
    np.testing.assert_array_equal(stored[1:5:2].intensity, truth[1:5:2])
    picked = stored.read([4, 0, 4])
    np.testing.assert_array_equal(picked.intensity, truth[[4, 0, 4]])
    with pytest.raises(NxgidError, match="frame 6 does not exist"):
        stored.read(6)
    array = NexusFile(path).to_xarray("img_gid_q")
    assert array["img_gid_q"].dims == ("frame", "q_z", "q_xy")


def test_append_stacks_matching_results_and_keeps_earlier_frames(tmp_path, geometry, frames):
    path = tmp_path / "film.nxs"
    converter = _write(path, geometry, frames[:3])
    with h5py.File(path) as f:
        before = f["img_gid_q/data/img_gid_q"][()]
        date = f["img_gid_q/process/date"][()]
        start = f["img_gid_q/start_time"][()]
    time.sleep(1.1)  # so a rewritten date would show
    _write(path, geometry, frames[3:], converter=converter, mode="append")
    with h5py.File(path) as f:
        assert list(f) == ["img_gid_q", "rad_cut_gid"]
        stacked = f["img_gid_q/data/img_gid_q"]
        assert stacked.shape[0] == 6
        np.testing.assert_array_equal(stacked[:3], before)
        assert f["img_gid_q/process/date"][()] == date
        assert f["img_gid_q/start_time"][()] == start
        assert f["img_gid_q/end_time"][()] >= start
        assert list(f["img_gid_q/data/frame_ind"][()]) == list(range(6))


def test_mismatches_go_to_new_entries(tmp_path, geometry, frames):
    path = tmp_path / "film.nxs"
    _write(path, geometry, frames[:2])
    finer = _converter(geometry, [TargetSpec("img_gid_q", bins={"q_xy": 200, "q_z": 60})])
    _write(path, geometry, frames[:2], converter=finer, mode="append")
    other_corr = _converter(geometry, [TargetSpec("img_gid_q", bins={"q_xy": 120, "q_z": 60})],
                            corrections=Corrections.none())
    _write(path, geometry, frames[:2], converter=other_corr, mode="append")
    no_errors = _converter(geometry, [TargetSpec("img_gid_q", bins={"q_xy": 120, "q_z": 60})],
                           errors=False)
    _write(path, geometry, frames[:2], converter=no_errors, mode="append")
    # and a different incidence angle still stacks: it is recorded per frame
    same = _converter(geometry)
    with NexusWriter(path, _metadata(geometry), mode="append") as writer:
        placed = writer.write(same.convert(frames[:1], incidence_deg=0.3))
    assert placed == {"img_gid_q": "img_gid_q", "rad_cut_gid": "rad_cut_gid"}
    nexus = NexusFile(path)
    assert nexus.results()["img_gid_q"] == ["img_gid_q", "img_gid_q_2", "img_gid_q_3",
                                            "img_gid_q_4"]
    assert nexus.result("img_gid_q_2").shape == (2, 60, 200)
    assert nexus.result("img_gid_q").frames == 3
    np.testing.assert_allclose(
        nexus.load("img_gid_q").frame_values["incidence_angle_deg"], [0.15, 0.15, 0.3])


def test_existing_file_is_never_replaced_without_overwrite(tmp_path, geometry, frames):
    path = tmp_path / "film.nxs"
    _write(path, geometry, frames[:2])
    content = path.read_bytes()
    with pytest.raises(ExistsError, match="--overwrite"):
        _write(path, geometry, frames[:2])
    assert path.read_bytes() == content
    _write(path, geometry, frames[:4], mode="overwrite")
    assert NexusFile(path).result("img_gid_q").frames == 4
    assert not list(tmp_path.glob(".*partial"))


def _failing_after(monkeypatch, calls: int):
    """Make the writer's array growth fail at its *calls*-th use (mid-block)."""
    from nxgid.nexus import entries as entries_module

    real = entries_module.grow
    count = {"n": 0}

    def grow(dataset, values):
        count["n"] += 1
        if count["n"] == calls:
            raise RuntimeError("injected failure")
        real(dataset, values)

    monkeypatch.setattr(entries_module, "grow", grow)


def _lengths(path):
    with h5py.File(path) as f:
        return {e: {d.name: d.shape[0] for d in writer_module.frame_datasets(f[e])}
                for e in f}


def test_error_mid_append_leaves_earlier_frames_readable(tmp_path, geometry, frames,
                                                        monkeypatch):
    path = tmp_path / "film.nxs"
    converter = _write(path, geometry, frames[:4])
    _failing_after(monkeypatch, 12)  # inside the second result of the next block
    with pytest.raises(RuntimeError, match="injected"):
        _write(path, geometry, frames[4:], converter=converter, mode="append", block=2)
    for entry, lengths in _lengths(path).items():
        assert set(lengths.values()) == {4}, (entry, lengths)
    np.testing.assert_array_equal(NexusFile(path).load("img_gid_q").intensity,
                                  converter.convert(frames[:4])["img_gid_q"].intensity)


def test_error_in_a_new_file_keeps_the_blocks_written(tmp_path, geometry, frames,
                                                      monkeypatch):
    path = tmp_path / "film.nxs"
    _failing_after(monkeypatch, 20)  # in the second block of two frames
    with pytest.raises(RuntimeError, match="injected"):
        _write(path, geometry, frames, block=2)
    assert {n for lengths in _lengths(path).values() for n in lengths.values()} == {2}
    assert not list(tmp_path.glob(".*partial"))


def test_error_while_overwriting_keeps_the_old_file(tmp_path, geometry, frames, monkeypatch):
    path = tmp_path / "film.nxs"
    _write(path, geometry, frames[:1])
    content = path.read_bytes()
    _failing_after(monkeypatch, 20)
    with pytest.raises(RuntimeError, match="injected"):
        _write(path, geometry, frames, mode="overwrite", block=2)
    assert path.read_bytes() == content
    assert not list(tmp_path.glob(".*partial"))


KILLED_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from nxgid.geometry import DetectorGeometry, SampleGeometry
    from nxgid.conversion import Converter, TargetSpec
    from nxgid.nexus.writer import NexusWriter, EntryMetadata, InstrumentInfo
    geometry = DetectorGeometry.from_parameters(
        detector=None, pixel_size_m=(172e-6, 172e-6), shape=(195, 487), distance_m=0.12,
        wavelength_A=1.0, beam_center_px=(10.0, 240.0))
    converter = Converter(geometry, SampleGeometry.grazing(0.15),
                          [TargetSpec("img_gid_q", bins={"q_xy": 300, "q_z": 200})])
    rng = np.random.default_rng(0)
    with NexusWriter(sys.argv[1], EntryMetadata(InstrumentInfo(geometry)),
                     mode=sys.argv[2]) as writer:
        while True:
            frames = rng.poisson(10.0, (2, 195, 487)).astype(np.uint32)
            writer.write(converter.convert(frames))
            print("block", flush=True)
""")


READ_ALL = textwrap.dedent("""
    import sys
    from nxgid.nexus.reader import NexusFile
    stored = NexusFile(sys.argv[1]).load("img_gid_q")  # every frame, decompressed
    print(stored.frames)
""")


@pytest.mark.parametrize("mode", ["create", "append"])
def test_writer_killed_with_sigkill_leaves_a_readable_appendable_file(tmp_path, geometry,
                                                                      mode):
    """Kill a writer at random moments, several times over the same file: every time the
    file opens, every committed frame decompresses (read in a child process, so that a
    corrupt chunk crashing the decompressor fails the test instead of pytest), and the
    next writer appends to it."""
    path = tmp_path / "killed.nxs"
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    reader = tmp_path / "read.py"
    reader.write_text(READ_ALL)
    rng = np.random.default_rng(1 if mode == "create" else 2)
    previous = 0
    for round_ in range(4):  # later rounds append to the file the earlier ones left
        process = subprocess.Popen([sys.executable, str(script), str(path),
                                    mode if round_ == 0 else "append"],
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().startswith("block")  # one block announced
        time.sleep(rng.uniform(0.0, 0.8))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
        check = subprocess.run([sys.executable, str(reader), str(path)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr[-500:]
        frames = int(check.stdout)
        assert frames >= previous + 2  # at least the announced block
        previous = frames
    with NexusWriter(path, EntryMetadata(InstrumentInfo(geometry)), mode="append"):
        pass  # reopening for append cuts uncommitted rows
    assert {n for n in _lengths(path)["img_gid_q"].values()} == {previous}


def test_a_killed_writers_partial_file_is_removed_by_the_next_writer(tmp_path, geometry,
                                                                     frames):
    """An overwrite publishes only when complete, so a writer killed on the way leaves its
    hidden partial file; the next writer of that output removes it (its writer's pid is
    in its name and is dead), but never the partial file of a writer still running."""
    from nxgid.safety.partials import partial_files

    path = tmp_path / "film.nxs"
    _write(path, geometry, frames[:1])
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    process = subprocess.Popen([sys.executable, str(script), str(path), "overwrite"],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith("block")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()
    (left,) = partial_files(path)
    assert f"-{process.pid}-" in left.name
    alive = subprocess.Popen([sys.executable, str(script), str(path), "overwrite"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert alive.stdout.readline().startswith("block")
        running = [p for p in partial_files(path) if f"-{alive.pid}-" in p.name]
        _write(path, geometry, frames[:2], mode="overwrite")
        assert not left.exists()  # the dead writer's
        assert partial_files(path) == running  # the live one's is left alone
    finally:
        alive.kill()
        alive.wait()
        alive.stdout.close()
    assert {n for n in _lengths(path)["img_gid_q"].values()} == {2}


def test_reader_tolerates_foreign_groups(tmp_path, geometry, frames):
    path = tmp_path / "mixed.nxs"
    _write(path, geometry, frames[:2])
    with h5py.File(path, "a") as f:
        raw = f.create_group("entry")
        raw.attrs["NX_class"] = "NXentry"
        raw.create_dataset("definition", data="NXsas")
        det = raw.create_group("instrument/detector")
        det.attrs["NX_class"] = "NXdetector"
        det.create_dataset("data", data=np.zeros((2, *SHAPE), np.uint32))
        f.create_group("scratch").create_dataset("x", data=[1, 2, 3])
    nexus = NexusFile(path)
    assert nexus.entry_names() == ["img_gid_q", "rad_cut_gid"]
    assert "/entry (NXentry)" in __import__("nxgid.nexus.summary", fromlist=["x"]) \
        .summarise(nexus)
    with pytest.raises(MissingError, match="no entry 'entry'"):
        nexus.result("entry")


def test_set_sample_and_experiment_in_place(tmp_path, geometry, frames):
    path = tmp_path / "film.nxs"
    _write(path, geometry, frames[:2])
    nexus = NexusFile(path)
    assert nexus.sample().name == "unnamed sample"
    sample = SampleInfo(name="P3HT", layers=[Layer(material="P3HT", thickness_nm=80)])
    nexus.set_sample(sample)
    nexus.set_experiment(ExperimentInfo(facility="PETRA III", beamline="P03"))
    for entry in nexus.entry_names():
        assert nexus.sample(entry) == sample
        assert nexus.experiment(entry).beamline == "P03"
    np.testing.assert_array_equal(nexus.load("img_gid_q").intensity.shape, (2, 60, 120))


def test_error_in_a_new_entry_of_an_existing_file_leaves_no_empty_entry(
        tmp_path, geometry, frames, monkeypatch):
    path = tmp_path / "film.nxs"
    _write(path, geometry, frames[:2])
    finer = _converter(geometry, [TargetSpec("img_gid_q", bins={"q_xy": 200, "q_z": 60})])
    _failing_after(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="injected"):
        _write(path, geometry, frames[:2], converter=finer, mode="append")
    with h5py.File(path) as f:
        assert list(f) == ["img_gid_q", "rad_cut_gid"]  # no half-made img_gid_q_2
        assert f.attrs["default"] == "img_gid_q"


def test_analysis_tables_grow_in_one_group(tmp_path, geometry, frames):
    from nxgid.nexus.validate import validate

    path = tmp_path / "film.nxs"
    _write(path, geometry, frames[:3])
    nexus = NexusFile(path)
    peaks = np.dtype([("frame_ind", "i8"), ("q_xy", "f8"), ("q_z", "f8"), ("height", "f4")])
    first = np.array([(0, 1.2, 0.5, 80.0), (0, 1.5, 0.3, 20.0)], dtype=peaks)
    assert nexus.add_table("peaks", first) == 2
    assert nexus.add_table("peaks", np.array([(2, 1.21, 0.5, 75.0)], dtype=peaks)) == 3
    assert nexus.tables() == ["peaks"]
    np.testing.assert_array_equal(nexus.table("peaks", frame=0), first)
    assert nexus.table("peaks")["q_xy"][-1] == pytest.approx(1.21)
    with pytest.raises(NxgidError, match="frame 3 does not exist"):
        nexus.add_table("peaks", np.array([(3, 1.0, 0.1, 1.0)], dtype=peaks))
    with pytest.raises(NxgidError, match="'frame_ind' field"):
        nexus.add_table("fits", np.zeros(2, dtype=[("q", "f8")]))
    with h5py.File(path) as f:  # one table, not one group per frame
        assert list(f["img_gid_q/analysis"]) == ["peaks"]
    assert validate(path) == {key: [] for key in validate(path)}


def test_a_missing_compression_filter_is_named(tmp_path, geometry, frames):
    """A reader without bitshuffle gets an error naming it (h5py only names a plugin
    folder); the default, gzip, needs no plugin at all."""
    import hdf5plugin

    path = tmp_path / "bitshuffle.nxs"
    converter = _converter(geometry)
    with NexusWriter(path, _metadata(geometry), compression="bitshuffle-lz4") as writer:
        writer.write(converter.convert(frames[:2]))
    h5py.h5z.unregister_filter(32008)
    try:
        with pytest.raises(NxgidError) as caught:
            NexusFile(path).load("img_gid_q")
        message = str(caught.value)
        assert "bitshuffle" in message and "32008" in message and "hdf5plugin" in message
        assert "\n" not in message
        gzip = tmp_path / "gzip.nxs"
        _write(gzip, geometry, frames[:2])
        assert NexusFile(gzip).load("img_gid_q").frames == 2  # no plugin needed
    finally:
        hdf5plugin.register(filters=("bshuf",), force=True)
    assert NexusFile(path).load("img_gid_q").frames == 2


def _with_exit(geometry, q_bins, exit_bins):
    return _converter(geometry, [TargetSpec("img_gid_q", bins={"q_xy": q_bins, "q_z": 60}),
                                 TargetSpec("img_gid_exit", bins={"ang_gid_inplane": exit_bins,
                                                                  "ang_gid_exit": 40})])


def test_results_pygid_lacks_stay_with_the_entry_of_their_frames(tmp_path, geometry,
                                                                 frames):
    """An exit map goes with the pygid entry of its block; names stay unique in the
    file, so the scan file's links and the previews (named by result) never collide."""
    path = tmp_path / "film.nxs"
    first = _with_exit(geometry, 120, 50)
    with NexusWriter(path, _metadata(geometry)) as writer:
        writer.write(first.convert(frames[:2]))
    other = _with_exit(geometry, 100, 30)  # both change: new q entry, new exit map
    with NexusWriter(path, _metadata(geometry), mode="append") as writer:
        placed = writer.write(other.convert(frames[2:4]))
    assert placed == {"img_gid_q": "img_gid_q_2",
                      "img_gid_exit": "img_gid_q_2/other_results/img_gid_exit_2"}
    with NexusWriter(path, _metadata(geometry), mode="append") as writer:
        placed = writer.write(first.convert(frames[4:6]))  # the first configuration again
    assert placed == {"img_gid_q": "img_gid_q",
                      "img_gid_exit": "img_gid_q/other_results/img_gid_exit"}
    names = [e.name for e in NexusFile(path).entries()]
    assert len({name.rsplit("/", 1)[-1] for name in names}) == len(names) == 4
    assert NexusFile(path).load("img_gid_q/other_results/img_gid_exit").frames == 4


def test_a_failed_block_takes_back_its_nested_results_and_times(tmp_path, geometry, frames,
                                                               monkeypatch):
    from datetime import UTC, datetime

    path = tmp_path / "film.nxs"
    with NexusWriter(path, _metadata(geometry)) as writer:
        writer.write(_with_exit(geometry, 120, 50).convert(frames[:2]))
    with h5py.File(path) as f:
        end = f["img_gid_q/end_time"][()]
    # the same q map (appended) with another exit map (a new nested entry) …
    mixed = _converter(geometry, [TargetSpec("img_gid_q", bins={"q_xy": 120, "q_z": 60}),
                                  TargetSpec("img_gid_exit", bins={"ang_gid_inplane": 30,
                                                                   "ang_gid_exit": 40})])
    later = [datetime(2030, 1, 1, tzinfo=UTC)] * 2
    _failing_after(monkeypatch, 9)  # … failing in the exit map, after the q map grew
    with pytest.raises(RuntimeError, match="injected"), \
            NexusWriter(path, _metadata(geometry), mode="append") as writer:
        writer.write(mixed.convert(frames[2:4]),
                     FrameBlock(files=["a", "b"], numbers=[2, 3], times=later))
    with h5py.File(path) as f:
        assert sorted(f) == ["img_gid_q"]
        assert list(f["img_gid_q/other_results"]) == ["img_gid_exit"]
        assert f["img_gid_q/end_time"][()] == end  # not moved by the failed block
        assert {d.shape[0] for d in writer_module.frame_datasets(f["img_gid_q"])} == {2}
