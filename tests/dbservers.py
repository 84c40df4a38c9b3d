"""Throwaway PostgreSQL and MariaDB servers for the test suite.

The test session starts real database servers in a temporary directory,
listening only on 127.0.0.1 (plus a unix socket inside the work directory), and
stops them again at the end::

    server = start_postgres(tmp_path / "pg")      # or start_mariadb(...)
    url = server.create_database("t_workflow")    # SQLAlchemy URL of an empty database
    ...
    server.stop()                                 # kills the server, removes its files

``ServerUnavailable`` is raised when the server binaries are not installed
(``.ci/system-packages.sh`` installs them); tests should skip in that case.
``ServerStartError`` is raised when the binaries exist but the server does not
come up; that is a real failure and the message carries the server's log tail.

PostgreSQL refuses to run as root; then it runs as the ``postgres`` OS user
(which the Debian package creates). If that user cannot reach the work
directory (pytest's ``/tmp/pytest-of-root`` is mode 0700), the cluster lives in
a private ``/tmp/nxgid-postgres-*`` directory instead. Either way ``stop()``
removes it.

Instead of starting a server, an already running one can be used by setting
``NXGID_TEST_POSTGRES_URL`` / ``NXGID_TEST_MYSQL_URL`` to an admin URL (a role
allowed to CREATE/DROP DATABASE), e.g.
``postgresql+psycopg://user:pw@host:5432/postgres`` or
``mysql+pymysql://root:pw@host:3306/``. ``stop()`` then only drops the
databases this module created.

Only the standard library and SQLAlchemy (with psycopg 3 / PyMySQL) are used.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DatabaseServer",
    "ServerStartError",
    "ServerUnavailable",
    "start_mariadb",
    "start_postgres",
]

POSTGRES_URL_ENV = "NXGID_TEST_POSTGRES_URL"
MYSQL_URL_ENV = "NXGID_TEST_MYSQL_URL"

USER = "nxgid"
STARTUP_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 30.0
SETUP_TIMEOUT = 180.0  # initdb / mariadb-install-db
MAX_PORT_ATTEMPTS = 3
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 100

_DB_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ServerUnavailable(Exception):
    """The database server cannot be provided here (binaries or OS user missing)."""


class ServerStartError(RuntimeError):
    """The server binaries exist, but the server failed to initialise or start."""


# --------------------------------------------------------------------------- #
# The server handle
# --------------------------------------------------------------------------- #


@dataclass(eq=False)
class DatabaseServer:
    kind: str  # "postgresql" or "mariadb"
    admin_url: str  # SQLAlchemy URL of a role allowed to CREATE/DROP DATABASE
    # -- internals ----------------------------------------------------------
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    cleanup_paths: list[Path] = field(default_factory=list, repr=False)
    log_path: Path | None = field(default=None, repr=False)
    startup_seconds: float = 0.0
    created: set[str] = field(default_factory=set, repr=False)
    _stopped: bool = field(default=False, init=False, repr=False)
    # Only the process that started the server may stop it (not a fork child).
    _owner_pid: int = field(default_factory=os.getpid, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    @property
    def external(self) -> bool:
        """True when this wraps a server given by environment variable."""
        return self.process is None

    # -- databases ----------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create a fresh, empty database and return its SQLAlchemy URL.

        An existing database of the same name is dropped first.
        """
        _check_db_name(name)
        self.drop_database(name)
        if self.kind == "postgresql":
            _admin_execute(
                self.admin_url,
                f"CREATE DATABASE {_pg_ident(name)} ENCODING 'UTF8' TEMPLATE template0",
            )
        else:
            _admin_execute(
                self.admin_url,
                f"CREATE DATABASE {_my_ident(name)} "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            )
        with self._lock:
            self.created.add(name)
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database (no error if it does not exist)."""
        _check_db_name(name)
        if self.kind == "postgresql":
            # WITH (FORCE) (PostgreSQL 13+) terminates leftover connections.
            _admin_execute(
                self.admin_url, f"DROP DATABASE IF EXISTS {_pg_ident(name)} WITH (FORCE)"
            )
        else:
            _admin_execute(self.admin_url, f"DROP DATABASE IF EXISTS {_my_ident(name)}")
        with self._lock:
            self.created.discard(name)

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL of database ``name`` on this server (not created here)."""
        from sqlalchemy.engine import make_url

        url = make_url(self.admin_url).set(database=name)
        if self.kind == "mariadb":
            query = dict(url.query)
            query["charset"] = "utf8mb4"
            url = url.set(query=query)
        return url.render_as_string(hide_password=False)

    # -- lifetime -----------------------------------------------------------

    def stop(self) -> None:
        """Stop the server and delete its files; idempotent.

        For a server given by environment variable only the databases created
        through this object are dropped.
        """
        with self._lock:
            if self._stopped or os.getpid() != self._owner_pid:
                return
            self._stopped = True
            created = sorted(self.created)
        try:
            if self.external:
                for name in created:
                    with contextlib.suppress(Exception):
                        self.drop_database(name)
            elif self.process is not None:
                _terminate(self.process, signal.SIGINT if self.kind == "postgresql" else None)
        finally:
            for path in self.cleanup_paths:
                shutil.rmtree(path, ignore_errors=True)
            _LIVE.discard(self)

    def __enter__(self) -> DatabaseServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _LiveServers:
    """Servers not yet stopped; stopped at interpreter exit as a safety net."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._servers: list[DatabaseServer] = []
        self._sigterm_installed = False

    def add(self, server: DatabaseServer) -> None:
        with self._lock:
            self._servers.append(server)
        if server.process is not None:
            self._install_sigterm_handler()

    def discard(self, server: DatabaseServer) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._servers.remove(server)

    def stop_all(self) -> None:
        with self._lock:
            servers = list(self._servers)
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()

    def _install_sigterm_handler(self) -> None:
        """Stop the servers when the test process gets SIGTERM (e.g. a CI timeout).

        Without this, SIGTERM kills Python without running atexit handlers and
        the servers (in their own sessions) would keep running. Only installed
        if nobody else handles SIGTERM; afterwards the signal is re-raised with
        the default action, so the process still dies of SIGTERM.
        """
        if self._sigterm_installed or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        owner = os.getpid()

        def on_sigterm(signum: int, frame: object) -> None:
            if os.getpid() == owner:
                self.stop_all()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)
        self._sigterm_installed = True


_LIVE = _LiveServers()
atexit.register(_LIVE.stop_all)


# --------------------------------------------------------------------------- #
# PostgreSQL
# --------------------------------------------------------------------------- #


def _find_postgres_bindir() -> Path:
    candidates: list[tuple[tuple[int, ...], Path]] = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        bindir = initdb.parent
        if not all(os.access(bindir / b, os.X_OK) for b in ("initdb", "postgres")):
            continue
        version = tuple(int(p) for p in re.findall(r"\d+", bindir.parent.name)) or (0,)
        candidates.append((version, bindir))
    if candidates:
        return max(candidates)[1]
    # Non-Debian layouts: initdb/postgres in PATH.
    initdb = shutil.which("initdb")
    if initdb and os.access(Path(initdb).parent / "postgres", os.X_OK):
        return Path(initdb).parent
    raise ServerUnavailable(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, "
        "no initdb in PATH); run .ci/system-packages.sh"
    )


def start_postgres(workdir: Path) -> DatabaseServer:
    """Start a throwaway PostgreSQL server under ``workdir``.

    Honours ``NXGID_TEST_POSTGRES_URL`` (use that server, start nothing).
    """
    env_url = os.environ.get(POSTGRES_URL_ENV)
    if env_url:
        return _external_server("postgresql", env_url)

    bindir = _find_postgres_bindir()
    # PostgreSQL refuses to run as root: run it as the "postgres" OS user then.
    run_as: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam("postgres")
        except KeyError:
            raise ServerUnavailable(
                "running as root, but there is no 'postgres' OS user to run PostgreSQL as"
            ) from None

    t0 = time.monotonic()
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="postgres-", dir=workdir))
    cleanup = [base]
    if run_as is not None:
        os.chown(base, run_as.pw_uid, run_as.pw_gid)
        if not _user_can_write(run_as, base):
            # e.g. pytest's /tmp/pytest-of-root is 0700: the postgres user
            # cannot reach anything below it. Use a private dir in /tmp.
            shutil.rmtree(base, ignore_errors=True)
            base = Path(tempfile.mkdtemp(prefix="nxgid-postgres-"))
            cleanup = [base]
            os.chown(base, run_as.pw_uid, run_as.pw_gid)

    try:
        datadir = base / "data"
        log_path = base / "server.log"
        sockdir = base
        password = secrets.token_hex(12)

        # The socket file is "<dir>/.s.PGSQL.<port>"; keep it short enough.
        if len(str(sockdir)) + len("/.s.PGSQL.65535") > MAX_SOCKET_PATH:
            sockdir = Path(tempfile.mkdtemp(prefix="nxgid-pgsock-"))
            cleanup.append(sockdir)
            if run_as is not None:
                os.chown(sockdir, run_as.pw_uid, run_as.pw_gid)

        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        if run_as is not None:
            os.chown(pwfile, run_as.pw_uid, run_as.pw_gid)
        pwfile.chmod(0o600)

        # Bootstrap superuser "nxgid"; password auth over TCP, trust on the
        # private unix socket (which nobody else can reach).
        _run_setup(
            [
                str(bindir / "initdb"),
                f"--pgdata={datadir}",
                f"--username={USER}",
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            log_path,
            cwd=base,
            run_as=run_as,
            what="initdb",
        )
        pwfile.unlink()

        def launch(port: int) -> subprocess.Popen[bytes]:
            settings = {
                "listen_addresses": "127.0.0.1",
                "port": str(port),
                "unix_socket_directories": str(sockdir),
                "unix_socket_permissions": "0700",
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "max_connections": "200",
                "shared_buffers": "32MB",
                "log_min_messages": "warning",
                "logging_collector": "off",
            }
            args = [str(bindir / "postgres"), "-D", str(datadir)]
            for key, value in settings.items():
                args += ["-c", f"{key}={value}"]
            return _popen(args, log_path, cwd=base, run_as=run_as)

        def url_for(port: int) -> str:
            return f"postgresql+psycopg://{USER}:{password}@127.0.0.1:{port}/postgres"

        process, port = _start_with_free_port(launch, url_for, log_path, "PostgreSQL")
    except BaseException:
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
        raise

    server = DatabaseServer(
        kind="postgresql",
        admin_url=url_for(port),
        process=process,
        cleanup_paths=cleanup,
        log_path=log_path,
        startup_seconds=time.monotonic() - t0,
    )
    _LIVE.add(server)
    return server


def _user_can_write(user: pwd.struct_passwd, path: Path) -> bool:
    """Whether OS user ``user`` can create files in ``path`` (all ancestors traversable)."""
    result = subprocess.run(
        ["/bin/sh", "-c", 'test -d "$1" && test -w "$1" && test -x "$1"', "sh", str(path)],
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        cwd="/",
        check=False,
    )
    return result.returncode == 0


# --------------------------------------------------------------------------- #
# MariaDB
# --------------------------------------------------------------------------- #


def _find_program(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for directory in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
            candidate = Path(directory) / name
            if os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def start_mariadb(workdir: Path) -> DatabaseServer:
    """Start a throwaway MariaDB server under ``workdir``.

    Honours ``NXGID_TEST_MYSQL_URL`` (use that server, start nothing).
    """
    env_url = os.environ.get(MYSQL_URL_ENV)
    if env_url:
        return _external_server("mariadb", env_url)

    install_db = _find_program("mariadb-install-db", "mysql_install_db")
    server_bin = _find_program("mariadbd", "mysqld")
    if install_db is None or server_bin is None:
        raise ServerUnavailable(
            "MariaDB server binaries not found (mariadb-install-db / mariadbd); "
            "run .ci/system-packages.sh"
        )

    t0 = time.monotonic()
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="mariadb-", dir=workdir))
    cleanup = [base]
    try:
        datadir = base / "data"
        tmpdir = base / "tmp"
        tmpdir.mkdir()
        log_path = base / "server.log"
        sockdir = base
        if len(str(sockdir / "mysqld.sock")) > MAX_SOCKET_PATH:
            sockdir = Path(tempfile.mkdtemp(prefix="nxgid-mysock-"))
            cleanup.append(sockdir)
        sock = sockdir / "mysqld.sock"
        password = secrets.token_hex(12)

        # mariadbd refuses to run as root unless told so explicitly.
        user_opt = ["--user=root"] if os.geteuid() == 0 else []
        # Speed over durability: this server only lives for one test session.
        server_opts = [
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--skip-name-resolve",
            "--skip-log-bin",
            f"--tmpdir={tmpdir}",
        ]
        # Accounts are set up while bootstrapping (FLUSH PRIVILEGES loads the
        # grant tables, which bootstrap mode otherwise skips): "nxgid" with a
        # password and all privileges; root only via the private unix socket
        # ("normal" authentication, no password), no root over TCP.
        init_sql = base / "init.sql"
        init_sql.write_text(
            "FLUSH PRIVILEGES;\n"
            "DELETE FROM mysql.global_priv WHERE User = '' "
            "OR (User = 'root' AND Host <> 'localhost');\n"
            "FLUSH PRIVILEGES;\n"
            + "".join(
                f"CREATE USER '{USER}'@'{host}' IDENTIFIED BY '{password}';\n"
                f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'{host}' WITH GRANT OPTION;\n"
                for host in ("127.0.0.1", "localhost")
            )
        )
        init_sql.chmod(0o600)
        _run_setup(
            [
                install_db,
                "--no-defaults",
                f"--datadir={datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                f"--extra-file={init_sql}",
                *user_opt,
                *server_opts,
            ],
            log_path,
            cwd=base,
            run_as=None,
            what=Path(install_db).name,
        )
        init_sql.unlink()

        def launch(port: int) -> subprocess.Popen[bytes]:
            args = [
                server_bin,
                "--no-defaults",
                *user_opt,
                f"--datadir={datadir}",
                f"--socket={sock}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={base / 'mariadbd.pid'}",
                f"--log-error={log_path}",
                "--max-connections=300",
                *server_opts,
            ]
            return _popen(args, log_path, cwd=base, run_as=None)

        # Readiness is checked over TCP: PyMySQL leaks its socket object when a
        # unix-socket connect fails (ResourceWarning, an error under pytest).
        def url_for(port: int) -> str:
            return f"mysql+pymysql://{USER}:{password}@127.0.0.1:{port}/?charset=utf8mb4"

        process, port = _start_with_free_port(launch, url_for, log_path, "MariaDB")
    except BaseException:
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
        raise

    server = DatabaseServer(
        kind="mariadb",
        admin_url=url_for(port),
        process=process,
        cleanup_paths=cleanup,
        log_path=log_path,
        startup_seconds=time.monotonic() - t0,
    )
    _LIVE.add(server)
    return server


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def _external_server(kind: str, url: str) -> DatabaseServer:
    from sqlalchemy.engine import make_url

    try:
        make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError
        raise ServerUnavailable(f"invalid database URL in environment: {exc}") from exc
    server = DatabaseServer(kind=kind, admin_url=url)
    _LIVE.add(server)
    return server


def _check_db_name(name: str) -> None:
    if not _DB_NAME_RE.match(name):
        raise ValueError(f"invalid test database name {name!r} (letters, digits, _; max 63)")


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _my_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _admin_execute(url: str, statement: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(log_path: Path, lines: int = 40) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join("    " + line for line in tail) or "    (log is empty)"


def _preexec_for(run_as: pwd.struct_passwd | None) -> dict[str, Any]:
    if run_as is None:
        return {}
    return {"user": run_as.pw_uid, "group": run_as.pw_gid, "extra_groups": []}


def _child_env(run_as: pwd.struct_passwd | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # Client/server settings from the environment must not leak in.
        if not k.startswith(("PG", "MYSQL", "MARIADB"))
    }
    env["LC_ALL"] = "C"
    env.pop("LANG", None)
    if run_as is not None:
        env["HOME"] = run_as.pw_dir
        env["USER"] = env["LOGNAME"] = run_as.pw_name
    return env


def _run_setup(
    args: list[str],
    log_path: Path,
    *,
    cwd: Path,
    run_as: pwd.struct_passwd | None,
    what: str,
) -> None:
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(args)}\n".encode())
        log.flush()
        try:
            result = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=_child_env(run_as),
                timeout=SETUP_TIMEOUT,
                check=False,
                **_preexec_for(run_as),
            )
        except subprocess.TimeoutExpired:
            raise ServerStartError(
                f"{what} did not finish within {SETUP_TIMEOUT:.0f} s; log tail:\n"
                + _log_tail(log_path)
            ) from None
    if result.returncode != 0:
        raise ServerStartError(
            f"{what} failed with exit code {result.returncode}; log tail:\n" + _log_tail(log_path)
        )


def _popen(
    args: list[str], log_path: Path, *, cwd: Path, run_as: pwd.struct_passwd | None
) -> subprocess.Popen[bytes]:
    # Own session: a Ctrl-C in the terminal reaches pytest (which then stops
    # the server cleanly), not the server directly. The server runs as a
    # direct child (setuid by Popen rather than via runuser/su, whose
    # "watching parent" turns signals into SIGTERM + SIGKILL after 2 s), so
    # that stop() can signal and wait for the postmaster / mariadbd itself.
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(args)}\n".encode())
        log.flush()
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=_child_env(run_as),
            start_new_session=True,
            **_preexec_for(run_as),
        )


def _start_with_free_port(
    launch: Any, url_for: Any, log_path: Path, what: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Launch on a free port; retry with another port if it was grabbed meanwhile."""
    for attempt in range(1, MAX_PORT_ATTEMPTS + 1):
        port = _free_port()
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        process = launch(port)
        try:
            _wait_ready(url_for(port), process, log_path, what)
            return process, port
        except ServerStartError:
            _terminate(process, None)
            new_log = log_path.read_bytes()[log_offset:].decode(errors="replace")
            port_taken = re.search(
                r"address already in use|could not bind|can't start server: bind",
                new_log,
                re.IGNORECASE,
            )
            if port_taken and attempt < MAX_PORT_ATTEMPTS:
                continue
            raise
        except BaseException:
            _terminate(process, None)
            raise
    raise AssertionError("unreachable")


def _wait_ready(
    url: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    what: str,
    timeout: float = STARTUP_TIMEOUT,
) -> None:
    """Wait until a connection to ``url`` succeeds, the process dies, or timeout."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    # Bounded waits: something else may have grabbed the port and accept the
    # connection without ever speaking the protocol.
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    if url.startswith("mysql"):
        connect_args.update(read_timeout=5, write_timeout=5)
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    delay = 0.05
    try:
        while True:
            code = process.poll()
            if code is not None:
                raise ServerStartError(
                    f"{what} server exited with code {code} during start-up; log tail:\n"
                    + _log_tail(log_path)
                )
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except Exception as exc:  # not up yet
                last_error = exc
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{what} server did not accept connections within {timeout:.0f} s "
                    f"(last error: {last_error}); log tail:\n" + _log_tail(log_path)
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
    finally:
        engine.dispose()


def _terminate(process: subprocess.Popen[bytes], first_signal: int | None) -> None:
    """Stop a server process (and anything left in its session); waits for it.

    PostgreSQL: SIGINT = "fast" shutdown (disconnects clients, unlike SIGTERM's
    "smart" shutdown that waits for them). MariaDB: SIGTERM = normal shutdown.
    Escalates to SIGKILL of the server's whole process group (it runs in its
    own session) after SHUTDOWN_TIMEOUT. The postmaster only exits after all
    its backends have, so a reaped server process leaves nothing behind.
    """
    sig = first_signal if first_signal is not None else signal.SIGTERM
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        # Not yet reaped, so the process group id cannot have been reused.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=SHUTDOWN_TIMEOUT)
