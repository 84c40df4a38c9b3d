"""Shared fixtures: isolated site settings, experiments, database backends, a CLI runner."""

from __future__ import annotations

import logging
import os
import shlex
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own site directory and never sees the user's settings."""
    monkeypatch.setenv("NXGID_HOME", str(tmp_path / "site"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    logger = logging.getLogger("nxgid")
    before = list(logger.handlers)
    yield
    for handler in list(logger.handlers):
        if handler not in before:
            logger.removeHandler(handler)
            handler.close()


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    """A site settings file whose analysis home is ``tmp_path/analysis``."""
    from nxgid.settings.store import create_site_file

    path = tmp_path / "site" / "settings.ini"
    create_site_file(path, {"instrument": {"analysis_home": str(tmp_path / "analysis"),
                                           "source": "Test Synchrotron"}})
    return path


# --- database backends ------------------------------------------------------------------

_servers: dict[str, object] = {}


def _server(kind: str, tmp_path_factory: pytest.TempPathFactory):
    import dbservers

    if kind not in _servers:
        try:
            start = dbservers.start_postgres if kind == "postgresql" else dbservers.start_mariadb
            _servers[kind] = start(tmp_path_factory.mktemp(kind))
        except dbservers.ServerUnavailable as exc:
            _servers[kind] = exc
    server = _servers[kind]
    if isinstance(server, Exception):
        message = f"{kind} server not available: {server}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: server tests must run; .ci/run installs the "
                        "Debian packages)")
        pytest.skip(f"{message}; install it with `bash .ci/system-packages.sh`")
    return server


def pytest_sessionfinish(session, exitstatus) -> None:
    for server in _servers.values():
        stop = getattr(server, "stop", None)
        if stop:
            stop()


def _fresh_database(kind: str, tmp_path_factory) -> Iterator[str]:
    server = _server(kind, tmp_path_factory)
    name = f"nxgid_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """'' for SQLite in the experiment, else a fresh database on a real server."""
    if request.param == "sqlite":
        yield ""
    else:
        yield from _fresh_database(request.param, tmp_path_factory)


@pytest.fixture(params=["postgresql", "mariadb"])
def server_database_url(request, tmp_path_factory) -> Iterator[str]:
    """A fresh database on a real PostgreSQL or MariaDB server."""
    yield from _fresh_database(request.param, tmp_path_factory)


@pytest.fixture
def experiment(tmp_path: Path, site_file: Path, database_url: str):
    """A fresh experiment on each database backend."""
    from nxgid.settings.store import SettingsFile, load_effective, set_value
    from nxgid.workflow.workspace import new_experiment

    if database_url:
        set_value(SettingsFile.read(site_file), "server", "database_url", database_url)
    return new_experiment("exp", load_effective(site_file))


@pytest.fixture
def sqlite_experiment(tmp_path: Path, site_file: Path):
    from nxgid.settings.store import load_effective
    from nxgid.workflow.workspace import new_experiment

    return new_experiment("exp", load_effective(site_file))


# --- running the CLI in-process ------------------------------------------------------------


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def nxgid(monkeypatch: pytest.MonkeyPatch):
    """Run ``nxgid ARGS`` in-process through the real entry point (error contract included)."""
    from click.testing import CliRunner

    from nxgid.cli.main import main

    def run(args: str | list[str], *, cwd: Path | None = None, input: str | None = None
            ) -> Result:
        argv = shlex.split(args) if isinstance(args, str) else list(args)
        if cwd is not None:
            monkeypatch.chdir(cwd)
        runner = CliRunner()
        with runner.isolation(input=input) as (out, err, _):
            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            stdout = out.getvalue().decode()
            stderr = err.getvalue().decode() if err is not None else ""
        return Result(code, stdout, stderr)

    return run
