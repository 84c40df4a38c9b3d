"""A worker process stops when the ``nxgid workers`` process that started it dies.

Without this, killing the parent (SIGKILL, a closed terminal, a crashed batch job) leaves
its workers claiming tasks with nobody to report to. Each worker asks Linux to send it
SIGINT when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and, everywhere, a daemon thread
polls ``os.getppid()`` once a second and sends the same signal. SIGINT arrives in the main
thread as KeyboardInterrupt, which the worker loop already answers by giving the running
task back to the queue before it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
POLL_S = 1.0


def _ask_kernel() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the poll below still catches it


def stop_with_parent(parent_pid: int) -> None:
    """Interrupt this process (SIGINT) once *parent_pid* is no longer its parent."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _ask_kernel()
    if os.getppid() != parent_pid:  # the parent died before we could ask
        os.kill(os.getpid(), signal.SIGINT)

    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(POLL_S)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
