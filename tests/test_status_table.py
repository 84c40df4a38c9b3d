"""``nxgid status --tasks`` at 100 columns: scan names whole, errors not cut."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from nxgid.cli.tables import compact_task_lines, task_view
from nxgid.workflow.status import TaskState

ERROR = ("MissingError: /data/raw/2026-11-ID10-pentacene/pentacene-SiO2_annealed-at-340K/"
         "scan_0042/master.h5: no monitor counter 'I0' in the SPEC scan #42 (columns: Epoch, "
         "Seconds, mon, temp); set [beamline] monitor or turn monitor_normalisation off")


def _task(task: str, status: str = "done", error: str | None = None, host: str = "vm"):
    return TaskState(id=1, task=task, entry="f1", status=status, attempts=1,
                     started_at=datetime.now(UTC), duration_s=12.25, host=host, error=error,
                     detail=None if error else "4 frames → f1_reduced.nxs (img_gid_q)")


def _rows():
    long_a = "pentacene-on-SiO2-thermal-oxide/annealed-at-340K-for-2h/s0001"
    long_b = "pentacene-on-SiO2-thermal-oxide/annealed-at-340K-for-2h/s0002"
    return [SimpleNamespace(scan=long_a, tasks=[_task("link"), _task("convert")]),
            SimpleNamespace(scan=long_b, tasks=[_task("convert", "failed", ERROR, "node7")])]


def test_compact_layout_fits_100_columns_without_cutting():
    lines = compact_task_lines(_rows(), 100)
    assert all(len(line) <= 100 for line in lines), max(map(len, lines))
    for row in _rows():
        assert str(row.scan) in lines  # whole, on a line of its own
    text = "".join(lines)
    squeezed = text.replace(" ", "")
    assert ERROR.replace(" ", "") in squeezed  # every character of the error is there
    assert "host" in lines[0] and "node7" in text  # two hosts: the host is shown


def test_one_host_is_not_repeated_and_wide_terminals_get_the_table():
    rows = [SimpleNamespace(scan="s/l/s001", tasks=[_task("link"), _task("convert")])]
    lines = compact_task_lines(rows, 100)
    assert "host" not in lines[0] and " vm" not in "".join(lines)
    from rich.table import Table
    from rich.text import Text

    assert isinstance(task_view(rows, 160), Table)
    assert isinstance(task_view(rows, 100), Text)


def test_progress_without_a_terminal_is_a_line_per_step_and_throttled(monkeypatch,
                                                                      capsys):
    """Off a terminal (scripts, CI, batch jobs), progress is plain lines on stdout: the
    first step, then at most one per interval, and always the last."""
    from nxgid.cli import common

    monkeypatch.setattr(common, "PROGRESS_LINE_EVERY_S", 1000.0)
    with common.progress_bar("converting", None) as report:
        for done in range(1, 11):
            report(done, 10)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == ["converting: 1 of 10 frames",
                                                      "converting: 10 of 10 frames"]
    monkeypatch.setattr(common, "PROGRESS_LINE_EVERY_S", 0.0)
    with common.progress_bar("stacking", None) as report:
        for done in range(1, 4):
            report(done, 3)
    assert len(capsys.readouterr().out.splitlines()) == 3
    with common.progress_bar("stacking", False) as report:
        assert report is None


def test_one_convention_for_positions_on_the_detector():
    from nxgid.errors import NxgidError
    from nxgid.units import parse_pixel_xy, pixel_xy_text

    assert parse_pixel_xy("760,60", "--beam-center") == (60.0, 760.0)  # (row, column)
    assert pixel_xy_text(60.0, 760.0) == "x 760.0, y 60.0 pixels (column, row)"
    for bad in ("760", "760,60,1", "a,b", "nan,3"):
        try:
            parse_pixel_xy(bad, "--beam-center")
        except NxgidError as exc:
            assert "expected" in str(exc) and "--beam-center" in str(exc)
        else:
            raise AssertionError(bad)
