"""Sample and experiment metadata: YAML loading, unit strings, errors, NeXus round trips."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from nxgid.errors import MissingError, NxgidError
from nxgid.nexus.metadata import (
    DENSITY_UNIT,
    LENGTH_UNIT,
    ExperimentInfo,
    Layer,
    SampleInfo,
    User,
    load_experiment_yaml,
    load_metadata_yaml,
    load_sample_yaml,
    parse_quantity,
    read_experiment,
    read_sample,
    write_experiment,
    write_sample,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "nxgid" / "demo" / "data"


def write_yaml(tmp_path: Path, text: str, name: str = "meta.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, loader=load_sample_yaml) -> str:
    with pytest.raises(NxgidError) as info:
        loader(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


@pytest.fixture
def nexus(tmp_path: Path):
    with h5py.File(tmp_path / "meta.nxs", "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.create_group("sample").attrs["NX_class"] = "NXsample"
        yield f


# ---------------------------------------------------------------- the examples

def test_example_sample() -> None:
    sample = load_sample_yaml(EXAMPLES / "sample.yaml")
    assert sample.name == "PEN-SiO2-042"
    assert sample.chemical_formula == "C22H14"
    assert sample.preparation_date == "2024-03-15"
    assert [layer.material for layer in sample.layers] == ["pentacene", "SiO2", "Si"]
    pentacene, oxide, silicon = sample.layers
    assert (pentacene.thickness_nm, pentacene.density_g_cm3, pentacene.roughness_nm) == (
        50.0, 1.33, 2.5)
    assert pentacene.chemical_formula == "C22H14"
    assert (oxide.thickness_nm, oxide.density_g_cm3) == (1.5, 2.2)  # 15 angstrom
    assert (silicon.thickness_nm, silicon.density_g_cm3, silicon.roughness_nm) == (
        500000.0, 2.33, 0.2)  # 0.5 mm
    assert "substrate" in (silicon.description or "")
    assert sample.notes["deposition_rate_A_per_s"] == 0.1
    assert sample.notes["substrate_temperature_C"] == 25
    assert sample.notes["base_pressure_mbar"] == pytest.approx(1e-7)
    assert sample.notes["annealed"] is False
    assert sample.notes["deposition_chamber"] == "OMBD-2"


def test_example_experiment() -> None:
    info = load_experiment_yaml(EXAMPLES / "experiment.yaml")
    assert (info.facility, info.beamline, info.proposal) == ("ESRF", "ID10", "SC-5432")
    assert info.title and "pentacene" in info.title
    assert [user.role for user in info.users] == ["PI", "local contact"]
    assert info.users[0].orcid == "0000-0002-1825-0097"
    assert info.users[0].facility_user_id == "123456"
    assert info.users[1].orcid is None


def test_examples_as_one_file(tmp_path: Path) -> None:
    sample_text = (EXAMPLES / "sample.yaml").read_text(encoding="utf-8")
    experiment_text = (EXAMPLES / "experiment.yaml").read_text(encoding="utf-8")
    indent = lambda text: "".join(f"  {line}\n" for line in text.splitlines())  # noqa: E731
    path = write_yaml(tmp_path, f"sample:\n{indent(sample_text)}"
                                f"experiment:\n{indent(experiment_text)}")
    sample, info = load_metadata_yaml(path)
    assert sample == load_sample_yaml(EXAMPLES / "sample.yaml") == load_sample_yaml(path)
    assert info == load_experiment_yaml(EXAMPLES / "experiment.yaml") == \
        load_experiment_yaml(path)


def test_bare_files_through_combined_loader() -> None:
    assert load_metadata_yaml(EXAMPLES / "sample.yaml")[1] is None
    assert load_metadata_yaml(EXAMPLES / "experiment.yaml")[0] is None
    assert load_metadata_yaml(EXAMPLES / "experiment.yaml")[1] == load_experiment_yaml(
        EXAMPLES / "experiment.yaml")


def test_missing_section(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "experiment:\n  facility: ESRF\n")
    assert "sample" in error_of(path)
    assert load_metadata_yaml(path)[0] is None


# ---------------------------------------------------------------- units

@pytest.mark.parametrize(("text", "nm"), [
    ("50 nm", 50.0), ("0.05 um", 50.0), ("0.05 µm", 50.0), ("0.05μm", 50.0),
    ("500 angstrom", 50.0), ("5 Å", 0.5), ("5 \u212b", 0.5), ("5 A", 0.5), ("5A", 0.5),
    ("0.5 mm", 500000.0), ("1e-8 m", 10.0), ("50 NM", 50.0), (" 2.5e1 nm ", 25.0),
])
def test_length_strings(tmp_path: Path, text: str, nm: float) -> None:
    assert parse_quantity(text, "length") == nm
    path = write_yaml(tmp_path, f"name: s\nlayers:\n  - material: x\n    thickness: '{text}'\n"
                                f"    roughness: '{text}'\n")
    layer = load_sample_yaml(path).layers[0]
    assert layer.thickness_nm == nm
    assert layer.roughness_nm == nm


@pytest.mark.parametrize(("text", "g_cm3"), [
    ("1.3 g/cm3", 1.3), ("1.3 g/cm^3", 1.3), ("2330 kg/m3", 2.33), ("2330 kg/m^3", 2.33),
])
def test_density_strings(tmp_path: Path, text: str, g_cm3: float) -> None:
    path = write_yaml(tmp_path, f"name: s\nlayers:\n  - material: x\n    density: {text}\n")
    assert load_sample_yaml(path).layers[0].density_g_cm3 == g_cm3


def test_canonical_keys_take_numbers() -> None:
    layer = Layer(material="x", thickness_nm=50, density_g_cm3=1.3, roughness_nm=0)
    assert (layer.thickness_nm, layer.density_g_cm3, layer.roughness_nm) == (50.0, 1.3, 0.0)
    assert Layer(material="x", thickness="3 nm").thickness_nm == 3.0  # type: ignore[call-arg]


@pytest.mark.parametrize(("line", "expected"), [
    ("thickness: 5 parsecs", "layers[1].thickness: '5 parsecs' is not a length; "
                             "expected e.g. '50 nm'"),
    ("density: 1.3 g/l", "layers[1].density: '1.3 g/l' is not a density; "
                         "expected e.g. '1.3 g/cm3'"),
    ("roughness: rough", "layers[1].roughness: 'rough' is not a length"),
    ("thickness: 50", "layers[1].thickness: 50 has no unit; expected e.g. '50 nm'"),
    ("thickness: -5 nm", "layers[1].thickness: input should be greater than 0 (got -5.0)"),
    ("thickness_nm: [1, 2]", "layers[1].thickness_nm: [1, 2] is not a length"),
    ("thickness_nm: 3\n    thickness: 3 nm", "layers[1]: give thickness (with unit) or "
                                            "thickness_nm, not both"),
])
def test_bad_units(tmp_path: Path, line: str, expected: str) -> None:
    path = write_yaml(tmp_path, f"name: s\nlayers:\n  - material: a\n  - material: b\n"
                                f"    {line}\n")
    message = error_of(path)
    assert message.startswith(f"{path}: {expected}")


# ---------------------------------------------------------------- other errors

def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "name: s\nlayers:\n  - material: a\n    thicknes: 50 nm\n")
    message = error_of(path)
    assert "layers[0].thicknes: unknown key; did you mean 'thickness'?" in message
    path = write_yaml(tmp_path, "nmae: s\n")  # also makes name missing: the typo comes first
    assert error_of(path) == f"{path}: nmae: unknown key; did you mean 'name'? (and 1 more error)"
    path = write_yaml(tmp_path, "name: s\ncolour: blue\n")
    assert "colour: unknown key; expected one of: name, description" in error_of(path)


def test_unknown_key_in_combined_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "experiment:\n  facility: ESRF\n  beamlin: ID10\n")
    assert error_of(path, load_metadata_yaml) == (
        f"{path}: experiment.beamlin: unknown key; did you mean 'beamline'?")
    path = write_yaml(tmp_path, "sample:\n  name: s\nextra: 1\n")
    assert "extra: unknown top-level key" in error_of(path, load_metadata_yaml)


def test_several_errors_are_counted(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "name: ''\nlayers:\n  - thickness: 1 nm\n  - material: b\n"
                                "    density: 0 g/cm3\n")
    message = error_of(path)
    assert message.endswith("(and 2 more errors)")
    assert message.startswith(f"{path}: name: string should have at least 1 character")


def test_notes_take_scalars_only(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "name: s\nnotes:\n  anneal_C: 120\n  when: 2024-01-02\n"
                                "  ok: yes\n  who: me\n")
    assert load_sample_yaml(path).notes == {"anneal_C": 120, "when": "2024-01-02", "ok": True,
                                           "who": "me"}
    path = write_yaml(tmp_path, "name: s\nnotes:\n  nested: {a: 1}\n")
    assert "notes: note 'nested': expected a single text, number or true/false" in \
        error_of(path)


@pytest.mark.parametrize("orcid", ["0000-0002-1825-009", "0000-0002-1825-0098", "orcid"])
def test_bad_orcid(tmp_path: Path, orcid: str) -> None:
    path = write_yaml(tmp_path, f"users:\n  - name: A\n  - name: B\n    orcid: '{orcid}'\n")
    message = error_of(path, load_experiment_yaml)
    assert message.startswith(f"{path}: users[1].orcid: '{orcid}' is not an ORCID")


def test_orcid_forms() -> None:
    assert User(name="a", orcid="https://orcid.org/0000-0002-1825-0097").orcid == \
        "0000-0002-1825-0097"
    assert User(name="a", orcid="0000-0002-1694-233X").orcid == "0000-0002-1694-233X"


def test_bad_email_and_date(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "users:\n  - name: A\n    email: nobody\n")
    assert "users[0].email: 'nobody' is not an e-mail address" in \
        error_of(path, load_experiment_yaml)
    path = write_yaml(tmp_path, "name: s\npreparation_date: 15.03.2024\n")
    assert "preparation_date: '15.03.2024' is not an ISO date" in error_of(path)


def test_numbers_as_text(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "proposal: 12345\nusers:\n  - name: A\n"
                                "    facility_user_id: 42\n")
    info = load_experiment_yaml(path)
    assert (info.proposal, info.users[0].facility_user_id) == ("12345", "42")


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "name: s\nlayers:\n  - material: a\n   thickness: [1\n")
    message = error_of(path)
    assert "line 4" in message
    assert "invalid YAML" in message


@pytest.mark.parametrize(("text", "expected"), [
    ("", "expected a mapping of keys, got an empty file"),
    ("- a\n- b\n", "expected a mapping of keys, got list"),
    ("sample: [1]\n", "sample: expected a mapping of keys, got list"),
])
def test_not_a_mapping(tmp_path: Path, text: str, expected: str) -> None:
    path = write_yaml(tmp_path, text)
    assert error_of(path) == f"{path}: {expected}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MissingError, match=r"nope\.yaml: no such file"):
        load_sample_yaml(tmp_path / "nope.yaml")
    with pytest.raises(MissingError):
        load_metadata_yaml(tmp_path / "nope.yaml")


def test_to_dict_round_trip() -> None:
    sample = load_sample_yaml(EXAMPLES / "sample.yaml")
    data = sample.to_dict()
    assert data["layers"][2]["thickness_nm"] == 500000.0
    assert SampleInfo.model_validate(data) == sample
    info = load_experiment_yaml(EXAMPLES / "experiment.yaml")
    assert "orcid" not in info.to_dict()["users"][1]
    assert ExperimentInfo.model_validate(info.to_dict()) == info


# ---------------------------------------------------------------- NeXus

def test_sample_round_trip(nexus: h5py.File) -> None:
    sample = load_sample_yaml(EXAMPLES / "sample.yaml")
    group = nexus["entry/sample"]
    write_sample(group, sample)
    assert group.attrs["NX_class"] == "NXsample"
    assert sorted(key for key in group if key.startswith("layer_")) == [
        "layer_1", "layer_2", "layer_3"]
    top = group["layer_1"]
    assert top.attrs["NX_class"] == "NXsample_component"
    assert top["name"][()] == b"pentacene"  # h5py returns variable-length strings as bytes
    assert h5py.check_string_dtype(top["name"].dtype).encoding == "utf-8"
    assert top["sequence_index"][()] == 1
    assert top["thickness"].attrs["units"] == LENGTH_UNIT == "nm"
    assert top["roughness"].attrs["units"] == "nm"
    assert top["density"].attrs["units"] == DENSITY_UNIT == "g/cm^3"
    assert top["thickness"].dtype == "float64"
    assert top["thickness"].shape == ()
    assert group["notes"].attrs["NX_class"] == "NXcollection"
    assert read_sample(group) == sample


def test_sample_read_gives_str(nexus: h5py.File) -> None:
    write_sample(nexus["entry/sample"], load_sample_yaml(EXAMPLES / "sample.yaml"))
    read = read_sample(nexus["entry/sample"])
    for text in (read.name, read.layers[0].material, read.layers[0].chemical_formula,
                 read.notes["deposition_chamber"]):
        assert type(text) is str
    assert type(read.notes["annealed"]) is bool
    assert type(read.notes["substrate_temperature_C"]) is int


def test_sample_rewrite(nexus: h5py.File) -> None:
    group = nexus["entry/sample"]
    group.create_dataset("temperature", data=300.0).attrs["units"] = "K"
    write_sample(group, load_sample_yaml(EXAMPLES / "sample.yaml"))
    smaller = SampleInfo(name="bare", layers=[Layer(material="Si", thickness_nm=1e6)])
    write_sample(group, smaller)
    assert "layer_3" not in group
    assert "layer_2" not in group
    assert "notes" not in group
    assert "description" not in group
    assert group["temperature"][()] == 300.0
    assert read_sample(group) == smaller


def test_read_sample_is_tolerant(nexus: h5py.File) -> None:
    group = nexus["entry/sample"]
    group.create_dataset("name", data=b"fixed-length")  # bytes, not variable-length str
    group.create_dataset("temperature", data=[1.0, 2.0])  # foreign field
    for name, order, material in (("layer_1", 2, "bottom"), ("layer_2", 1, "top"),
                                  ("layer_10", None, "after")):
        layer = group.create_group(name)
        layer.create_dataset("name", data=material)
        if order is not None:
            layer.create_dataset("sequence_index", data=order)
    group["layer_1"].create_dataset("thickness", data=500.0).attrs["units"] = "angstrom"
    sample = read_sample(group)
    assert sample.name == "fixed-length"
    assert [layer.material for layer in sample.layers] == ["top", "bottom", "after"]
    assert sample.layers[1].thickness_nm == 50.0
    assert sample.layers[0].thickness_nm is None


def test_read_sample_errors_are_one_line(nexus: h5py.File) -> None:
    with pytest.raises(NxgidError, match=r"meta\.nxs:/entry/sample: name: field required"):
        read_sample(nexus["entry/sample"])


def test_experiment_round_trip(nexus: h5py.File) -> None:
    info = load_experiment_yaml(EXAMPLES / "experiment.yaml")
    entry = nexus["entry"]
    write_experiment(entry, info)
    assert entry["user_1"].attrs["NX_class"] == "NXuser"
    assert entry["user_1/ORCID"][()] == b"0000-0002-1825-0097"
    assert "ORCID" not in entry["user_2"]
    assert entry["instrument"].attrs["NX_class"] == "NXinstrument"
    assert entry["instrument/source"].attrs["NX_class"] == "NXsource"
    assert entry["instrument/source/name"][()] == b"ESRF"
    assert entry["experiment_identifier"][()] == b"SC-5432"
    read = read_experiment(entry)
    assert read == info
    assert type(read.users[0].name) is str


def test_experiment_rewrite(nexus: h5py.File) -> None:
    entry = nexus["entry"]
    entry.create_dataset("title", data="scan 7")
    instrument = entry.create_group("instrument")
    instrument.attrs["NX_class"] = "NXinstrument"
    instrument.create_group("detector").attrs["NX_class"] = "NXdetector"
    write_experiment(entry, load_experiment_yaml(EXAMPLES / "experiment.yaml"))
    assert entry["title"][()] == b"scan 7"  # an existing title is kept
    assert "detector" in instrument
    smaller = ExperimentInfo(facility="PETRA III", proposal="I-2024", users=[User(name="B")])
    write_experiment(entry, smaller)
    assert "user_2" not in entry
    read = read_experiment(entry)
    assert (read.facility, read.beamline, read.proposal) == ("PETRA III", "ID10", "I-2024")
    assert read.title == "scan 7"
    assert read.users == [User(name="B")]


def test_combined_file_to_nexus(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "sample:\n  name: s1\n  layers:\n    - material: PS\n"
                                "      thickness: 0.1 um\n"
                                "experiment:\n  facility: DESY\n  users:\n    - name: C\n")
    sample, info = load_metadata_yaml(path)
    assert sample is not None and info is not None
    with h5py.File(tmp_path / "c.nxs", "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        write_sample(entry.create_group("sample"), sample)
        write_experiment(entry, info)
    with h5py.File(tmp_path / "c.nxs", "r") as f:
        assert f["entry/sample"].attrs["NX_class"] == "NXsample"  # set when missing
        assert read_sample(f["entry/sample"]) == sample
        assert read_experiment(f["entry"]) == info
        assert sample.layers[0].thickness_nm == 100.0


def test_nexusformat_reads_units(tmp_path: Path) -> None:
    nexus = pytest.importorskip("nexusformat.nexus")
    path = tmp_path / "n.nxs"
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        sample = entry.create_group("sample")
        sample.attrs["NX_class"] = "NXsample"
        write_sample(sample, load_sample_yaml(EXAMPLES / "sample.yaml"))
        write_experiment(entry, load_experiment_yaml(EXAMPLES / "experiment.yaml"))
    root = nexus.nxload(str(path))
    try:
        assert root["entry/sample/layer_1/thickness"].nxunits == "nm"
        assert root["entry/sample/layer_1/density"].nxunits == "g/cm^3"
        assert root["entry/sample"].nxclass == "NXsample"
        assert root["entry/sample/layer_3"].nxclass == "NXsample_component"
        assert root["entry/user_1"].nxclass == "NXuser"
        assert str(root["entry/sample/name"]) == "PEN-SiO2-042"
    finally:
        root.nxfile.close()
