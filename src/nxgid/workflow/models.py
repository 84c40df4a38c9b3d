"""Tables of the workflow database (SQLAlchemy 2). Alembic migrations create them.

The files of the experiment are the truth; these rows record what was found on disk
(:mod:`nxgid.workflow.sync`) and the state of every task (:mod:`nxgid.workflow.queue`).
One database may serve several experiments (a shared PostgreSQL server), so scans belong
to an experiment row keyed by the experiment's unique id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


#: Longest error message kept in the database; the full text goes to the log.
ERROR_LENGTH = 500
#: How the error of a queued task whose inputs were missing begins (it waits for them).
WAITING_FOR_INPUT = "waiting for input: "


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp with time zone on every backend: stored as UTC, read back aware.

    PostgreSQL keeps the zone itself; SQLite and MySQL have no zone-aware type, so values
    are stored as naive UTC and given their zone back on reading.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: nxgid stores aware timestamps only")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ExperimentRow(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    root: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    scans: Mapped[list[ScanRow]] = relationship(back_populates="experiment")


class ScanRow(Base):
    __tablename__ = "scans"
    __table_args__ = (UniqueConstraint("experiment_id", "sample", "label", "scan",
                                       name="uq_scans_experiment_scan"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    sample: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(64))
    scan: Mapped[str] = mapped_column(String(64))
    #: The scan file, relative to the experiment root (``sample/label/sample_scan.nxs``).
    path: Mapped[str] = mapped_column(String(512))
    #: Entry names, e.g. ``["f1", "f2"]``.
    entries: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: False when the last sync that looked at this scan found nothing on disk.
    present: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    experiment: Mapped[ExperimentRow] = relationship(back_populates="scans")
    tasks: Mapped[list[TaskRun]] = relationship(back_populates="scan",
                                                cascade="all, delete-orphan")

    @property
    def key(self) -> str:
        return f"{self.sample}/{self.label}/{self.scan}"


class TaskRun(Base):
    """The state of one task (e.g. ``convert``) on one scan entry."""

    __tablename__ = "task_runs"
    __table_args__ = (
        UniqueConstraint("scan_id", "task", "entry", name="uq_task_runs_scan_task_entry"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                        name="ck_task_runs_status"),
        Index("ix_task_runs_queue", "experiment_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Repeats the scan's experiment so the claim query locks rows of this table only
    #: (a locking read that joins ``scans`` would lock, and skip, the scan rows too).
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"))
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"),
                                         index=True)
    task: Mapped[str] = mapped_column(String(64))
    #: ``f1``, ``f2``, … or ``""`` for a task on the whole scan.
    entry: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED.value)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Last sign of life of the worker running the task (migration 0002).
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(ERROR_LENGTH), nullable=True)
    #: The task that must be done before this one can be claimed (migration 0003).
    after_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: SHA-256 of the inputs and recipe the task was done with.
    signature: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The named parts of that signature, part → short digest, e.g. ``{"raw stack":
    #: "…", "geometry": "gid:…"}``: what `nxgid status` compares to say why a task is
    #: stale (migration 0004; None for tasks done before it).
    inputs: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    #: Done, but its inputs or recipe changed since: redone on request (`reduce --stale`).
    stale: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Queued with permission to replace existing outputs (`--overwrite`, `--stale`).
    overwrite: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: One line about the result, e.g. "4 frames → f1_reduced.nxs".
    detail: Mapped[str | None] = mapped_column(String(255), nullable=True)

    scan: Mapped[ScanRow] = relationship(back_populates="tasks")

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or utcnow()
        return (end - self.started_at).total_seconds()
