"""Look at an SQLite workflow database before SQLAlchemy touches it.

Connecting through the engine switches the file to WAL mode and runs migrations, which
would modify a database that is not ours. So the file is first opened *read-only*
(``mode=ro``) with the standard library, and refused with one line when it is a folder,
not SQLite at all, damaged, another program's, or written by a newer nxgid. Nothing in
here writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nxgid.errors import DatabaseError

SQLITE_MAGIC = b"SQLite format 3\x00"
#: The tables the nxgid schema creates (besides ``alembic_version``); a database with
#: tables but none of these belongs to another program.
NXGID_TABLES = frozenset({"experiments", "scans", "task_runs"})
REBUILD_ADVICE = ("move it aside and run `nxgid db sync` to rebuild the scan rows from "
                  "the scan files")


def damaged(path: Path, reason: str) -> DatabaseError:
    return DatabaseError(f"workflow database {path}: {reason}; {REBUILD_ADVICE}")


def check_sqlite_file(path: Path, known_revisions: frozenset[str]) -> None:
    """Refuse *path* unless it is absent, empty, or an nxgid database this nxgid knows."""
    try:
        if path.is_dir():
            raise DatabaseError(f"workflow database {path} is a folder; expected an SQLite "
                                "file (remove the folder or set [server] database_url)")
        if not path.exists():
            return
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise DatabaseError(f"workflow database {path}: cannot be read "
                            f"({exc.strerror or exc})") from None
    if not head:
        return  # an empty file is an empty database to SQLite
    if head != SQLITE_MAGIC:
        raise damaged(path, "not an SQLite database (its first bytes are not the SQLite "
                            "header)")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                     timeout=5)
    except sqlite3.Error as exc:
        raise damaged(path, f"cannot be opened ({exc})") from None
    try:
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = None
        if "alembic_version" in tables:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc):
            return  # a writer holds it; the engine's busy timeout decides
        raise damaged(path, f"{exc} (damaged or cut short)") from None
    finally:
        connection.close()
    user_tables = {t for t in tables if not t.startswith("sqlite_")}
    if user_tables and not (user_tables & NXGID_TABLES):
        listed = ", ".join(sorted(user_tables)[:5])
        raise DatabaseError(f"workflow database {path} is not an nxgid database (it holds "
                            f"tables {listed}); it was left untouched: move it aside or "
                            "set [server] database_url")
    if revision is not None and revision not in known_revisions:
        raise newer_schema(str(path), revision)


def newer_schema(where: str, revision: str) -> DatabaseError:
    return DatabaseError(f"workflow database {where} has schema revision {revision!r}, "
                         "made by a newer nxgid; upgrade nxgid (pip install -U nxgid) to "
                         "use it")
