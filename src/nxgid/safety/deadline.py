"""Reads that cannot hang: a third-party reader gets a deadline.

Some readers loop forever on a damaged file (fabio on a CBF cut inside its binary
header keeps reading past the end of the file, at full CPU). :func:`call_with_deadline`
runs such a read in a thread of its own and waits for it at most
:func:`read_timeout_s` seconds. Past that the caller gets :class:`ReadTimeout` (an
``error: …`` naming the file) at once and carries on, while the stuck reader is
interrupted (``PyThreadState_SetAsyncExc``, repeated until it gives up) — which ends a
reader looping in Python, the way such readers hang. Only the reader's own thread is ever
interrupted, never the caller's code. A reader stuck inside a C call cannot be stopped;
its thread is abandoned (it is a daemon thread and dies with the process), so even then
the command reports the file and goes on.

``NXGID_READ_TIMEOUT_S`` in the environment overrides the limit, e.g. for files on a
slow network file system.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from nxgid.errors import NxgidError

#: Seconds a single file read may take before the file is called unreadable.
READ_TIMEOUT_S = 20.0
#: How often, and how many times, a stuck reader is interrupted before it is abandoned.
_INTERRUPT_EVERY_S = 0.2
_INTERRUPTS = 100

T = TypeVar("T")


class ReadTimeout(NxgidError):
    """A reader did not finish in time (a slow file system may be faster next time)."""

    retryable = True

    def __init__(self, message: str = "the reader did not finish in time") -> None:
        super().__init__(message)


def read_timeout_s() -> float:
    """The read limit: ``NXGID_READ_TIMEOUT_S`` if set to a positive number, else
    :data:`READ_TIMEOUT_S`."""
    text = os.environ.get("NXGID_READ_TIMEOUT_S", "")
    try:
        value = float(text) if text else READ_TIMEOUT_S
    except ValueError:
        return READ_TIMEOUT_S
    return value if value > 0 else READ_TIMEOUT_S


def _interrupt_until_done(thread: threading.Thread) -> None:
    """Raise ReadTimeout in *thread* until it ends (a reader may swallow a few)."""
    for _ in range(_INTERRUPTS):
        if not thread.is_alive() or thread.ident is None:
            return
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                   ctypes.py_object(ReadTimeout))
        time.sleep(_INTERRUPT_EVERY_S)


def call_with_deadline(function: Callable[..., T], *args, what: str,
                       seconds: float | None = None, **kwargs) -> T:
    """``function(*args, **kwargs)``, or :class:`ReadTimeout` naming *what* if it does not
    return within *seconds* (default :func:`read_timeout_s`). Its exceptions pass through."""
    limit = read_timeout_s() if seconds is None else seconds
    outcome: list = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, function(*args, **kwargs)))
        except BaseException as exc:  # handed to the caller, or dropped once abandoned
            outcome.append((False, exc))
        finally:
            done.set()

    reader = threading.Thread(target=run, name=f"nxgid-read {what}"[:60], daemon=True)
    reader.start()
    if not done.wait(limit):
        threading.Thread(target=_interrupt_until_done, args=(reader,), daemon=True,
                         name="nxgid-read-interrupt").start()
        raise ReadTimeout(f"{what}: unreadable, the reader did not finish in {limit:g} s "
                          "(a damaged or cut file?)")
    ok, value = outcome[0]
    if ok:
        return value
    raise value
