"""What live mode reports: an event, one pass, and the summary of a whole run."""

from __future__ import annotations

from dataclasses import dataclass, field

from nxgid.experiment.layout import ScanRef


@dataclass(frozen=True)
class LiveEvent:
    """Something live mode did or found: ``kind`` is ``import``, ``stack``, ``convert``,
    ``warning`` or ``error``; ``frames`` the frames imported, stacked or converted."""

    kind: str
    scan: ScanRef | None
    entry: str
    message: str
    frames: int = 0

    def __str__(self) -> str:
        where = f"{self.scan} {self.entry}".strip() if self.scan else ""
        return f"{where}: {self.message}" if where else self.message


@dataclass
class PassReport:
    """One pass: its events, the files still waiting (to settle or to become readable),
    when the earliest of them may be ready (``time.monotonic``), and whether work was
    left for the next pass (a backlog bigger than :data:`CHUNK_FRAMES`)."""

    number: int
    events: list[LiveEvent] = field(default_factory=list)
    waiting: int = 0
    next_check: float | None = None
    more: bool = False
    seconds: float = 0.0

    @property
    def active(self) -> bool:
        return any(e.kind in ("import", "stack", "convert") for e in self.events)


@dataclass
class LiveSummary:
    """What :func:`watch` did, from start to stop."""

    observer: str = ""
    passes: int = 0
    scans_imported: int = 0
    frames_stacked: int = 0
    frames_converted: int = 0
    errors: int = 0
    interrupted: bool = False
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{self.scans_imported} scan(s) imported, {self.frames_stacked} frame(s) "
                f"appended to raw stacks, {self.frames_converted} frame(s) converted, "
                f"{self.errors} error(s) in {self.passes} pass(es), {self.seconds:.0f} s")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
