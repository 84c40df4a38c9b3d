"""Every kind of file nxgid writes is valid NeXus: the NXgid application definition
(nexusformat's and pynxtools' validators), silx's NXdata rules and NeXpy's nxload."""

from __future__ import annotations

import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest

from nxgid import names as nx
from nxgid.conversion import Converter, TargetSpec
from nxgid.conversion.corrections import Corrections
from nxgid.errors import MissingError, NxgidError
from nxgid.geometry import DetectorGeometry, SampleGeometry
from nxgid.images.simulate import Pattern, Ring, Spot, simulate_stack
from nxgid.nexus import validate as nv
from nxgid.nexus.reader import NexusFile
from nxgid.nexus.writer import (
    EntryMetadata,
    FrameBlock,
    InstrumentInfo,
    NexusWriter,
    pixel_mask_bits,
)

pytest.importorskip("nexusformat")
pytest.importorskip("pynxtools")
pytest.importorskip("silx")

SHAPE = (48, 80)
PIXEL = 172e-6
PATTERN = Pattern(rings=(Ring(d_spacing_A=4.5, intensity=30, width_A=0.03),),
                  spots=(Spot(1.0, 0.4, 400, 0.04),), background=5.0)
GI_MAPS = ["img_gid_q", "img_gid_pol", "img_gid_pseudopol", "img_gid_exit"]
GI_PROFILES = ["rad_cut_gid", "azim_cut_gid", "horiz_cut_gid", "vert_cut_gid"]
TRANSMISSION = ["img_q", "img_pol", "img_pseudopol", "rad_cut", "azim_cut"]
BINS = {"img_gid_q": {"q_xy": 40, "q_z": 30}, "img_gid_pol": {"q_gid_pol": 40},
        "img_q": {"q_x": 40, "q_y": 30}}


def _geometry(beam_center_px):
    return DetectorGeometry.from_parameters(
        detector=None, pixel_size_m=(PIXEL, PIXEL), shape=SHAPE, distance_m=0.08,
        wavelength_A=1.0, beam_center_px=beam_center_px, rot2_rad=-0.01)


GI_GEOMETRY = _geometry((4.0, 40.0))
TR_GEOMETRY = _geometry((24.0, 40.0))
GRAZING = SampleGeometry.grazing(0.15)
TRANSMIT = SampleGeometry.transmission()


def _converter(names, sample=GRAZING, geometry=GI_GEOMETRY, bins=None, **kwargs):
    bins = {**BINS, **(bins or {})}
    specs = [TargetSpec(name, bins=bins.get(name, {})) for name in names]
    return Converter(geometry, sample, specs,
                     corrections=kwargs.pop("corrections", Corrections()), **kwargs)


def _metadata(geometry=GI_GEOMETRY, mask=None, **kwargs):
    return EntryMetadata(InstrumentInfo(geometry, mask, source_name="ESRF", name="ID10"),
                         **kwargs)


def _frames(sample=GRAZING, geometry=GI_GEOMETRY, n=4, seed=1):
    return simulate_stack(geometry, sample, PATTERN, frames=n, seed=seed)


def _write(path, converter, frames, metadata=None, *, mode="create", block=2,
           variables=None, start=0, times=False):
    """Convert *frames* block by block into *path*; *variables*: name -> (unit, values
    of all frames)."""
    metadata = metadata or _metadata(converter.geometry)
    done = start
    with NexusWriter(path, metadata, mode=mode) as writer:
        for results in converter.convert_blocks(frames, block_frames=block,
                                                reuse_outputs=True):
            n = next(iter(results.values())).frames
            given = {name: (values[done - start:done - start + n], unit)
                     for name, (unit, values) in (variables or {}).items()}
            moments = [datetime(2024, 5, 1, 12, tzinfo=UTC) + timedelta(seconds=10 * i)
                       for i in range(done, done + n)] if times else None
            writer.write(results, FrameBlock(
                files=[f"raw_{i:03d}.h5" for i in range(done, done + n)],
                numbers=list(range(done, done + n)), variables=given, times=moments))
            done += n


def _write_raw_entry(path, frames):
    """A foreign raw entry (NXsas-like, written by hand as a beamline would)."""
    with h5py.File(path, "w") as f:
        f.attrs["NX_class"] = "NXroot"
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        entry["definition"] = "NXsas"
        instrument = entry.create_group("instrument")
        instrument.attrs["NX_class"] = "NXinstrument"
        detector = instrument.create_group("detector")
        detector.attrs["NX_class"] = "NXdetector"
        raw = detector.create_dataset("data", data=frames.astype(np.int32))
        raw.attrs["target"] = raw.name
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "data"
        data["data"] = raw


# --- the files -----------------------------------------------------------------------

def _make_files(folder) -> dict[str, tuple]:
    """Every kind of file nxgid writes: name -> (path, expected nxgid entries)."""
    files = {}
    gi_frames, tr_frames = _frames(), _frames(TRANSMIT, TR_GEOMETRY)

    for kind, names in (("gi_maps", GI_MAPS), ("gi_profiles", GI_PROFILES)):
        path = folder / f"{kind}.nxs"  # with errors, q in 1/angstrom, no mask
        _write(path, _converter(names), gi_frames)
        # the exit-angle map, which pygid does not know, is nested in img_gid_q
        files[kind] = path, [name for name in names if name in nx.PYGID_RESULTS]

    path = folder / "exit_only.nxs"  # no pygid result at all: the exit map at the top
    _write(path, _converter(["img_gid_exit"]), gi_frames)
    files["exit_only"] = path, ["img_gid_exit"]

    path = folder / "transmission.nxs"  # no angle of incidence at all
    _write(path, _converter(TRANSMISSION, TRANSMIT, TR_GEOMETRY), tr_frames,
           _metadata(TR_GEOMETRY))
    files["transmission"] = path, TRANSMISSION

    path = folder / "no_errors_nm.nxs"  # without errors, q in 1/nm
    names = ["img_gid_q", "img_gid_pseudopol", "vert_cut_gid"]
    _write(path, _converter(names, errors=False, q_unit="nm^-1",
                            bins={"img_gid_q": {}, "img_gid_pol": {}}), gi_frames)
    files["no_errors_nm"] = path, names

    path = folder / "mask_scan.nxs"  # a user mask, scan variables, acquisition times
    user = np.zeros(SHAPE, dtype=bool)
    user[:6, 36:44] = True  # beam stop
    bits = pixel_mask_bits(GI_GEOMETRY.detector_mask, user, SHAPE)
    names = ["img_gid_q", "azim_cut_gid"]
    _write(path, _converter(names, mask=bits), gi_frames, _metadata(mask=bits),
           variables={"temperature": ("K", np.linspace(300, 330, 4)),
                      "sample_x": ("mm", [0.0, 0.5, 1.0, 1.5])}, times=True)
    files["mask_scan"] = path, names

    path = folder / "appended.nxs"  # a second writer appends frames (another angle)
    names = ["img_gid_q", "rad_cut_gid"]
    converter = _converter(names)
    _write(path, converter, gi_frames[:2], variables={"temperature": ("K", [300, 301])})
    with NexusWriter(path, _metadata(), mode="append") as writer:
        writer.write(converter.convert(gi_frames[2:], incidence_deg=0.2))
    files["appended"] = path, names

    path = folder / "mismatch.nxs"  # other bins, no errors: new entries in the file
    _write(path, _converter(["img_gid_q"]), gi_frames[:2])
    _write(path, _converter(["img_gid_q"], bins={"img_gid_q": {"q_xy": 50, "q_z": 20}}),
           gi_frames[2:], mode="append")
    _write(path, _converter(["img_gid_q"], errors=False), gi_frames[:1], mode="append")
    files["mismatch"] = path, ["img_gid_q", "img_gid_q_2", "img_gid_q_3"]

    path = folder / "foreign.nxs"  # nxgid entries next to a raw entry of another program
    _write_raw_entry(path, gi_frames)
    names = ["img_gid_q", "vert_cut_gid"]
    _write(path, _converter(names), gi_frames, mode="append")
    files["foreign"] = path, names
    return files


def _make_metadata_file(folder):
    from nxgid.nexus.metadata import ExperimentInfo, Layer, SampleInfo, User

    sample = SampleInfo(
        name="PEN-SiO2-042", description="pentacene film", chemical_formula="C22H14",
        preparation_date="2024-03-15", notes={"annealed": False, "rate_A_per_s": 0.1},
        layers=[Layer(material="pentacene", chemical_formula="C22H14", thickness_nm=50,
                      density_g_cm3=1.33, roughness_nm=2.5, description="thin-film phase"),
                Layer(material="SiO2", thickness_nm=1.5, density_g_cm3=2.2),
                Layer(material="Si", thickness_nm=5e5, roughness_nm=0.2)])
    experiment = ExperimentInfo(
        facility="ESRF", beamline="ID10", proposal="SC-1234", title="Pentacene growth",
        users=[User(name="A. Scientist", role="PI", affiliation="Somewhere",
                    email="a@example.org", orcid="0000-0002-1825-0097",
                    facility_user_id="u123"),
               User(name="B. Student")])
    path = folder / "metadata.nxs"
    names = ["img_gid_q", "rad_cut_gid"]
    _write(path, _converter(names), _frames(n=2),
           _metadata(sample=sample, experiment=experiment,
                     inputs={"poni": "lab6.poni", "mask": "mask.edf"}))
    return path, names


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nexus_validation")
    made = _make_files(folder)
    try:
        import nxgid.nexus.metadata  # noqa: F401
    except ImportError:  # written by another helper; the rest is tested without it
        pass
    else:
        made["metadata"] = _make_metadata_file(folder)
    return made


FILE_NAMES = ["gi_maps", "gi_profiles", "exit_only", "transmission", "no_errors_nm",
              "mask_scan", "appended", "mismatch", "foreign", "metadata"]


@pytest.fixture(scope="module")
def reports(files):
    """Validation results per file, computed once: name -> {check: problems}."""
    cache: dict[str, dict[str, list[str]]] = {}

    def report(name):
        if name not in files:
            pytest.skip(f"{name}: not written (nxgid.nexus.metadata missing)")
        if name not in cache:
            cache[name] = nv.validate(files[name][0])
        return cache[name]

    return report


# --- the files are what they claim ---------------------------------------------------

def test_files_hold_the_expected_entries(files):
    for name, (path, entries) in files.items():
        assert sorted(nv.nxgid_entries(path)) == sorted(entries), name
    with h5py.File(files["mismatch"][0]) as f:
        assert f["img_gid_q_2/data/img_gid_q"].shape == (2, 20, 50)
        assert "img_gid_q_errors" not in f["img_gid_q_3/data"]
    with h5py.File(files["appended"][0]) as f:
        assert f["img_gid_q/data/frame_ind"].shape == (4,)
        np.testing.assert_allclose(f["img_gid_q/data/incidence_angle"][()],
                                   [0.15, 0.15, 0.2, 0.2])
    with h5py.File(files["no_errors_nm"][0]) as f:
        assert f["img_gid_q/data/q_xy"].attrs["units"] == "1/nm"
        assert "img_gid_q_errors" not in f["img_gid_q/data"]
    with h5py.File(files["mask_scan"][0]) as f:
        assert f["img_gid_q/instrument/detector/mask"][0, 38] & nx.PIXEL_MASK_USER
        assert f["img_gid_q/data/sample_x"].attrs["units"] == "mm"
    with h5py.File(files["transmission"][0]) as f:
        assert "incidence_angle" not in f["img_q/data"]
    with h5py.File(files["gi_maps"][0]) as f:
        nested = f["img_gid_q/other_results/img_gid_exit"]
        assert nested.attrs["NX_class"] == "NXcollection"
        assert nested["data"].attrs["signal"] == "img_gid_exit"
        assert nested["data/incidence_angle"].shape == (4,)
        assert "instrument" not in nested  # the host's
        assert list(f["img_gid_q/data/analysis"]) == [f"frame{i:05d}" for i in range(4)]
        assert f["img_gid_q/process/pygidfit"].attrs["NX_class"] == "NXparameters"
    assert [e.name for e in NexusFile(files["gi_maps"][0]).entries()][-1] == \
        "img_gid_q/other_results/img_gid_exit"
    assert NexusFile(files["gi_maps"][0]).load("img_gid_exit").intensity.shape[0] == 4
    with h5py.File(files["foreign"][0]) as f:
        assert "entry" in f and f.attrs["default"] == "entry"
    if "metadata" in files:
        with h5py.File(files["metadata"][0]) as f:
            assert f["img_gid_q/sample/layer_1"].attrs["NX_class"] == "NXsample_component"
            assert f["img_gid_q/user_1/name"][()] == b"A. Scientist"


# --- every file is valid -------------------------------------------------------------

@pytest.mark.parametrize("name", FILE_NAMES)
def test_nexusformat_finds_no_errors(reports, name):
    assert reports(name)["nexusformat"] == []


@pytest.mark.parametrize("name", FILE_NAMES)
def test_pynxtools_finds_no_problems(reports, name):
    assert reports(name)["pynxtools"] == []


@pytest.mark.parametrize("name", FILE_NAMES)
def test_every_nxdata_is_valid_for_silx(reports, name):
    assert reports(name)["silx"] == []


@pytest.mark.parametrize("name", FILE_NAMES)
def test_nxload_opens_and_finds_the_default_plot(reports, files, name):
    assert reports(name)["nxload"] == []
    from nexusformat.nexus import nxload

    path, entries = files[name]
    root = nxload(str(path), "r")
    try:
        for entry in entries:
            data = root[entry].plottable_data
            assert data.nxpath == f"/{entry}/data"
            assert data.nxsignal.nxname == re.sub(r"_\d+$", "", entry)  # img_gid_q_2
            assert data.nxaxes[0].nxname == nx.FRAME_AXIS
        if name != "foreign":  # there the raw entry came first and is the default
            assert root.plottable_data.nxsignal.nxname == entries[0]
    finally:
        root.close()


def test_validating_leaves_the_file_untouched(files):
    """nexusformat would open the file read-write (its NXroot context manager does):
    validating must not change a byte or the modification time (a done workflow task
    would look stale)."""
    import hashlib

    path = files["gi_maps"][0]
    before = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    nv.validate_with_nexusformat(path)
    assert (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()) == \
        before


def test_warnings_of_nexusformat_are_available(files):
    warnings: list[str] = []
    assert nv.validate_with_nexusformat(files["gi_maps"][0], warnings=warnings) == []
    assert all(text.startswith("/") for text in warnings)


def test_foreign_entries_are_not_validated(files, reports):
    with h5py.File(files["foreign"][0]) as f:  # the raw entry is far from NXgid and NXsas
        assert "monochromator" not in f["entry/instrument"]
    assert reports("foreign")["nexusformat"] == reports("foreign")["pynxtools"] == []
    assert reports("foreign")["silx"] == []  # its NXdata is checked, though


# --- the validators can fail ---------------------------------------------------------

@pytest.fixture
def broken(files, tmp_path):
    """A copy of a valid file (entries img_gid_q and rad_cut_gid) to break."""
    path = tmp_path / "broken.nxs"
    shutil.copy(files["appended"][0], path)
    return path


def test_nexusformat_reports_a_missing_required_field(broken):
    with h5py.File(broken, "r+") as f:
        del f["img_gid_q/instrument/monochromator/wavelength"]
        del f["rad_cut_gid/instrument/source/probe"]
    errors = nv.validate_with_nexusformat(broken)
    assert errors == [
        "/img_gid_q/instrument/monochromator/wavelength: This required field is not in "
        "the NeXus file",
        "/rad_cut_gid/instrument/source/probe: This required field is not in the NeXus "
        "file"]


def test_nexusformat_reports_a_wrong_enumeration_and_a_missing_group(broken):
    with h5py.File(broken, "r+") as f:
        del f["img_gid_q/process/configuration"]
        del f["rad_cut_gid/instrument/source/probe"]
        f["rad_cut_gid/instrument/source/probe"] = "electron"
    errors = nv.validate_with_nexusformat(broken)
    assert any(e.startswith("/img_gid_q/process/configuration: ") for e in errors), errors
    assert any(e.startswith("/rad_cut_gid/instrument/source/probe: ") for e in errors), errors


def test_pynxtools_reports_wrong_units_and_missing_fields(broken, capsys):
    with h5py.File(broken, "r+") as f:
        f["img_gid_q/instrument/monochromator/wavelength"].attrs["units"] = "A"  # ampere
        f["img_gid_q/data/q_xy"].attrs["units"] = "degree"
        del f["rad_cut_gid/instrument/detector/distance"]
    problems = sorted(nv.validate_with_pynxtools(broken))
    assert len(problems) == 3, problems
    assert problems[0] == ("The required field /rad_cut_gid/instrument/detector/distance "
                           "hasn't been supplied.")
    assert "'A' at /img_gid_q/instrument/monochromator/wavelength/@units" in problems[1]
    assert "unit category NX_WAVELENGTH" in problems[1]
    assert "'degree' at /img_gid_q/data/q_xy/@units" in problems[2]
    assert "unit category NX_WAVENUMBER" in problems[2]
    assert nv.validate_with_nexusformat(broken)  # the missing distance
    captured = capsys.readouterr()  # the problems were returned, not printed
    assert captured.out == "" and captured.err == ""


def test_pynxtools_reports_undocumented_fields_and_wrong_types(broken):
    with h5py.File(broken, "r+") as f:
        f["img_gid_q/instrument/detector/undocumented"] = 1.0
        del f["rad_cut_gid/process/sequence_index"]
        f["rad_cut_gid/process/sequence_index"] = -1  # NX_POSINT
    problems = nv.validate_with_pynxtools(broken)
    assert any("/img_gid_q/instrument/detector/undocumented" in p for p in problems)
    assert any("/rad_cut_gid/process/sequence_index" in p for p in problems), problems


def test_silx_reports_an_invalid_nxdata(broken):
    with h5py.File(broken, "r+") as f:
        del f["img_gid_q/data/q_xy"]
        f["img_gid_q/data/q_xy"] = np.arange(3.0)  # not one value per column
        f["rad_cut_gid/data"].attrs["signal"] = "missing"
    problems = nv.check_nxdata_with_silx(broken)
    assert problems[0].startswith("/img_gid_q/data: ") and "q_xy" in problems[0]
    assert "/rad_cut_gid/data: Cannot find signal dataset 'missing'" in problems
    assert "/rad_cut_gid: @default does not lead to a valid NXdata group" in problems


def test_nxload_reports_a_default_that_leads_nowhere(broken):
    with h5py.File(broken, "r+") as f:
        f.attrs["default"] = "nothing"
        f["rad_cut_gid"].attrs["default"] = "nothing"
        f["img_gid_q/data"].attrs["signal"] = "missing"
    problems = nv.check_nxload(broken)
    assert problems == [
        f"{broken}: no default plot: @default does not lead to an NXdata group",
        "/img_gid_q/data: nexusformat finds no signal",
        "/rad_cut_gid: no default plot: @default does not lead to an NXdata group"]


def test_files_that_are_missing_or_not_hdf5_are_errors(tmp_path):
    with pytest.raises(MissingError, match="no such file"):
        nv.validate(tmp_path / "missing.nxs")
    path = tmp_path / "not.nxs"
    path.write_text("not HDF5")
    for check in (nv.validate_with_nexusformat, nv.validate_with_pynxtools,
                  nv.check_nxdata_with_silx, nv.check_nxload):
        with pytest.raises(NxgidError, match="not a readable HDF5 file"):
            check(path)


def test_a_file_without_nxgid_entries_is_reported(files, tmp_path):
    path = tmp_path / "raw.nxs"
    _write_raw_entry(path, _frames(n=1))
    expected = [f"{path}: no NXgid entry (an NXentry whose definition is 'NXgid'), nor is "
                "it an nxgid configuration or scan file"]
    assert nv.validate_with_nexusformat(path) == expected
    assert nv.validate_with_pynxtools(path) == expected


# --- the definition and the plumbing -------------------------------------------------

def test_the_definition_is_shipped_lint_free_and_documented():
    from nexusformat.nexus.validate import lint_nxdl

    path = nv.definition_path()
    assert path.parent == nv.definitions_dir() and path.name == "NXgid.nxdl.xml"
    assert lint_nxdl(path) == []
    ns = {"nx": "http://definition.nexusformat.org/nxdl/3.1"}
    root = ET.parse(path).getroot()
    assert root.get("name") == nx.DEFINITION and root.get("category") == "application"
    assert root.get("extends") == "NXobject"
    undocumented = [f"{elem.tag.split('}')[1]} {elem.get('name') or elem.get('type')}"
                    for tag in ("group", "field", "attribute", "symbol")
                    for elem in root.iter(f"{{{ns['nx']}}}{tag}")
                    if elem.find("nx:doc", ns) is None]
    assert undocumented == []
    enumeration = root.find(".//nx:field[@name='definition']/nx:enumeration/nx:item", ns)
    assert enumeration.get("value") == nx.DEFINITION


def test_nexus_def_path_is_restored(files, monkeypatch):
    monkeypatch.delenv("NEXUS_DEF_PATH", raising=False)
    from pynxtools.definitions.dev_tools.utils import nxdl_utils

    before = nxdl_utils.nexus_def_path
    assert nv.validate_with_pynxtools(files["appended"][0]) == []
    assert "NEXUS_DEF_PATH" not in os.environ
    assert nxdl_utils.nexus_def_path == before
    own = str(Path(nxdl_utils.__file__).resolve().parents[2])  # a user's definitions
    monkeypatch.setenv("NEXUS_DEF_PATH", own)
    assert nv.validate_with_pynxtools(files["appended"][0]) == []
    assert os.environ["NEXUS_DEF_PATH"] == own
    assert nxdl_utils.nexus_def_path == before


@pytest.mark.parametrize(("module", "check", "package"), [
    ("silx.io.nxdata", nv.check_nxdata_with_silx, "silx"),
    ("nexusformat.nexus.validate", nv.validate_with_nexusformat, "nexusformat"),
    ("pynxtools", nv.validate_with_pynxtools, "pynxtools"),
])
def test_a_missing_validator_names_its_extra(files, monkeypatch, module, check, package):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(NxgidError, match=rf"needs the {package} package: .*nxgid\[dev\]"):
        check(files["appended"][0])


# --- pygid's own reader ----------------------------------------------------------------

def _pygid_python() -> Path | None:
    """pygid's own environment (``.venv-bench``: pygid pins pytest<9), made by ``make
    test`` and ``.ci/run``; NXGID_PYGID_PYTHON names another."""
    given = os.environ.get("NXGID_PYGID_PYTHON")
    if given:
        return Path(given)
    here = Path(__file__).resolve().parents[1] / ".venv-bench" / "bin" / "python"
    return here if here.exists() else None


def _pygid(*args) -> dict:
    import json
    import subprocess

    python = _pygid_python()
    if python is None:
        message = "pygid's environment .venv-bench is missing: `make test` builds it"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([str(python), str(Path(__file__).with_name("pygid_reader.py")),
                           *map(str, args)], capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def pygid_read(files):
    """What pygid's reader makes of every file nxgid writes (read once)."""
    return _pygid("read", *(path for path, _ in files.values()))


@pytest.mark.parametrize("name", [n for n in FILE_NAMES if n != "foreign"])
def test_pygid_opens_every_file_and_loads_every_result_with_its_axes(files, pygid_read,
                                                                     name):
    if name not in files:
        pytest.skip(f"{name}: not written")
    path, entries = files[name]
    seen = pygid_read[str(path)]
    if name == "exit_only":  # no result pygid knows: it says so, and nothing else
        assert seen == {"error": "ValueError: img_gid_exit is not a valid entry"}
        return
    assert "error" not in seen, seen
    assert sorted(seen["entries"]) == sorted(entries)
    with h5py.File(path) as f:
        for entry, got in seen["entries"].items():
            assert "error" not in got, (entry, got)
            data = f[entry]["data"]
            assert got["result"] == data.attrs["signal"]
            assert got["shape"] == list(data[got["result"]].shape)
            for axis, (first, last, size) in got["axes"].items():
                values = data[axis][()]
                assert (first, last, size) == (pytest.approx(values[0]),
                                                pytest.approx(values[-1]), values.size)
            assert got["analysis_groups"] == \
                [f"frame{i:05d}" for i in range(data["frame_ind"].shape[0])]


def test_pygid_rebuilds_the_geometry_it_rebuilds_from_its_own_file(tmp_path, files,
                                                                    pygid_read):
    """Wavelength, distance, rot1–3, beam centre, PONI and incidence: from an nxgid file
    pygid gets what it gets from a file it wrote itself for the same PONI and frame."""
    import fabio

    poni, image, own = tmp_path / "geometry.poni", tmp_path / "frame.edf", \
        tmp_path / "pygid.nxs"
    GI_GEOMETRY.save_poni(poni)
    fabio.edfimage.EdfImage(data=_frames(n=1)[0].astype(np.float32)).write(str(image))
    _pygid("write", poni, image, 0.15, own)
    theirs = _pygid("read", own)[str(own)]["entries"]["img_gid_q"]["params"]
    for name in ("gi_maps", "gi_profiles", "mask_scan", "metadata"):
        if name not in files:
            continue
        for entry, got in pygid_read[str(files[name][0])]["entries"].items():
            ours = got["params"]
            assert ours.keys() == theirs.keys()
            for key, value in theirs.items():
                if key == "incidence_deg":  # one per frame; all 0.15 here
                    assert ours[key] == pytest.approx([value[0]] * len(ours[key]))
                else:
                    assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-12), \
                        (name, entry, key)


def test_peaks_stored_the_mlgid_way_read_back_and_keep_the_file_valid(tmp_path, files):
    """mlgidbase's save_detect/save_fit call pygid's own savers on the frame groups nxgid
    makes; the file stays valid for every validator and pygid still opens it."""
    path = tmp_path / "peaks.nxs"
    shutil.copy(files["gi_maps"][0], path)
    done = _pygid("store", path, "img_gid_q", 2)
    assert done["stored"]["detected_peaks"] == pytest.approx([1.35, 1.34])
    assert done["stored"]["fitted_peaks"] == pytest.approx([1.35, 1.34])
    assert done["classes"] == {"mlgiddetect": "NXparameters", "pygidfit": "NXparameters"}
    assert "error" not in done["reread"]
    assert nv.validate(path) == {check: [] for check in nv.CHECKS}
