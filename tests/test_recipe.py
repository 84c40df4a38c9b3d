"""Reduction recipes: axes and corrections keys, override layers, hashes, editing, the
CLI, migration of schema 1 correction switches, and the recipe recorded in outputs."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from nxgid.errors import InvalidNameError, SettingsError
from nxgid.experiment.layout import ScanRef
from nxgid.experiment.recipe import (
    Recipe,
    effective_recipe,
    recipe_hash,
    recipe_scopes,
    scope_section,
    set_recipe,
    unset_recipe,
)
from nxgid.settings.model import SCHEMA_VERSION, ReductionSettings
from nxgid.settings.store import (
    SettingsFile,
    create_site_file,
    load_effective,
    set_value,
    validate_file,
)


@pytest.fixture
def exp(site_file):
    """A fresh experiment (no database needed: recipes live in its settings file)."""
    from nxgid.experiment.create import create_experiment

    return create_experiment("exp", load_effective(site_file))


def _effective(exp, site_file):
    return load_effective(site_file, exp.settings_file)


def _recipe(**raw: str) -> Recipe:
    return Recipe(values=ReductionSettings.model_validate(raw), origins={}, scope="")


def _append_to(path: Path, text: str) -> None:
    path.write_text(path.read_text() + "\n" + text)


def _drop_from_site(site_file: Path, *keys: str) -> None:
    """The site file holds every key (create_site_file writes defaults): drop some."""
    site = SettingsFile.read(site_file)
    for key in keys:
        del site.values["reduction"][key]
    site.write()


# --- axes keys --------------------------------------------------------------------------


def test_axes_keys_become_target_specs():
    recipe = _recipe(outputs="img_gid_q, img_gid_pol, vert_cut_gid, rad_cut_gid",
                     img_gid_q="q_xy=-2.4:2.4:800, q_z=467",
                     vert_cut_gid="cut=1.28:1.38, q_z = 0:2.5:250",
                     rad_cut_gid="q_gid_pol=0.5:3")
    specs = {spec.name: spec for spec in recipe.targets()}
    assert list(specs) == ["img_gid_q", "img_gid_pol", "vert_cut_gid", "rad_cut_gid"]
    q = specs["img_gid_q"]
    assert q.ranges == {"q_xy": (-2.4, 2.4)} and q.bins == {"q_xy": 800, "q_z": 467}
    assert q.cut is None and q.steps == {}
    pol = specs["img_gid_pol"]  # empty key: automatic everything
    assert (pol.ranges, pol.bins, pol.cut) == ({}, {}, None)
    cut = specs["vert_cut_gid"]
    assert cut.ranges == {"q_z": (0.0, 2.5)} and cut.bins == {"q_z": 250}
    assert cut.cut == (1.28, 1.38)
    radial = specs["rad_cut_gid"]
    assert radial.ranges == {"q_gid_pol": (0.5, 3.0)} and radial.bins == {}
    # the canonical spelling: the result's axis order, cut last, no padding zeros
    assert recipe.values.vert_cut_gid == "q_z=0:2.5:250, cut=1.28:1.38"
    assert recipe.values.img_gid_q == "q_xy=-2.4:2.4:800, q_z=467"


def test_every_result_has_an_axes_key():
    from nxgid.names import RESULT_NAMES

    for name in RESULT_NAMES:
        assert ReductionSettings.model_fields[name].default == ""
        assert ReductionSettings.describe(name)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("img_gid_q", "q_r=0:1", "img_gid_q has no axis 'q_r': its axes are q_xy, q_z"),
    ("vert_cut_gid", "q_xy=0:1", "no axis 'q_xy'"),
    ("img_gid_q", "q_xy=2:1", "expected MIN < MAX"),
    ("img_gid_q", "q_xy=1:1:10", "expected MIN < MAX"),
    ("img_gid_q", "q_xy=0:1:2.5", "'2.5' bins: expected a whole number"),
    ("img_gid_q", "q_z=0", "0 bins: expected a whole number ≥ 1"),
    ("img_gid_q", "q_xy=a:1", "'a' is not a number"),
    ("img_gid_q", "q_xy=0:inf", "not a finite number"),
    ("img_gid_q", "cut=0:1", "only profiles"),
    ("vert_cut_gid", "cut=1", "expected cut=LO:HI"),
    ("vert_cut_gid", "cut=0.2:0.1", "expected MIN < MAX"),
    ("img_gid_q", "q_xy=0:1, q_xy=5", "q_xy is given twice"),
    ("img_gid_q", "q_xy", "expected AXIS=MIN:MAX"),
    ("img_gid_q", "q_xy=0:1:2:3", "expected AXIS=MIN:MAX"),
])
def test_bad_axes_values_name_file_key_and_value(tmp_path, key, value, expected):
    path = tmp_path / "settings.ini"
    path.write_text(f"[schema]\nversion = 2\n[reduction]\n{key} = {value}\n")
    with pytest.raises(SettingsError) as info:
        load_effective(path)
    message = str(info.value)
    assert f"{path}: [reduction] {key} = {value!r}" in message
    assert expected in message
    assert "\n" not in message


# --- corrections ------------------------------------------------------------------------


def test_corrections_parse_and_take_polarization_from_the_configuration():
    from nxgid.conversion.corrections import Corrections

    assert _recipe().corrections(0.99) == Corrections()  # the default recipe
    bare = _recipe(corrections="polarization, solid-angle, lorentz=gid")
    assert bare.values.corrections == "solid_angle, polarization, lorentz=gid"
    corrections = bare.corrections(0.8)
    assert corrections.polarization_factor == 0.8 and corrections.solid_angle
    assert corrections.lorentz == "gid" and not corrections.air_absorption
    explicit = _recipe(corrections="polarization=0.95").corrections(0.8)
    assert explicit.polarization_factor == 0.95 and not explicit.solid_angle
    full = _recipe(corrections="air=1.6:0.5, sensor=1.27e-4:4.5e-4, film=5e-8:1e-6, "
                               "refraction=0.18, polarization_offset=90").corrections(0.9)
    assert full.air_absorption and full.air_attenuation_length_m == 1.6
    assert full.air_path_offset_m == 0.5
    assert full.sensor_attenuation_length_m == 1.27e-4 and full.sensor_thickness_m == 4.5e-4
    assert full.film_thickness_m == 5e-8 and full.film_attenuation_length_m == 1e-6
    assert full.refraction and full.critical_angle_deg == 0.18
    assert full.polarization_factor is None and full.polarization_offset_deg == 90
    none = _recipe(corrections="none")
    assert none.corrections(0.99) == Corrections.none()
    assert _recipe(corrections="").values.corrections == "none"


def test_plain_corrections_are_all_valid_for_parse_corrections():
    # the settings model checks values made only of these without the parser
    from nxgid.conversion.corrections import parse_corrections
    from nxgid.settings.model import _PLAIN_CORRECTIONS

    for item in _PLAIN_CORRECTIONS:
        parse_corrections(item)
    parse_corrections(", ".join(sorted(_PLAIN_CORRECTIONS)))


@pytest.mark.parametrize(("value", "expected"), [
    ("air=abc", "'abc' is not a number"),
    ("lorentz=yes", "expected none, solid_angle"),
    ("polarization=2", "polarization_factor = 2.0"),
    ("bogus", "expected none, solid_angle"),
    ("air", "expected none, solid_angle"),
    ("solid_angle=1", "expected none, solid_angle"),
    ("lorentz=GID", "expected none, solid_angle"),
])
def test_bad_corrections_are_refused(tmp_path, value, expected):
    path = tmp_path / "settings.ini"
    path.write_text(f"[schema]\nversion = 2\n[reduction]\ncorrections = {value}\n")
    with pytest.raises(SettingsError) as info:
        load_effective(path)
    assert f"[reduction] corrections = {value!r}" in str(info.value)
    assert expected in str(info.value)


def test_incidence_mask_and_other_keys():
    assert _recipe().fixed_incidence_deg() is None
    assert _recipe(incidence_angle="LOG").values.incidence_angle == "log"
    assert _recipe(incidence_angle="0.150").fixed_incidence_deg() == 0.15
    assert _recipe(incidence_angle="0.150").values.incidence_angle == "0.15"
    root = Path("/data/exp")
    assert _recipe(mask="Gaps").values.mask == "gaps"
    assert _recipe().image_path("mask", root) is None
    assert _recipe(mask="masks/beamstop.edf").image_path("mask", root) == \
        root / "masks/beamstop.edf"
    assert _recipe(dark="/abs/dark.edf").image_path("dark", root) == Path("/abs/dark.edf")
    assert _recipe().image_path("flat", root) is None
    for raw in ({"incidence_angle": "90"}, {"incidence_angle": "-0.1"},
                {"incidence_angle": "sometimes"}, {"mask": " "},
                {"sample_orientation": "9"}, {"block_frames": "0"}, {"preview": "last"},
                {"compression": "lzma"}, {"outputs": "img_gid_q, nonsense"}):
        with pytest.raises(ValueError):
            ReductionSettings.model_validate(raw)
    assert _recipe(compression="bitshuffle-zstd").values.compression == "bitshuffle-zstd"
    assert _recipe(outputs="img_gid_q, img_gid_q").values.outputs == ["img_gid_q"]


# --- layers -----------------------------------------------------------------------------


def test_overrides_take_precedence_over_four_layers(exp, site_file):
    # site only: the experiment's copy of block_frames is removed again
    set_value(SettingsFile.read(site_file), "reduction", "block_frames", "8")
    _drop_from_site(site_file, "preview")
    effective = _effective(exp, site_file)
    assert unset_recipe(exp, effective, "", ["block_frames", "preview"]) == \
        ["block_frames", "preview"]
    set_recipe(exp, effective, "", [("outputs", "img_gid_q, vert_cut_gid")])
    _append_to(exp.settings_file, "[reduction film]\nimg_gid_q = q_xy=0:2:100\n"
                                  "compression = gzip\ntilt_deg = 1\n")
    set_recipe(exp, effective, "film/rt", [("img_gid_q", "q_xy=0:1:50"), ("tilt_deg", "2")])
    set_recipe(exp, effective, "film/rt/3", [("tilt_deg", "3")])
    effective = _effective(exp, site_file)
    assert recipe_scopes(effective) == ["film", "film/rt", "film/rt/3"]

    scan = effective_recipe(exp, effective, ScanRef("film", "rt", "3"))
    assert scan.scope == "film/rt/3"
    assert scan.values.tilt_deg == 3.0
    assert scan.values.img_gid_q == "q_xy=0:1:50"
    assert scan.values.compression == "gzip"
    assert scan.values.outputs == ["img_gid_q", "vert_cut_gid"]
    assert scan.values.block_frames == 8
    assert scan.values.preview == "first"
    assert {key: scan.origins[key] for key in
            ("tilt_deg", "img_gid_q", "compression", "outputs", "block_frames", "preview")} \
        == {"tilt_deg": "reduction film/rt/3", "img_gid_q": "reduction film/rt",
            "compression": "reduction film", "outputs": "experiment",
            "block_frames": "site", "preview": "default"}
    assert set(scan.origins) == set(ReductionSettings.model_fields)

    assert effective_recipe(exp, effective, "film/rt/4").values.tilt_deg == 2.0
    other_label = effective_recipe(exp, effective, "film/hot/3")
    assert other_label.values.tilt_deg == 1.0
    assert other_label.values.img_gid_q == "q_xy=0:2:100"
    assert effective_recipe(exp, effective, "glass/rt/3").values.tilt_deg == 0.0
    whole = effective_recipe(exp, effective)
    # seeded into the experiment at its creation, and equal to the default: said so
    assert whole.scope == "" and whole.origins["tilt_deg"] == "experiment (= default)"
    assert effective_recipe(exp, effective, "film/rt").values.tilt_deg == 2.0


def test_invalid_override_names_file_section_key_and_value(exp, site_file):
    _append_to(exp.settings_file, "[reduction film/rt]\nimg_gid_q = q_xy=3:1\n")
    effective = _effective(exp, site_file)  # overrides are checked when resolved
    assert effective_recipe(exp, effective, "film/hot/1").values.img_gid_q == ""
    with pytest.raises(SettingsError) as info:
        effective_recipe(exp, effective, "film/rt/1")
    assert str(info.value).startswith(
        f"{exp.settings_file}: [reduction film/rt] img_gid_q = 'q_xy=3:1': ")
    assert "MIN < MAX" in str(info.value)
    with pytest.raises(SettingsError, match=r"\[reduction film/rt\] img_gid_q"):
        validate_file(SettingsFile.read(exp.settings_file))


def test_scopes_are_checked():
    assert scope_section("") == "reduction"
    assert scope_section("film/rt") == "reduction film/rt"
    assert scope_section("/film/rt/12/") == "reduction film/rt/12"
    for bad in ("film/rt/12/x", "tasks", "fi lm", "film//12"):
        with pytest.raises(InvalidNameError):
            scope_section(bad)


# --- the hash ---------------------------------------------------------------------------


def test_hash_is_the_canonical_json_of_every_key():
    recipe = _recipe()
    text = json.dumps(recipe.as_dict(), sort_keys=True, separators=(",", ":"))
    assert recipe.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert set(recipe.as_dict()) == set(ReductionSettings.model_fields)
    assert all(isinstance(v, str) for v in recipe.as_dict().values())
    reordered = dict(reversed(list(recipe.as_dict().items())))
    assert recipe_hash(reordered) == recipe.sha256


def test_hash_ignores_spelling_and_follows_values():
    one = _recipe(errors="True", pixel_splitting="no", tilt_deg="-0",
                  img_gid_q="q_z = 300, q_xy=-1.50:1.5",
                  corrections="lorentz=gid, polarization, solid_angle")
    two = _recipe(errors="true", pixel_splitting="false", tilt_deg="0.0",
                  img_gid_q="q_xy=-1.5:1.5, q_z=300",
                  corrections="solid_angle, polarization, lorentz=gid")
    assert one.sha256 == two.sha256
    assert one.sha256 != _recipe(errors="true", pixel_splitting="false", tilt_deg="0.0",
                                 img_gid_q="q_xy=-1.5:1.5, q_z=301",
                                 corrections="solid_angle, polarization, lorentz=gid").sha256
    assert _recipe().sha256 != _recipe(preview="sum").sha256
    assert _recipe().sha256 == _recipe().sha256


def test_hash_of_scopes_without_overrides_is_the_experiments(exp, site_file):
    effective = _effective(exp, site_file)
    base = effective_recipe(exp, effective).sha256
    assert effective_recipe(exp, effective, "film/rt/1").sha256 == base
    set_recipe(exp, effective, "film/rt/2", [("pixel_splitting", "yes")])
    effective = _effective(exp, site_file)
    changed = effective_recipe(exp, effective, "film/rt/2").sha256
    assert changed != base
    assert effective_recipe(exp, effective, "film/rt/1").sha256 == base
    _append_to(exp.settings_file, "[reduction film/rt/3]\npixel_splitting = True\n")
    effective = _effective(exp, site_file)
    assert effective_recipe(exp, effective, "film/rt/3").sha256 == changed


# --- editing ----------------------------------------------------------------------------


def test_set_writes_canonical_values_and_renders_override_sections(exp, site_file):
    effective = _effective(exp, site_file)
    written = set_recipe(exp, effective, "film/rt", [
        ("vert_cut_gid", "cut=1.280:1.38, q_z=0:2.50:250"), ("tilt_deg", "-0.5"),
        ("corrections", "polarization,solid_angle")])
    assert written == ["q_z=0:2.5:250, cut=1.28:1.38", "-0.5", "solid_angle, polarization"]
    set_recipe(exp, effective, "film", [("q_unit", "nm^-1")])
    text = exp.settings_file.read_text()
    assert text.index("[reduction]") < text.index("[reduction film]") \
        < text.index("[reduction film/rt]") < text.index("[beamline]")
    section = text.split("[reduction film/rt]")[1].split("\n\n")[0]
    assert "# axis of vert_cut_gid:" in section
    assert "vert_cut_gid = q_z=0:2.5:250, cut=1.28:1.38" in section
    assert "tilt_deg = -0.5" in section
    assert "q_unit" not in section  # only the keys it overrides
    assert SettingsFile.read(exp.settings_file).get("reduction film", "q_unit") == "nm^-1"


@pytest.mark.parametrize(("scope", "pairs", "expected"), [
    ("film", [("tilt_deg", "1"), ("img_gid_k", "q_xy=0:1")], "did you mean img_gid_q"),
    ("film", [("tilt_deg", "1"), ("img_gid_q", "q_xy=1:0")],
     "[reduction film] img_gid_q = 'q_xy=1:0'"),
    ("film/rt/1", [("sample_orientation", "0")], "[reduction film/rt/1] sample_orientation"),
    ("", [("corrections", "air=x")], "[reduction] corrections = 'air=x'"),
    ("film/rt/1/2", [("tilt_deg", "1")], "expected SAMPLE"),
    ("fi lm", [("tilt_deg", "1")], "sample name 'fi lm'"),
    ("film", [("heartbeat_s", "1")], "unknown recipe key 'heartbeat_s'"),
])
def test_set_refuses_and_writes_nothing(exp, site_file, scope, pairs, expected):
    effective = _effective(exp, site_file)
    set_recipe(exp, effective, "film", [("preview", "sum")])
    before = exp.settings_file.read_bytes()
    with pytest.raises((SettingsError, InvalidNameError)) as info:
        set_recipe(exp, effective, scope, pairs)
    assert expected in str(info.value)
    assert exp.settings_file.read_bytes() == before


def test_set_checks_the_scopes_below(exp, site_file):
    _append_to(exp.settings_file, "[reduction film/rt]\nblock_frames = 0\n")
    effective = _effective(exp, site_file)
    before = exp.settings_file.read_bytes()
    with pytest.raises(SettingsError, match=r"\[reduction film/rt\] block_frames = '0'"):
        set_recipe(exp, effective, "film", [("tilt_deg", "1")])
    assert exp.settings_file.read_bytes() == before
    set_recipe(exp, effective, "glass", [("tilt_deg", "1")])  # elsewhere: fine
    unset_recipe(exp, effective, "film/rt", ["block_frames"])  # repairs it
    set_recipe(exp, effective, "film", [("tilt_deg", "1")])
    assert effective_recipe(exp, _effective(exp, site_file), "film/rt/1").values.tilt_deg == 1


def test_unset_falls_back_and_removes_empty_sections(exp, site_file):
    effective = _effective(exp, site_file)
    set_recipe(exp, effective, "film", [("tilt_deg", "1"), ("preview", "sum")])
    set_recipe(exp, effective, "film/rt", [("tilt_deg", "2")])
    assert unset_recipe(exp, effective, "film/rt", ["tilt_deg", "errors"]) == ["tilt_deg"]
    file = SettingsFile.read(exp.settings_file)
    assert "reduction film/rt" not in file.values
    recipe = effective_recipe(exp, _effective(exp, site_file), "film/rt/1")
    assert recipe.values.tilt_deg == 1 and recipe.origins["tilt_deg"] == "reduction film"
    assert unset_recipe(exp, effective, "film", ["tilt_deg"]) == ["tilt_deg"]
    assert SettingsFile.read(exp.settings_file).values["reduction film"] == {"preview": "sum"}
    before = exp.settings_file.read_bytes()
    assert unset_recipe(exp, effective, "film", ["tilt_deg"]) == []
    assert exp.settings_file.read_bytes() == before
    with pytest.raises(SettingsError, match="did you mean preview"):
        unset_recipe(exp, effective, "film", ["preveiw"])
    # the experiment's own key: back to the site value, else the default
    set_value(SettingsFile.read(site_file), "reduction", "q_unit", "nm^-1")
    _drop_from_site(site_file, "method")
    unset_recipe(exp, effective, "", ["q_unit", "method"])
    recipe = effective_recipe(exp, _effective(exp, site_file))
    assert (recipe.values.q_unit, recipe.origins["q_unit"]) == ("nm^-1", "site")
    assert (recipe.values.method, recipe.origins["method"]) == ("integrate", "default")
    assert "reduction" in SettingsFile.read(exp.settings_file).values


# --- the store --------------------------------------------------------------------------


def test_override_sections_are_known_and_their_keys_checked(exp, site_file, caplog):
    _append_to(exp.settings_file, "[reduction film]\ntilt_deg = 1\nimg_gid_qq = q_xy=5\n"
                                  "[reduction a/b/c/d]\ntilt_deg = 2\n")
    file = SettingsFile.read(exp.settings_file)
    unknown = list(file.unknown_keys())
    assert ("reduction film", "img_gid_qq") in unknown
    assert ("reduction a/b/c/d", None) in unknown  # not a scope: an unknown section
    assert not any(section == "reduction film" and key is None for section, key in unknown)
    with caplog.at_level(logging.WARNING, logger="nxgid"):
        _effective(exp, site_file)
    assert "unknown key [reduction film] img_gid_qq kept, not used (did you mean " \
           "img_gid_q?)" in caplog.text
    assert "unknown section [reduction a/b/c/d]" in caplog.text
    # written again: everything kept
    set_recipe(exp, _effective(exp, site_file), "film", [("preview", "sum")])
    text = exp.settings_file.read_text()
    assert "img_gid_qq = q_xy=5" in text and "[reduction a/b/c/d]" in text


def test_override_sections_in_the_site_file_are_reported_and_not_copied(tmp_path, caplog):
    from nxgid.experiment.create import create_experiment

    site = tmp_path / "site" / "settings.ini"
    create_site_file(site, {"instrument": {"analysis_home": str(tmp_path / "ana")}})
    _append_to(site, "[reduction film]\ntilt_deg = 1\n")
    with caplog.at_level(logging.WARNING, logger="nxgid"):
        effective = load_effective(site)
    assert "[reduction film] kept, not used: override sections apply only" in caplog.text
    experiment = create_experiment("exp2", effective)
    assert "reduction film" not in SettingsFile.read(experiment.settings_file).values


# --- schema 1 -> 2 ----------------------------------------------------------------------

V1_SETTINGS = """\
[schema]
version = 1

[reduction]
outputs = img_gid_q
errors = false
solid_angle = false
polarization = true
air_absorption = true
sensor_efficiency = false
film_absorption = false
lorentz = 1
refraction = false
"""


def test_migrates_schema_1_correction_switches(tmp_path, caplog):
    path = tmp_path / "settings.ini"
    path.write_text(V1_SETTINGS)
    file = SettingsFile.read(path)
    assert file.read_version == 1 and file.needs_upgrade
    assert file.values["reduction"] == {"outputs": "img_gid_q", "errors": "false",
                                        "corrections": "polarization, lorentz=gid"}
    with caplog.at_level(logging.WARNING, logger="nxgid"):
        effective = load_effective(path)
    assert "air_absorption = true dropped" in caplog.text
    assert "air=L_m[:OFFSET_m]" in caplog.text
    assert "refraction" not in caplog.text.replace("refraction=ALPHA", "")
    reduction = effective.settings.reduction
    assert reduction.corrections == "polarization, lorentz=gid" and reduction.errors is False
    assert "unknown key" not in caplog.text
    file.write()
    text = path.read_text()
    assert f"[schema]\nversion = {SCHEMA_VERSION}" in text and SCHEMA_VERSION == 3
    assert "corrections = polarization, lorentz=gid" in text
    assert "solid_angle = " not in text and "lorentz = " not in text


def test_schema_1_defaults_fill_missing_switches(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_text("[reduction]\nlorentz = true\n")  # no [schema]: old keys give it away
    file = SettingsFile.read(path)
    assert file.read_version == 1
    assert file.values["reduction"] == {"corrections": "solid_angle, polarization, lorentz=gid"}
    path.write_text("[schema]\nversion = 1\n[reduction]\nsolid_angle = off\n"
                    "polarization = no\n")
    assert SettingsFile.read(path).values["reduction"] == {"corrections": "none"}
    path.write_text("[schema]\nversion = 1\n[reduction]\nerrors = false\n")
    assert SettingsFile.read(path).values["reduction"] == {"errors": "false"}


# --- the CLI ----------------------------------------------------------------------------


@pytest.fixture
def cli(nxgid, monkeypatch, exp):
    """``nxgid recipe …`` inside the experiment, through the real entry point."""
    from nxgid.cli import main

    monkeypatch.setitem(main.COMMANDS, "recipe", "nxgid.cli.recipe_cmd:recipe")

    def run(args, **kwargs):
        return nxgid(args, cwd=exp.root, **kwargs)

    return run


def test_cli_show_set_unset(cli, exp, site_file):
    result = cli(["recipe", "set", "--for", "film/rt", "img_gid_q",
                  "q_xy=-2.4:2.4:800, q_z=-0.2:2.6:467", "tilt_deg", "-0.5"])
    assert result.exit_code == 0, result.output
    assert "[reduction film/rt] img_gid_q = q_xy=-2.4:2.4:800, q_z=-0.2:2.6:467" in \
        result.stdout
    assert "[reduction film/rt] tilt_deg = -0.5" in result.stdout
    recipe = effective_recipe(exp, _effective(exp, site_file), "film/rt")
    assert f"recipe of film/rt: sha256 {recipe.sha256}" in result.stdout

    shown = cli("recipe show film/rt/7")
    assert shown.exit_code == 0, shown.output
    line = next(ln for ln in shown.stdout.splitlines() if ln.startswith("tilt_deg"))
    assert line.split() == ["tilt_deg", "-0.5", "reduction", "film/rt"]
    line = next(ln for ln in shown.stdout.splitlines() if ln.startswith("q_unit"))
    assert line.split() == ["q_unit", "A^-1", "experiment", "(=", "default)"]
    assert f"sha256: {recipe.sha256}" in shown.stdout

    as_json = json.loads(cli("recipe show film/rt/7 --json").stdout)
    assert as_json["scope"] == "film/rt/7" and as_json["sha256"] == recipe.sha256
    assert as_json["recipe"] == recipe.as_dict()
    assert as_json["origins"]["img_gid_q"] == "reduction film/rt"
    assert as_json["origins"]["outputs"] == "experiment (= default)"

    result = cli("recipe unset --for film/rt tilt_deg preview")
    assert result.exit_code == 0, result.output
    assert "[reduction film/rt] tilt_deg unset" in result.stdout
    assert "preview was not set" in result.stdout
    after = json.loads(cli("recipe show film/rt --json").stdout)
    assert after["recipe"]["tilt_deg"] == "0.0" and after["sha256"] != recipe.sha256

    result = cli("recipe set errors false")  # the experiment's [reduction]
    assert result.exit_code == 0 and "[reduction] errors = false" in result.stdout


@pytest.mark.parametrize(("args", "expected"), [
    ("recipe set --for film img_gid_k q_xy=1", "did you mean img_gid_q"),
    ("recipe set --for film img_gid_q q_xy=2:1", "[reduction film] img_gid_q = 'q_xy=2:1'"),
    ("recipe set tilt_deg", "'tilt_deg' has no value"),
    ("recipe show a/b/c/d", "expected SAMPLE"),
    ("recipe unset --for film nonsense", "unknown recipe key 'nonsense'"),
])
def test_cli_errors_are_one_line_exit_2(cli, exp, args, expected):
    before = exp.settings_file.read_bytes()
    result = cli(args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert result.stderr.count("\n") == 1
    assert exp.settings_file.read_bytes() == before


def test_cli_outside_an_experiment(nxgid, monkeypatch, tmp_path):
    from nxgid.cli import main

    monkeypatch.setitem(main.COMMANDS, "recipe", "nxgid.cli.recipe_cmd:recipe")
    (tmp_path / "elsewhere").mkdir()
    result = nxgid("recipe show", cwd=tmp_path / "elsewhere")
    assert result.exit_code == 2 and "not inside an nxgid experiment" in result.stderr


# --- the recipe in every output ---------------------------------------------------------

SHAPE = (48, 80)


def _write(path, recipe, *, mode="create", frames=2, incidence_deg=0.15):
    from nxgid.conversion import Converter, TargetSpec
    from nxgid.conversion.corrections import Corrections
    from nxgid.geometry import DetectorGeometry, SampleGeometry
    from nxgid.nexus.writer import EntryMetadata, FrameBlock, InstrumentInfo, NexusWriter

    geometry = DetectorGeometry.from_parameters(
        detector=None, pixel_size_m=(172e-6, 172e-6), shape=SHAPE, distance_m=0.08,
        wavelength_A=1.0, beam_center_px=(4.0, 40.0), rot2_rad=-0.01)
    converter = Converter(geometry, SampleGeometry.grazing(incidence_deg),
                          [TargetSpec("img_gid_q", bins={"q_xy": 30, "q_z": 20})],
                          corrections=Corrections())
    images = np.random.default_rng(1).poisson(5.0, (frames, *SHAPE)).astype(np.float32)
    metadata = EntryMetadata(InstrumentInfo(geometry, source_name="ESRF", name="ID10"),
                             recipe=recipe)
    with NexusWriter(path, metadata, mode=mode) as writer:
        writer.write(converter.convert(images), FrameBlock.unknown(frames))


def test_outputs_record_the_recipe_and_its_hash(tmp_path):
    import h5py

    from nxgid import names as nx
    from nxgid.nexus.reader import NexusFile

    first = _recipe(img_gid_q="q_xy=0:2:30, q_z=20")
    path = tmp_path / "scan.nxs"
    _write(path, first.as_dict())
    recorded = NexusFile(path).recipe("img_gid_q")
    assert recorded == (first.as_dict(), first.sha256)
    with h5py.File(path) as f:
        process = f["img_gid_q/process"]
        assert process[nx.PROCESS_RECIPE].attrs["NX_class"] == "NXnote"
        assert process[f"{nx.PROCESS_RECIPE}/type"][()] == b"application/json"
        assert process[nx.PROCESS_RECIPE_HASH][()].decode() == first.sha256
    # appending under another recipe: same conversion, so the same entry, as before;
    # the entry keeps the recipe it was created with
    _write(path, _recipe(preview="sum").as_dict(), mode="append")
    nexus = NexusFile(path)
    assert [e.name for e in nexus.entries()] == ["img_gid_q"]
    assert nexus.result("img_gid_q").frames == 4
    assert nexus.recipe() == (first.as_dict(), first.sha256)
    # without a recipe: nothing recorded
    bare = tmp_path / "bare.nxs"
    _write(bare, None)
    assert NexusFile(bare).recipe() is None
    with h5py.File(bare) as f:
        assert nx.PROCESS_RECIPE not in f["img_gid_q/process"]


def test_files_with_a_recipe_pass_the_validators(tmp_path):
    pytest.importorskip("nexusformat")
    pytest.importorskip("pynxtools")
    pytest.importorskip("silx")
    from nxgid.nexus import validate as nv

    path = tmp_path / "scan.nxs"
    _write(path, _recipe(vert_cut_gid="q_z=0:2.5:250, cut=1.28:1.38").as_dict())
    assert nv.validate(path) == {"nexusformat": [], "pynxtools": [], "silx": [],
                                 "nxload": []}


def test_show_tells_seeded_values_from_chosen_ones(exp, site_file):
    """An experiment is seeded with every [reduction] value: `recipe show` says which
    ones equal the default or the site's and which were chosen for the experiment."""
    set_value(SettingsFile.read(site_file), "reduction", "block_frames", "8")
    effective = _effective(exp, site_file)
    set_value(SettingsFile.read(exp.settings_file), "reduction", "block_frames", "8")
    set_recipe(exp, effective, "", [("tilt_deg", "0.25")])
    recipe = effective_recipe(exp, _effective(exp, site_file))
    assert recipe.origins["tilt_deg"] == "experiment"
    assert recipe.origins["block_frames"] == "experiment (= site)"
    assert recipe.origins["method"] == "experiment (= default)"
