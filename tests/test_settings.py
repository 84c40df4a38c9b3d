"""Settings: round trips, validation messages, unknown keys, layering, migration, CLI."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nxgid.errors import ExistsError, SettingsError
from nxgid.settings.model import SCHEMA_VERSION, SECTIONS
from nxgid.settings.store import (
    SettingsFile,
    create_experiment_file,
    create_site_file,
    load_effective,
    resolve_key,
    set_value,
    site_directory,
)


def test_site_directory_follows_nxgid_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NXGID_HOME", str(tmp_path / "elsewhere"))
    assert site_directory() == tmp_path / "elsewhere"
    monkeypatch.delenv("NXGID_HOME")
    assert site_directory() != tmp_path / "elsewhere"
    assert "nxgid" in str(site_directory())


def test_round_trip_keeps_every_value(tmp_path):
    path = tmp_path / "settings.ini"
    values = {
        "server": {"executor": "dask", "workers": "8", "scheduler": "tcp://10.0.0.5:8786"},
        "instrument": {"source": "PETRA III", "instrument": "P03",
                       "raw_home": str(tmp_path / "raw"), "raw_path": "raw/data"},
        "configuration": {"wavelength_A": "1.0332", "distance_mm": "1234.5",
                          "phi_start_deg": "10", "phi_end_deg": "-10", "phi_step_deg": "-0.5"},
        "reduction": {"outputs": "img_gid_q, rad_cut_gid", "errors": "false",
                      "q_unit": "nm^-1"},
    }
    create_site_file(path, values)
    effective = load_effective(path)
    s = effective.settings
    assert s.server.executor == "dask" and s.server.workers == 8
    assert s.instrument.raw_home == tmp_path / "raw"
    assert s.configuration.wavelength_A == pytest.approx(1.0332)
    assert s.configuration.phi_step_deg == -0.5
    assert s.reduction.outputs == ["img_gid_q", "rad_cut_gid"]
    assert s.reduction.errors is False
    assert effective.origins[("configuration", "wavelength_A")] == str(path)
    # written again and read again: the same effective values
    file = SettingsFile.read(path)
    file.write()
    assert load_effective(path).settings == s


def test_booleans_are_written_true_false(tmp_path):
    path = tmp_path / "settings.ini"
    create_site_file(path, {"reduction": {"monitor_normalisation": "1", "errors": "no",
                                          "pixel_splitting": "yes"}})
    text = path.read_text()
    assert "monitor_normalisation = true" in text and "errors = false" in text
    # schema 2's boolean pixel_splitting: true meant every pixel
    assert "pixel_splitting = all" in text
    assert "= 1\n" not in text.split("[reduction]")[1].split("[")[0].replace("workers", "")


def test_defaults_when_no_file(tmp_path):
    effective = load_effective(tmp_path / "missing.ini")
    assert effective.settings.configuration.detector == "Pilatus2M"
    assert set(effective.origins.values()) == {"default"}


@pytest.mark.parametrize(("section", "key", "value", "expected"), [
    ("configuration", "wavelength_A", "abc", "valid number"),
    ("configuration", "wavelength_A", "-1", "greater than 0.01"),
    ("configuration", "distance_mm", "0", "greater than 0"),
    ("server", "executor", "slurm", "'local' or 'dask'"),
    ("server", "workers", "0", "greater than or equal to 1"),
    ("server", "database_url", "oracle://x", "SQLAlchemy URL"),
    ("server", "scheduler", "localhost", "Dask address"),
    ("server", "max_attempts", "0", "greater than or equal to 1"),
    ("server", "heartbeat_s", "0", "greater than 0"),
    ("reduction", "corrections", "lorentz=maybe", "expected none, solid_angle"),
    ("reduction", "img_gid_q", "q_xy=1:0", "expected MIN < MAX"),
    ("instrument", "source_type", "Synchrotron", "expected one of"),
    ("instrument", "raw_path", "../escape", "relative path"),
    ("reduction", "outputs", "img_gid_q,img_nonsense", "unknown result img_nonsense"),
    ("reduction", "errors", "maybe", "valid boolean"),
])
def test_invalid_values_name_file_section_key_and_value(tmp_path, section, key, value,
                                                        expected):
    path = tmp_path / "settings.ini"
    path.write_text(f"[schema]\nversion = {SCHEMA_VERSION}\n[{section}]\n{key} = {value}\n")
    with pytest.raises(SettingsError) as info:
        load_effective(path)
    message = str(info.value)
    assert str(path) in message
    assert f"[{section}] {key} = {value!r}" in message
    assert expected in message
    assert "\n" not in message


def test_phi_scan_rule_spans_keys(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_text("[configuration]\nphi_step_deg = 0\n")
    with pytest.raises(SettingsError, match="must not be 0"):
        load_effective(path)
    path.write_text("[configuration]\nphi_start_deg = 0\nphi_end_deg = 10\nphi_step_deg = -1\n")
    with pytest.raises(SettingsError, match="wrong way"):
        load_effective(path)


def test_heartbeat_timeout_must_exceed_the_heartbeat(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_text("[server]\nheartbeat_s = 30\nheartbeat_timeout_s = 20\n")
    with pytest.raises(SettingsError, match=r"heartbeat_timeout_s = 20\.0 must be more than "
                                            r"heartbeat_s = 30\.0"):
        load_effective(path)
    create_site_file(path, {}, overwrite=True)
    before = path.read_bytes()
    with pytest.raises(SettingsError, match="must be more than"):
        set_value(SettingsFile.read(path), "server", "heartbeat_s", "60")
    assert path.read_bytes() == before
    set_value(SettingsFile.read(path), "server", "heartbeat_timeout_s", "120")
    assert load_effective(path).settings.server.heartbeat_timeout_s == 120.0


def test_unknown_keys_are_kept_and_warned(tmp_path, caplog):
    path = tmp_path / "settings.ini"
    create_site_file(path, {})
    text = path.read_text().replace("[configuration]\n",
                                    "[configuration]\nwavelenght = 1.5\n")
    path.write_text(text + "\n[plugins]\nmonitor = mon1\n")
    with caplog.at_level(logging.WARNING, logger="nxgid"):
        load_effective(path)
    warnings = caplog.text
    assert "unknown key [configuration] wavelenght" in warnings
    assert "unknown section [plugins]" in warnings
    # a later write keeps both
    set_value(SettingsFile.read(path), "configuration", "distance_mm", "400")
    rewritten = path.read_text()
    assert "wavelenght = 1.5" in rewritten
    assert "[plugins]" in rewritten and "monitor = mon1" in rewritten
    assert "distance_mm = 400.0" in rewritten


def test_set_value_rejects_and_leaves_file_untouched(tmp_path):
    path = tmp_path / "settings.ini"
    create_site_file(path, {})
    before = path.read_bytes()
    for key, value in [("wavelength_A", "0"), ("phi_step_deg", "-0.1"), ("detector", "nope")]:
        with pytest.raises(SettingsError):
            set_value(SettingsFile.read(path), "configuration", key, value)
        assert path.read_bytes() == before
    assert set_value(SettingsFile.read(path), "configuration", "detector", "Eiger2 4M") \
        == "Eiger2 4M"


def test_unknown_detector_suggests_closest(tmp_path):
    path = tmp_path / "settings.ini"
    create_site_file(path, {})
    with pytest.raises(SettingsError, match=r"closest: .*pilatus"):
        set_value(SettingsFile.read(path), "configuration", "detector", "pilatus2mm")


def test_resolve_key_suggests():
    assert resolve_key("configuration.wavelength_A") == ("configuration", "wavelength_A")
    with pytest.raises(SettingsError, match="did you mean wavelength_A"):
        resolve_key("configuration.wavelength")
    with pytest.raises(SettingsError, match="did you mean configuration"):
        resolve_key("configuraton.wavelength_A")
    with pytest.raises(SettingsError, match=r"SECTION\.KEY"):
        resolve_key("wavelength_A")


def test_create_site_file_never_clobbers(tmp_path):
    path = tmp_path / "settings.ini"
    create_site_file(path, {"instrument": {"source": "A"}})
    before = path.read_bytes()
    with pytest.raises(ExistsError):
        create_site_file(path, {"instrument": {"source": "B"}})
    assert path.read_bytes() == before
    create_site_file(path, {"instrument": {"source": "B"}}, overwrite=True)
    assert load_effective(path).settings.instrument.source == "B"


def test_experiment_file_copies_site_without_server_and_overrides(tmp_path):
    from nxgid.settings.model import ExperimentInfo

    site_path = tmp_path / "site.ini"
    create_site_file(site_path, {"server": {"workers": "7"},
                                 "configuration": {"wavelength_A": "1.5"}})
    site = SettingsFile.read(site_path)
    exp_path = tmp_path / "exp" / "settings.ini"
    create_experiment_file(exp_path, site, ExperimentInfo(name="e1"))
    exp = SettingsFile.read(exp_path)
    assert "server" not in exp.values
    assert exp.get("experiment", "name") == "e1"
    set_value(exp, "configuration", "wavelength_A", "0.8", others=site)
    set_value(site, "configuration", "distance_mm", "999")  # site change after the copy
    effective = load_effective(site_path, experiment_settings=exp_path)
    assert effective.settings.configuration.wavelength_A == 0.8
    assert effective.origins[("configuration", "wavelength_A")] == str(exp_path)
    assert effective.settings.server.workers == 7
    assert effective.origins[("server", "workers")] == str(site_path)
    # the experiment holds its own copy: a later site change does not leak in
    assert effective.settings.configuration.distance_mm == 300.0


NXREFINE_SETTINGS = """\
[server]
type = multicore
cores = 4
concurrent = True

[instrument]
source = APS
instrument = 6-ID-D
raw_home = {raw}
raw_path =
analysis_home = {ana}
analysis_path =

[nxrefine]
wavelength = 0.1771
distance = 650.0
phi = -5.0
phi_end = 360.0
phi_step = 0.1
chi = -90.0
omega = 0.0
x = 0.0
y = 0.0
nsteps = 3
frame_rate = 10

[nxreduce]
threshold = 50000
monitor = monitor2
"""


def test_migrates_nxrefine_settings(tmp_path, caplog):
    path = tmp_path / "settings.ini"
    path.write_text(NXREFINE_SETTINGS.format(raw=tmp_path / "raw", ana=tmp_path / "ana"))
    file = SettingsFile.read(path)
    assert file.read_version == 0 and file.needs_upgrade
    with caplog.at_level(logging.WARNING, logger="nxgid"):
        effective = load_effective(path)
    s = effective.settings
    assert s.configuration.wavelength_A == pytest.approx(0.1771)
    assert s.configuration.distance_mm == 650.0
    assert s.configuration.chi_deg == -90.0
    assert s.configuration.frame_rate_hz == 10.0
    assert s.server.workers == 4
    assert "schema 0" in caplog.text
    assert "unknown key [configuration] nsteps" in caplog.text  # kept, reported
    file.write()
    text = path.read_text()
    assert f"[schema]\nversion = {SCHEMA_VERSION}" in text
    assert "[nxrefine]" not in text and "wavelength_A = 0.1771" in text
    assert "nsteps = 3" in text and "threshold = 50000" in text
    assert SettingsFile.read(path).read_version == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_text(f"[schema]\nversion = {SCHEMA_VERSION + 1}\n")
    with pytest.raises(SettingsError, match="upgrade nxgid"):
        load_effective(path)


def test_broken_ini_is_one_line_error(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_text("this is not [an ini file\n")
    with pytest.raises(SettingsError, match="not a valid ini file") as info:
        load_effective(path)
    assert "\n" not in str(info.value)


def test_every_key_is_documented():
    for model in SECTIONS.values():
        for key in model.model_fields:
            assert model.describe(key), f"{model.__name__}.{key} has no description"


# --- CLI ------------------------------------------------------------------------------


def test_cli_init_from_flags_then_show_and_set(nxgid, tmp_path):
    site = Path(tmp_path / "site" / "settings.ini")
    result = nxgid(["settings", "init", "--source", "ESRF", "--instrument", "ID10",
                    "--wavelength-A", "0.95", "--corrections", "lorentz=gid,solid-angle"])
    assert result.exit_code == 0, result.output
    assert site.exists()
    assert load_effective(site).settings.reduction.corrections == "solid_angle, lorentz=gid"
    again = nxgid("settings init --source X")
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    shown = nxgid("settings show --section configuration")
    assert shown.exit_code == 0
    line = next(ln for ln in shown.stdout.splitlines() if "wavelength_A" in ln)
    assert "0.95" in line and "site" in line
    result = nxgid("settings set configuration.phi_step_deg -0.1")  # negative value parses
    assert result.exit_code == 2 and "wrong way" in result.stderr
    result = nxgid("settings set configuration.phi_end_deg -10")
    assert result.exit_code == 2 and "wrong way" in result.stderr  # alone it is inconsistent
    result = nxgid("settings set configuration.phi_end_deg -10 configuration.phi_step_deg -0.1")
    assert result.exit_code == 0, result.output
    s = load_effective(site).settings.configuration
    assert (s.phi_end_deg, s.phi_step_deg) == (-10.0, -0.1)
    result = nxgid("settings set configuration.phi_end_deg")
    assert result.exit_code == 2 and "no value" in result.stderr


def _answers(keys, answers: dict) -> list[str]:
    lines = []
    for key in keys:
        if key == ("configuration", "distance_mm"):
            lines += ["-5", "450"]  # rejected, then asked again
        else:
            lines.append(answers.get(key, ""))
    return lines


def test_cli_interactive_init_asks_the_site_questions_and_saves_on_confirmation(nxgid,
                                                                                tmp_path):
    from nxgid.cli.settings_cmd import SITE_QUESTIONS
    from nxgid.settings.model import SECTIONS as sections

    keys = [key for group in SITE_QUESTIONS.values() for key in group]
    every = [(s, k) for s, m in sections.items() for k in m.model_fields]
    assert 8 <= len(keys) <= 15 < len(every)  # a dozen questions, not every key
    answers = {("instrument", "source"): "SOLEIL", ("configuration", "wavelength_A"): "1.2",
               ("beamline", "plugin"): "spec"}
    result = nxgid("settings init -i", input="\n".join(_answers(keys, answers)) + "\ny\n")
    assert result.exit_code == 0, result.output
    asked = [key for key in every if f"  {key[0]}.{key[1]} (" in result.stdout]
    assert asked == sorted(keys, key=every.index)  # these, and no other
    assert "greater than 0" in result.stderr
    for topic in SITE_QUESTIONS:
        assert f"\n{topic}\n" in result.stdout
    assert "settings init -i --all" in result.stdout
    s = load_effective(tmp_path / "site" / "settings.ini").settings
    assert s.instrument.source == "SOLEIL" and s.beamline.plugin == "spec"
    assert s.configuration.distance_mm == 450.0
    assert s.configuration.wavelength_A == 1.2
    assert s.configuration.detector == "Pilatus2M"  # Enter kept the default
    # declining the confirmation changes nothing
    before = (tmp_path / "site" / "settings.ini").read_bytes()
    lines = ["" for _ in keys]
    lines[0] = "ESRF"
    result = nxgid("settings init -i", input="\n".join(lines) + "\nn\n")
    assert result.exit_code == 0 and "not saved" in result.stdout
    assert (tmp_path / "site" / "settings.ini").read_bytes() == before


def test_cli_interactive_init_all_asks_every_key(nxgid, tmp_path):
    from nxgid.settings.model import SECTIONS as sections

    keys = [(s, k) for s, m in sections.items() for k in m.model_fields]
    answers = {("server", "workers"): "3", ("beamline", "monitor"): "I0"}
    result = nxgid("settings init -i --all",
                   input="\n".join(_answers(keys, answers)) + "\ny\n")
    assert result.exit_code == 0, result.output
    for section, key in keys:
        assert f"  {section}.{key} (" in result.stdout
    s = load_effective(tmp_path / "site" / "settings.ini").settings
    assert s.server.workers == 3 and s.beamline.monitor == "I0"
    assert s.configuration.distance_mm == 450.0


def test_cli_upgrade_keeps_backup(nxgid, tmp_path):
    site = tmp_path / "site" / "settings.ini"
    site.parent.mkdir(parents=True)
    site.write_text(NXREFINE_SETTINGS.format(raw="", ana=tmp_path / "ana"))
    result = nxgid("settings upgrade")
    assert result.exit_code == 0, result.output
    assert (site.parent / "settings.ini.v0.bak").read_text().startswith("[server]")
    assert SettingsFile.read(site).read_version == SCHEMA_VERSION


def test_docs_list_every_key_with_its_default():
    from nxgid.settings.store import default_values

    docs = (Path(__file__).parents[1] / "docs" / "settings.md").read_text()
    for section, values in default_values().items():
        assert f"### `[{section}]`" in docs
        for key, default in values.items():
            assert f"| `{key}` | `{default or '(empty)'}` |" in docs, (section, key)


def test_schema_2_defaults_become_schema_3_defaults(tmp_path, caplog):
    """Schema 2 files hold every key with its default: its whole-pixel binning and
    bitshuffle compression were defaults, not choices; override sections were choices."""
    import logging

    from nxgid.settings.store import SettingsFile

    path = tmp_path / "settings.ini"
    path.write_text("[schema]\nversion = 2\n[reduction]\npixel_splitting = false\n"
                    "compression = bitshuffle-lz4\nerrors = true\n"
                    "[reduction film]\npixel_splitting = false\n")
    with caplog.at_level(logging.WARNING, logger="nxgid"):
        file = SettingsFile.read(path)
    assert file.read_version == 2 and file.needs_upgrade
    assert file.values["reduction"]["pixel_splitting"] == "auto"
    assert file.values["reduction"]["compression"] == "gzip"
    assert file.values["reduction film"]["pixel_splitting"] == "false"  # chosen: kept
    assert "schema 2's default" in caplog.text
    chosen = tmp_path / "chosen.ini"
    chosen.write_text("[schema]\nversion = 2\n[reduction]\npixel_splitting = true\n"
                      "compression = none\n")
    kept = SettingsFile.read(chosen).values["reduction"]
    assert kept == {"pixel_splitting": "true", "compression": "none"}
    assert SCHEMA_VERSION == 3
