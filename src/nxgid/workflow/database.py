"""Connecting to the workflow database and keeping its schema current.

SQLite (the default, ``tasks/nxdatabase.db``) runs in WAL mode with a 30 s busy timeout,
and every transaction starts with ``BEGIN IMMEDIATE``: Python's sqlite3 driver would
otherwise start it lazily at the first write, letting two workers read the same queued
task before either writes (SQLAlchemy's documented recipe; see docs/workflow-database.md).
A ``database_url`` in ``[server]`` switches to PostgreSQL (psycopg 3) or MySQL/MariaDB
(PyMySQL). The schema is created and upgraded by the Alembic migrations shipped in
``nxgid/workflow/migrations``.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from nxgid.errors import DatabaseError
from nxgid.experiment.layout import Experiment
from nxgid.settings.model import Settings
from nxgid.workflow.models import ExperimentRow

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
_MIGRATION_LOCK = "nxgid-schema-migration"


def database_url(experiment: Experiment, settings: Settings) -> str:
    """The configured URL, or SQLite in the experiment's ``tasks/nxdatabase.db``."""
    return settings.server.database_url or f"sqlite:///{experiment.database_file}"


def make_engine(url: str) -> Engine:
    """An engine with nxgid's connection rules for the backend in *url*."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"database URL {url!r} is not a valid SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    kwargs: dict = {"pool_pre_ping": True}
    if backend in ("mysql", "mariadb"):
        # READ COMMITTED keeps InnoDB's gap locks out of the SKIP LOCKED claim.
        kwargs["isolation_level"] = "READ COMMITTED"
    try:
        return create_engine(parsed, **kwargs)
    except ModuleNotFoundError as exc:
        extra = "postgres" if backend == "postgresql" else "mysql"
        raise DatabaseError(f"database URL {parsed.render_as_string(hide_password=True)} "
                            f"needs the {exc.name} driver: pip install 'nxgid[{extra}]'") \
            from None


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# --- schema -------------------------------------------------------------------------


def _alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


@contextlib.contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """Serialise concurrent migrations on servers (SQLite's BEGIN IMMEDIATE already does).

    PostgreSQL's advisory lock ends with the transaction; MySQL's GET_LOCK belongs to the
    session and must be released explicitly, or a pooled connection would keep it.
    """
    name = connection.dialect.name
    if name == "postgresql":
        key = zlib.crc32(_MIGRATION_LOCK.encode())
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({key})")
        yield
    elif name in ("mysql", "mariadb"):
        got = connection.exec_driver_sql(f"SELECT GET_LOCK('{_MIGRATION_LOCK}', 120)").scalar()
        if got != 1:
            raise DatabaseError("timed out after 120 s waiting for another process to "
                                "finish migrating the workflow database")
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SELECT RELEASE_LOCK('{_MIGRATION_LOCK}')")
    else:
        yield


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to *revision*; returns the revision it started from."""
    target = head_revision() if revision == "head" else revision
    with engine.connect() as connection:
        before = current_revision(connection)
        connection.rollback()
    if before == target:
        return before  # the usual case: no lock, no migration
    from alembic import command

    with engine.begin() as connection, _migration_lock(connection):
        before = current_revision(connection)  # another process may have done it meanwhile
        if before != target:
            command.upgrade(_alembic_config(connection), revision)
    return before


def initialise(experiment: Experiment, settings: Settings) -> None:
    """Create or upgrade the schema of the experiment's database (used at creation)."""
    engine = make_engine(database_url(experiment, settings))
    try:
        with _translate_errors(engine):
            upgrade(engine)
    finally:
        engine.dispose()


@contextlib.contextmanager
def _translate_errors(engine: Engine) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"workflow database {where}: {reason}") from None


# --- the database of one experiment -------------------------------------------------------


@dataclass
class WorkflowDB:
    """The workflow database as seen by one experiment."""

    engine: Engine
    experiment: Experiment
    experiment_id: int
    sessions: sessionmaker[Session]

    @classmethod
    def open(cls, experiment: Experiment, settings: Settings) -> WorkflowDB:
        """Connect, upgrade the schema if needed, and register the experiment."""
        engine = make_engine(database_url(experiment, settings))
        with _translate_errors(engine):
            upgrade(engine)
            info = experiment.info
            factory = sessionmaker(engine, expire_on_commit=False)
            with factory.begin() as session:
                row = session.scalar(select(ExperimentRow).where(ExperimentRow.uid == info.id))
                if row is None:
                    row = ExperimentRow(uid=info.id, name=info.name, root=str(experiment.root),
                                        created_at=info.created)
                    session.add(row)
                    session.flush()
                elif row.root != str(experiment.root) or row.name != info.name:
                    row.root, row.name = str(experiment.root), info.name  # moved or renamed
                experiment_id = row.id
        return cls(engine=engine, experiment=experiment, experiment_id=experiment_id,
                   sessions=factory)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """One short transaction; never hold it while processing images."""
        try:
            with self.sessions.begin() as session:
                yield session
        except OperationalError as exc:
            where = self.engine.url.render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise DatabaseError(f"workflow database {where}: {reason}") from None

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> WorkflowDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = [
    "WorkflowDB",
    "database_url",
    "head_revision",
    "initialise",
    "make_engine",
    "upgrade",
]
