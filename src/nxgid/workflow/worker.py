"""Workers: claim tasks from the database, run them, record the outcome.

A worker loops: give back tasks whose worker went silent (:func:`queue.requeue_expired`),
claim the oldest claimable task, run it while a thread keeps its heartbeat, and record
done (with the input signature) or a failed attempt (queued again until ``max_attempts``
of ``[server]``). It stops when nothing is claimable and nothing is running (or, with
*wait*, keeps polling for new work until stopped). Ctrl-C gives the running task back.

``run_workers`` starts N such workers as separate processes (``spawn``: no HDF5 handle or
database connection crosses a fork); ``nxgid reduce --now`` runs one in the foreground.
A worker process never prints a traceback: its one-line error goes to the parent, which
raises it, and the traceback to the experiment's log. It stops, giving its running task
back, when the parent dies (:mod:`nxgid.workflow.orphan`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nxgid.errors import NxgidError
from nxgid.experiment.layout import Experiment
from nxgid.experiment.logbook import scan_extra
from nxgid.workflow import queue
from nxgid.workflow.database import WorkflowDB
from nxgid.workflow.tasks import InputsMissing, TaskContext, run_task

log = logging.getLogger("nxgid.workflow")

#: Seconds between looks at an empty queue while other tasks still run (or with wait).
POLL_S = 0.5
#: With wait: seconds before a task found waiting for its inputs is tried again.
RECHECK_S = 10.0


class Deferred:
    """Tasks this worker found waiting for their inputs (given back to the queue, the
    attempt not counted): not claimed again in this run, or (waiting for new work) not
    before ``RECHECK_S`` seconds."""

    def __init__(self, wait: bool) -> None:
        self.wait = wait
        self.since: dict[int, float] = {}

    def add(self, db: WorkflowDB, claimed: queue.ClaimedTask, exc: BaseException,
            on_event: TaskEvent | None) -> None:
        queue.defer(db, claimed.id, str(exc))
        self.since[claimed.id] = time.monotonic()
        log.info("%s waits for its input: %s", claimed.task, exc,
                 extra=scan_extra(claimed.scan, claimed.entry or None))
        if on_event is not None:
            on_event(claimed, "waiting", str(exc))

    def done(self, task_id: int) -> None:
        self.since.pop(task_id, None)

    def excluded(self) -> list[int]:
        now = time.monotonic()
        return [task for task, since in self.since.items()
                if not self.wait or now - since < RECHECK_S]


@dataclass
class WorkerReport:
    done: int = 0
    failed: int = 0
    retried: int = 0
    requeued: int = 0
    #: Tasks left queued because their inputs are not there (yet).
    waiting: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


#: Called after every task: (claimed task, "done" | "failed" | "queued", detail or error).
TaskEvent = Callable[[queue.ClaimedTask, str, str], None]


class _Heartbeat(threading.Thread):
    """Keeps a claimed task's heartbeat while the task runs in the main thread."""

    def __init__(self, db: WorkflowDB, task_id: int, every_s: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{task_id}")
        self.db, self.task_id, self.every_s = db, task_id, every_s
        self.stopped = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            try:
                if not queue.heartbeat(self.db, self.task_id):
                    self.lost = True
            except Exception as exc:  # a database hiccup must not kill the task
                log.warning("heartbeat of task %d failed: %s", self.task_id, exc)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def one_line(exc: BaseException) -> str:
    """The first line of *exc*; an unexpected exception keeps its type in front."""
    text = str(exc).strip().splitlines()
    if text and isinstance(exc, NxgidError):
        return text[0]
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def record_failure(db: WorkflowDB, claimed: queue.ClaimedTask, exc: BaseException, *,
                   max_attempts: int, report: WorkerReport, on_event: TaskEvent | None,
                   record: bool = True) -> None:
    """Log a failed attempt with its traceback and record it: queued again while
    attempts remain, else failed (not recorded when the task was lost meanwhile)."""
    extra = scan_extra(claimed.scan, claimed.entry or None)
    error = one_line(exc)
    log.error("%s failed (attempt %d): %s", claimed.task, claimed.attempts, error,
              extra=extra)
    log.debug("%s", "".join(traceback.format_exception(exc)), extra=extra)
    if not record:
        return
    # an expected error comes from the inputs and would come again (NxgidError.retryable);
    # anything else, which may pass, is tried again
    final = not getattr(exc, "retryable", True)
    status = queue.fail(db, claimed.id, error, max_attempts=claimed.attempts if final
                        else max_attempts)
    if status == "failed":
        report.failed += 1
        report.errors.append(f"{claimed.scan} {claimed.task} {claimed.entry}: {error}")
    else:
        report.retried += 1
    if on_event is not None:
        on_event(claimed, status, error)


def record_success(db: WorkflowDB, claimed: queue.ClaimedTask, signature: str, detail: str,
                   *, report: WorkerReport, on_event: TaskEvent | None,
                   host: str | None = None, pid: int | None = None,
                   inputs: Mapping[str, str] | None = None) -> None:
    """Record a task done with its signature and the *inputs* parts it was made of."""
    queue.finish(db, claimed.id, signature=signature, detail=detail, host=host, pid=pid,
                 inputs=inputs)
    report.done += 1
    if on_event is not None:
        on_event(claimed, "done", detail)


def work(db: WorkflowDB, ctx: TaskContext, *, tasks: Sequence[str] | None = None,
         wait: bool = False, stop: threading.Event | None = None,
         on_event: TaskEvent | None = None, on_claim: Callable | None = None
         ) -> WorkerReport:
    """Run tasks until the queue is drained (see the module docstring)."""
    server = ctx.settings.server
    stop = stop or threading.Event()
    report = WorkerReport()
    start = time.perf_counter()
    host = socket.gethostname()
    deferred = Deferred(wait)
    while not stop.is_set():
        report.requeued += len(queue.requeue_expired(
            db, timeout_s=server.heartbeat_timeout_s, max_attempts=server.max_attempts))
        exclude = deferred.excluded()
        claimed = queue.claim(db, tasks=tasks, host=host, exclude=exclude)
        if claimed is None:
            if not wait and queue.queue_state(db, tasks, exclude).idle:
                break
            stop.wait(POLL_S)
            continue
        if on_claim is not None:
            on_claim(claimed)
        extra = scan_extra(claimed.scan, claimed.entry or None)
        log.info("%s started (attempt %d) on %s pid %d", claimed.task, claimed.attempts,
                 host, os.getpid(), extra=extra)
        beat = _Heartbeat(db, claimed.id, server.heartbeat_s)
        beat.start()
        try:
            outcome = run_task(ctx, claimed.scan, claimed.task, claimed.entry,
                               overwrite=claimed.overwrite)
        except KeyboardInterrupt:
            beat.stop()
            queue.release(db, claimed.id)
            log.warning("%s interrupted; given back to the queue", claimed.task, extra=extra)
            raise
        except InputsMissing as exc:
            beat.stop()
            deferred.add(db, claimed, exc, on_event)
            continue
        except Exception as exc:
            beat.stop()
            deferred.done(claimed.id)
            record_failure(db, claimed, exc, max_attempts=server.max_attempts,
                           report=report, on_event=on_event)
            continue
        beat.stop()
        if beat.lost:
            log.warning("%s finished after its task was given to another worker; "
                        "result not recorded", claimed.task, extra=extra)
            continue
        deferred.done(claimed.id)
        record_success(db, claimed, outcome.signature, outcome.detail, report=report,
                       on_event=on_event, inputs=outcome.inputs)
    report.waiting = len(deferred.since)
    report.seconds = time.perf_counter() - start
    return report


# --- worker processes ----------------------------------------------------------------

def worker_main(root: str, site_path: str | None, tasks: Sequence[str] | None,
                wait: bool, parent_pid: int | None = None, errors=None) -> None:
    """Entry point of one worker process: exit status 0, or 2 (an expected error) or 1
    (a bug), the one-line reason put on *errors* for the parent."""
    from nxgid.safety.quiet import route_library_logging
    from nxgid.workflow.orphan import stop_with_parent

    route_library_logging(verbose=0, debug=False)
    if parent_pid is not None:
        stop_with_parent(parent_pid)
    try:
        _serve(root, site_path, tasks, wait)
    except KeyboardInterrupt:
        return
    except NxgidError as exc:
        log.error("worker pid %d stopped: %s", os.getpid(), exc)
        _report(errors, str(exc))
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:
        log.error("worker pid %d stopped: %s\n%s", os.getpid(), one_line(exc),
                  "".join(traceback.format_exception(exc)))
        _report(errors, f"unexpected {one_line(exc)} (a bug in nxgid; the traceback is "
                        "in tasks/nxlogger.log)")
        raise SystemExit(1) from None


def _report(errors, message: str) -> None:
    if errors is not None:
        with contextlib.suppress(Exception):
            errors.put(message)


def _serve(root: str, site_path: str | None, tasks: Sequence[str] | None,
           wait: bool) -> None:
    from nxgid.experiment.logbook import attach
    from nxgid.workflow.workspace import effective_settings

    experiment = Experiment.open(Path(root))
    attach(experiment)
    logging.getLogger("nxgid").setLevel(logging.INFO)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    effective = effective_settings(experiment, site_path=Path(site_path) if site_path
                                   else None)
    ctx = TaskContext(experiment, effective)
    with WorkflowDB.open(experiment, effective.settings) as db, \
            contextlib.suppress(KeyboardInterrupt):
        work(db, ctx, tasks=tasks, wait=wait, stop=stop)


def start_workers(experiment: Experiment, count: int, *, site_path: Path | None = None,
                  tasks: Sequence[str] | None = None, wait: bool = False, errors=None
                  ) -> list[multiprocessing.Process]:
    """Start *count* worker processes; each puts its one-line error on *errors* (a
    ``SimpleQueue`` of the spawn context) when it stops on one."""
    context = multiprocessing.get_context("spawn")
    try:
        os.getcwd()
    except FileNotFoundError:  # the current directory was removed (e.g. `demo --overwrite`
        os.chdir(experiment.root)  # run from inside the old demo): spawn needs one
    processes = []
    for _ in range(count):
        process = context.Process(
            target=worker_main, daemon=False,
            args=(str(experiment.root), str(site_path) if site_path else None,
                  list(tasks) if tasks else None, wait, os.getpid(), errors))
        process.start()
        processes.append(process)
    return processes


def run_workers(experiment: Experiment, count: int, *, site_path: Path | None = None,
                tasks: Sequence[str] | None = None, wait: bool = False,
                on_tick: Callable[[], None] | None = None, tick_s: float = 1.0) -> list[int]:
    """Run *count* worker processes until they all stop; returns their exit codes.
    Ctrl-C stops them (each gives its running task back). A worker that stopped on an
    error makes this raise it, as one line, once they have all stopped."""
    errors = multiprocessing.get_context("spawn").SimpleQueue()
    processes = start_workers(experiment, count, site_path=site_path, tasks=tasks, wait=wait,
                              errors=errors)
    try:
        while any(p.is_alive() for p in processes):
            for process in processes:
                process.join(timeout=tick_s / max(len(processes), 1))
            if on_tick is not None:
                on_tick()
    except KeyboardInterrupt:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join()
    messages = []
    while not errors.empty():
        messages.append(errors.get())
    if messages:
        more = f" ({len(messages) - 1} more worker(s) stopped too)" if len(messages) > 1 \
            else ""
        raise NxgidError(f"{messages[0]}{more}")
    return [p.exitcode if p.exitcode is not None else -1 for p in processes]
