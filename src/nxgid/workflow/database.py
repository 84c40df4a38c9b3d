"""Connecting to the workflow database and keeping its schema current.

SQLite (the default, ``tasks/nxdatabase.db``) runs in WAL mode with a busy timeout of
``[server] database_timeout_s`` (30 s unless set); the file is looked at read-only first
(:mod:`nxgid.workflow.sqlite_checks`) so that a foreign or damaged file is never modified,
and every transaction starts with ``BEGIN IMMEDIATE``: Python's sqlite3 driver would
otherwise start it lazily at the first write, letting two workers read the same queued
task before either writes (SQLAlchemy's documented recipe; see docs/workflow-database.md).
A ``database_url`` in ``[server]`` switches to PostgreSQL (psycopg 3) or MySQL/MariaDB
(PyMySQL). The schema is created and upgraded by the Alembic migrations shipped in
``nxgid/workflow/migrations``.
"""

from __future__ import annotations

import contextlib
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.exc import DatabaseError as SQLAlchemyDatabaseError
from sqlalchemy.orm import Session, sessionmaker

from nxgid.errors import DatabaseError
from nxgid.experiment.layout import Experiment
from nxgid.settings.model import Settings
from nxgid.workflow.models import ExperimentRow
from nxgid.workflow.sqlite_checks import REBUILD_ADVICE, check_sqlite_file, newer_schema

MIGRATIONS = Path(__file__).with_name("migrations")
DEFAULT_BUSY_TIMEOUT_S = 30.0
_BUSY_TIMEOUT_S: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
_MIGRATION_LOCK = "nxgid-schema-migration"


def database_url(experiment: Experiment, settings: Settings) -> str:
    """The configured URL, or SQLite in the experiment's ``tasks/nxdatabase.db``."""
    return settings.server.database_url or f"sqlite:///{experiment.database_file}"


def make_engine(url: str, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Engine:
    """An engine with nxgid's connection rules for the backend in *url*.

    An SQLite file is checked read-only first and refused when it is not an nxgid
    database this nxgid can use; *busy_timeout_s* is how long a statement waits for a
    lock held by another process before failing with "locked".
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"database URL {url!r} is not a valid SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            check_sqlite_file(Path(parsed.database), known_revisions())
        engine = create_engine(parsed, connect_args={"timeout": busy_timeout_s})
        _configure_sqlite(engine, busy_timeout_s)
        _BUSY_TIMEOUT_S[engine] = busy_timeout_s
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


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
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


def known_revisions() -> frozenset[str]:
    """Every schema revision this nxgid's migrations know."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return frozenset(rev.revision for rev in script.walk_revisions())


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
    if before is not None and before not in known_revisions():
        raise newer_schema(engine.url.render_as_string(hide_password=True), before)
    from alembic import command

    with engine.begin() as connection, _migration_lock(connection):
        before = current_revision(connection)  # another process may have done it meanwhile
        if before != target:
            command.upgrade(_alembic_config(connection), revision)
    return before


def initialise(experiment: Experiment, settings: Settings) -> None:
    """Create or upgrade the schema of the experiment's database (used at creation)."""
    engine = _engine_for(experiment, settings)
    try:
        with _translate_errors(engine):
            upgrade(engine)
    finally:
        engine.dispose()


def _engine_for(experiment: Experiment, settings: Settings) -> Engine:
    return make_engine(database_url(experiment, settings),
                       busy_timeout_s=settings.server.database_timeout_s)


def translated(engine: Engine, exc: SQLAlchemyDatabaseError) -> DatabaseError:
    """One line naming the database, what is wrong and the way out."""
    where = engine.url.database if engine.url.get_backend_name() == "sqlite" else \
        engine.url.render_as_string(hide_password=True)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    lowered = reason.lower()
    if "locked" in lowered or "busy" in lowered:
        waited = _BUSY_TIMEOUT_S.get(engine)
        held = f" for more than {waited:g} s ([server] database_timeout_s)" if waited else ""
        return DatabaseError(f"workflow database {where} is locked: another process held "
                             f"it{held}; see who with `nxgid status` or raise the timeout")
    if "readonly" in lowered or "read-only" in lowered:
        return DatabaseError(f"workflow database {where} is read-only ({reason}); nxgid "
                             "needs to write its task rows there")
    if any(word in lowered for word in ("malformed", "not a database", "corrupt",
                                        "disk i/o")):
        return DatabaseError(f"workflow database {where}: {reason}; {REBUILD_ADVICE}")
    return DatabaseError(f"workflow database {where}: {reason}")


@contextlib.contextmanager
def _translate_errors(engine: Engine) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyDatabaseError as exc:
        raise translated(engine, exc) from None


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
        engine = _engine_for(experiment, settings)
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
        except SQLAlchemyDatabaseError as exc:
            raise translated(self.engine, exc) from None

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
