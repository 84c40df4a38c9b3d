"""``nxgid examples``: the inputs of the docs, and the beamline plugin a command uses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nxgid.beamlines.base import chosen_beamline
from nxgid.errors import NxgidError


def test_examples_refuses_a_folder_that_holds_files(tmp_path, nxgid):
    (tmp_path / "notes.txt").write_text("mine")
    result = nxgid(["examples", str(tmp_path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "--overwrite" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_examples_writes_what_the_docs_use(tmp_path, nxgid):
    import fabio
    import numpy as np

    from nxgid.demo.inputs import HOT_PIXELS, TRUE_DISTANCE_MM
    from nxgid.experiment.calibration import geometry_from_poni_text
    from nxgid.nexus.metadata import load_sample_yaml

    target = tmp_path / "inputs"
    result = nxgid(["examples", str(target)])
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.glob(".*partial*"))
    image = fabio.open(str(target / "lab6.cbf")).data
    geometry = geometry_from_poni_text((target / "lab6.poni").read_text())
    assert image.shape == geometry.shape == (1679, 1475)
    assert geometry.pyfai.dist * 1e3 == pytest.approx(TRUE_DISTANCE_MM)
    # the d-spacings file is LaB6's: a = 4.1569 Å, so d(100) = a
    first = float((target / "lab6.D").read_text().splitlines()[1])
    assert first == pytest.approx(4.1569, abs=1e-3)
    hot = np.asarray(fabio.open(str(target / "hot_pixels.tif")).data)
    assert sorted(zip(*np.nonzero(hot), strict=True)) == sorted(HOT_PIXELS)
    assert load_sample_yaml(target / "sample.yaml").name == "PEN-SiO2-042"
    assert len(list((target / "images" / "s001").glob("*.cbf"))) == 4
    spec = target / "raw" / "2026-11-ID10-pentacene" / "pentacene-SiO2.spec"
    assert spec.read_text().count("#S ") == 2
    again = nxgid(["examples", str(target), "--overwrite"])
    assert again.exit_code == 0, again.output


def _settings(plugin: str = "", instrument: str = ""):
    return SimpleNamespace(beamline=SimpleNamespace(plugin=plugin),
                           instrument=SimpleNamespace(instrument=instrument))


def test_the_instrument_name_is_not_a_plugin_name():
    assert chosen_beamline(None, _settings("spec", "ID10")) == "spec"
    assert chosen_beamline("hdf5", _settings("spec", "ID10")) == "hdf5"
    # settings from before [beamline] plugin: an instrument that names a plugin still works
    assert chosen_beamline(None, _settings("", "spec")) == "spec"
    with pytest.raises(NxgidError, match=r"set \[beamline\] plugin"):
        chosen_beamline(None, _settings("", "ID10"))
    with pytest.raises(NxgidError, match="'ID11' is not installed"):
        chosen_beamline(None, _settings("ID11", "ID10"))
