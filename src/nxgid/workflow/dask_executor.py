"""Run queued tasks on a Dask cluster: ``nxgid reduce --now --executor dask``.

The client process (the one that calls :func:`run_dask`) owns the workflow database; the
Dask workers never open it. The client loops like :func:`nxgid.workflow.worker.work`:

- give back tasks whose worker went silent (:func:`queue.requeue_expired`);
- claim tasks (with the client's host and pid) while fewer are in flight than the
  cluster has worker threads (at least one, so a cluster whose workers are still starting
  gets a task to wait for), and submit each as a plain function call
  :func:`_run_remote` (``pure=False``, a unique key) that opens the experiment on the
  worker, runs :func:`nxgid.workflow.tasks.run_task` and returns plain values;
- keep the heartbeat of every in-flight task from the client every ``[server]
  heartbeat_s`` while its future runs (queued in Dask or running);
- record done with the signature and its parts (host and pid of the Dask worker that
  ran it; the detail ends with ``[dask worker HOST:PID]``) or a failed attempt, queued
  again until ``[server] max_attempts``.

It stops when nothing is claimable, nothing is in flight and nothing runs elsewhere
(with *wait*, it keeps polling until stopped). Ctrl-C or *stop* cancels the futures and
gives the in-flight tasks back to the queue (the attempt is not counted).

One writer per output file: each task writes only its own outputs (the reduced file
``<scan>/fN_reduced.nxs``, built under a temporary name and published by rename, its
previews, the
summed stacks of its scan; edits of the shared scan file are serialised by
:func:`nxgid.experiment.locks.file_lock`), and the database hands each task to exactly
one executor — this client or a local worker, never both. No HDF5 object crosses a
process boundary: the remote call takes strings and returns strings and numbers.

Dask is imported only here, inside functions: importing nxgid does not import dask.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nxgid.errors import NxgidError
from nxgid.experiment.logbook import scan_extra
from nxgid.workflow import queue
from nxgid.workflow.database import WorkflowDB
from nxgid.workflow.tasks import InputsMissing, TaskContext
from nxgid.workflow.worker import (
    POLL_S,
    Deferred,
    TaskEvent,
    WorkerReport,
    one_line,
    record_failure,
    record_success,
)

log = logging.getLogger("nxgid.workflow")

#: The scheduler address meaning "start a LocalCluster here for this run".
LOCAL = "dask-local"
#: The scheduler of a dask-local cluster: no dashboard, and its HTTP endpoints (health,
#: metrics) on a free loopback port instead of 8787 (taken by another cluster → a warning).
LOCAL_SCHEDULER = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}
#: Seconds to wait for a scheduler to answer before giving up.
CONNECT_TIMEOUT_S = 10.0
#: Room kept at the end of a task's detail for the worker that ran it.
_DETAIL_LENGTH = 255


# --- on the Dask worker --------------------------------------------------------------

def _run_remote(root: str, site_path: str | None, sample: str, label: str, scan: str,
                task: str, entry: str, overwrite: bool
                ) -> tuple[str, str, str, int, dict[str, str]]:
    """Run one task on a Dask worker; returns (signature, detail, host, pid, inputs: the
    signature's parts).

    Opens the experiment at *root* (the same path must be visible on the worker) with
    the site settings at *site_path*; never touches the workflow database.
    """
    from nxgid.experiment.layout import Experiment, ScanRef
    from nxgid.experiment.logbook import attach
    from nxgid.workflow.tasks import run_task
    from nxgid.workflow.workspace import effective_settings

    host, pid = socket.gethostname(), os.getpid()
    if site_path is not None and not Path(site_path).is_file():
        raise NxgidError(f"site settings {site_path} not found on dask worker {host}: the "
                         "workers need the client's file system at the same paths")
    experiment = Experiment.open(Path(root))
    attach(experiment)  # once per process: the task's log lines go to the experiment log
    effective = effective_settings(experiment, site_path=Path(site_path) if site_path
                                   else None)
    ref = ScanRef(sample, label, scan)
    log.info("%s started on dask worker %s pid %d", task, host, pid,
             extra=scan_extra(ref, entry or None))
    result = run_task(TaskContext(experiment, effective), ref, task, entry,
                      overwrite=overwrite)
    return (str(result.signature), str(result.detail), host, pid,
            {str(k): str(v) for k, v in result.inputs.items()})


def where_ran(detail: str, host: str, pid: int) -> str:
    """A task's detail with the Dask worker that ran it, within the detail column."""
    suffix = f" [dask worker {host}:{pid}]"
    room = _DETAIL_LENGTH - len(suffix)
    if len(detail) > room:
        detail = detail[:max(room - 1, 0)] + "…"
    return (detail + suffix)[-_DETAIL_LENGTH:]


# --- in the client -------------------------------------------------------------------

@contextlib.contextmanager
def _client(scheduler: str, workers: int) -> Iterator:
    """A ``distributed.Client`` on *scheduler*, or on a LocalCluster for ``dask-local``;
    closed (with the cluster) on the way out."""
    from distributed import Client, LocalCluster

    if scheduler == LOCAL:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, scheduler_kwargs=LOCAL_SCHEDULER)
        try:
            client = Client(cluster, set_as_default=False)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, ValueError, TypeError) as exc:
        raise NxgidError(f"cannot reach the Dask scheduler {scheduler}: "
                         f"{one_line(exc)}") from None
    try:
        yield client
    finally:
        client.close()


@dataclass
class _InFlight:
    claimed: queue.ClaimedTask
    lost: bool = False


class _Heartbeats(threading.Thread):
    """Keeps the heartbeat of every in-flight task while its future runs."""

    def __init__(self, db: WorkflowDB, every_s: float) -> None:
        super().__init__(daemon=True, name="dask-heartbeats")
        self.db, self.every_s = db, every_s
        self.lock = threading.Lock()
        self.tasks: dict[int, _InFlight] = {}
        self.stopped = threading.Event()

    def add(self, flight: _InFlight) -> None:
        with self.lock:
            self.tasks[flight.claimed.id] = flight

    def remove(self, flight: _InFlight) -> None:
        with self.lock:
            if self.tasks.get(flight.claimed.id) is flight:
                del self.tasks[flight.claimed.id]

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            with self.lock:
                flights = list(self.tasks.values())
            for flight in flights:
                try:
                    if not queue.heartbeat(self.db, flight.claimed.id):
                        flight.lost = True
                except Exception as exc:  # a database hiccup must not kill the run
                    log.warning("heartbeat of task %d failed: %s", flight.claimed.id, exc)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def _capacity(client) -> int:
    """Tasks to keep in flight: the cluster's worker threads, at least one."""
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception as exc:  # the scheduler went away: the next submit will tell
        log.warning("cannot ask the Dask scheduler for its workers: %s", exc)
        return 1


def run_dask(db: WorkflowDB, ctx: TaskContext, scheduler: str, *,
             tasks: Sequence[str] | None = None, wait: bool = False, workers: int = 2,
             on_event: TaskEvent | None = None, stop: threading.Event | None = None
             ) -> WorkerReport:
    """Run queued tasks on the Dask cluster at *scheduler* (``tcp://HOST:PORT``) or on a
    local one of *workers* processes (``dask-local``); see the module docstring."""
    scheduler = scheduler.strip()
    if not scheduler:
        raise NxgidError("--executor dask needs a scheduler: tcp://HOST:PORT or dask-local")
    start = time.perf_counter()
    with _client(scheduler, workers) as client:
        report = _drive(db, ctx, client, scheduler, tasks=tasks, wait=wait,
                        on_event=on_event, stop=stop or threading.Event())
    report.seconds = time.perf_counter() - start
    return report


def _drive(db: WorkflowDB, ctx: TaskContext, client, scheduler: str, *,
           tasks: Sequence[str] | None, wait: bool, on_event: TaskEvent | None,
           stop: threading.Event) -> WorkerReport:
    server = ctx.settings.server
    report = WorkerReport()
    deferred = Deferred(wait)
    host, pid = socket.gethostname(), os.getpid()
    root = str(ctx.experiment.root)
    site = getattr(getattr(ctx.effective, "site_file", None), "path", None)
    site_path = str(Path(site).resolve()) if site and Path(site).is_file() else None
    inflight: dict = {}  # future -> _InFlight
    wake = threading.Event()
    beats = _Heartbeats(db, server.heartbeat_s)
    beats.start()

    def submit(claimed: queue.ClaimedTask) -> None:
        extra = scan_extra(claimed.scan, claimed.entry or None)
        key = f"nxgid-{claimed.task}-{claimed.id}-{claimed.attempts}-{uuid.uuid4().hex[:8]}"
        flight = _InFlight(claimed)
        for earlier in inflight.values():  # given back after a lapse and claimed again:
            if earlier.claimed.id == claimed.id:  # only the newest attempt counts
                earlier.lost = True
        beats.add(flight)
        try:
            future = client.submit(_run_remote, root, site_path, claimed.scan.sample,
                                   claimed.scan.label, claimed.scan.scan, claimed.task,
                                   claimed.entry, claimed.overwrite, key=key, pure=False)
        except BaseException:
            beats.remove(flight)
            queue.release(db, claimed.id)
            raise
        inflight[future] = flight
        future.add_done_callback(lambda _: wake.set())
        log.info("%s sent to dask scheduler %s (attempt %d) by %s pid %d", claimed.task,
                 scheduler, claimed.attempts, host, pid, extra=extra)

    def settle(future, flight: _InFlight) -> None:
        claimed = flight.claimed
        extra = scan_extra(claimed.scan, claimed.entry or None)
        beats.remove(flight)
        try:
            signature, detail, worker_host, worker_pid, inputs = future.result()
        except InputsMissing as exc:
            if not flight.lost:
                deferred.add(db, claimed, exc, on_event)
            return
        except Exception as exc:
            deferred.done(claimed.id)
            record_failure(db, claimed, exc, max_attempts=server.max_attempts,
                           report=report, on_event=on_event, record=not flight.lost)
            return
        finally:
            future.release()
        if flight.lost:
            log.warning("%s finished after its task was given to another worker; "
                        "result not recorded", claimed.task, extra=extra)
            return
        deferred.done(claimed.id)
        record_success(db, claimed, signature, where_ran(detail, worker_host, worker_pid),
                       report=report, on_event=on_event, host=worker_host, pid=worker_pid,
                       inputs=inputs)

    try:
        while not stop.is_set():
            report.requeued += len(queue.requeue_expired(
                db, timeout_s=server.heartbeat_timeout_s, max_attempts=server.max_attempts))
            capacity = _capacity(client)
            while len(inflight) < capacity and not stop.is_set():
                claimed = queue.claim(db, tasks=tasks, host=host, pid=pid,
                                      exclude=deferred.excluded())
                if claimed is None:
                    break
                submit(claimed)
            if not inflight:
                if not wait and queue.queue_state(db, tasks, deferred.excluded()).idle:
                    break
                stop.wait(POLL_S)
                continue
            wake.clear()
            finished = [f for f in inflight if f.done()]
            if not finished:
                _wait_either(wake, stop, POLL_S)
                continue
            for future in finished:
                settle(future, inflight.pop(future))
    finally:
        beats.stop()
        if inflight:
            _abandon(db, client, inflight)
    report.waiting = len(deferred.since)
    return report


def _wait_either(wake: threading.Event, stop: threading.Event, timeout_s: float) -> None:
    """Until a future is done, *stop* is set or *timeout_s* passed (stop seen in 0.1 s)."""
    deadline = time.monotonic() + timeout_s
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or wake.wait(min(left, 0.1)):
            return


def _abandon(db: WorkflowDB, client, inflight: dict) -> None:
    """Stopped (Ctrl-C, *stop*, an error): cancel the futures and give their tasks back.
    A task already running on a worker of an external cluster runs to its end there (Dask
    cannot interrupt a Python call); its output goes through a partial file renamed into
    place, so the redo of the task cannot meet a half-written file."""
    with contextlib.suppress(Exception):
        client.cancel(list(inflight))
    for flight in inflight.values():
        claimed = flight.claimed
        try:
            queue.release(db, claimed.id)
        except Exception as exc:  # leave it to requeue_expired
            log.warning("could not give task %d back: %s", claimed.id, exc)
            continue
        log.warning("%s interrupted; given back to the queue", claimed.task,
                    extra=scan_extra(claimed.scan, claimed.entry or None))
    inflight.clear()
