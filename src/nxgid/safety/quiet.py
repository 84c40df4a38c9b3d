"""Third-party libraries speak through logging, and only when asked.

fabio, pyFAI, silx and h5py log warnings (and the odd traceback) to stderr through
Python's last-resort handler, so a failing command printed their lines before its own
``error:`` line. :func:`route_library_logging` gives the root logger one handler that
shows their records, prefixed with the library's name, only with ``-v`` (warnings) or
``-vv``/``--debug`` (everything); Python warnings go the same way.

:func:`library_errors` collects the error records a library logs while the calling
thread reads one file, so that the caller can turn "Data stream is incomplete" or
"Checksum of binary data mismatch" into one ``error:`` line naming the file, instead of
the library's silent repair (zero padding, a best guess).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress

#: Loggers of the libraries whose records go through :class:`_LibraryHandler`.
LIBRARIES = ("fabio", "pyFAI", "silx", "h5py", "PIL", "matplotlib", "hdf5plugin",
             "numexpr", "nexusformat", "pynxtools", "alembic", "sqlalchemy", "py.warnings")

_local = threading.local()


class _Collector(logging.Handler):
    """On each library's logger: hands its error records to the thread's
    :func:`library_errors` list, if there is one (shows nothing)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        collector = getattr(_local, "errors", None)
        if collector is not None:
            collector.append(_first_line(record.getMessage()))


class _LibraryHandler(logging.Handler):
    """On the root logger (commands only): shows library records at or above
    ``shown_level`` on stderr, one line each unless tracebacks are asked for."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.shown_level = logging.CRITICAL + 1
        self.tracebacks = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] == "nxgid" or record.levelno < self.shown_level:
            return
        import sys

        text = record.getMessage() if self.tracebacks else _first_line(record.getMessage())
        if self.tracebacks and record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        name = record.name.split(".")[0]
        with suppress(OSError, ValueError):
            sys.stderr.write(f"{record.levelname.lower()}: [{name}] {text}\n")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


_collector = _Collector()


def _install_collector() -> None:
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        if _collector not in logger.handlers:
            logger.addHandler(_collector)


def _handler() -> _LibraryHandler:
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, _LibraryHandler):
            return handler
    handler = _LibraryHandler()
    root.addHandler(handler)
    return handler


def route_library_logging(verbose: int = 0, debug: bool = False) -> None:
    """Library records: hidden by default, warnings and up with ``-v``, all with ``-vv``
    or ``--debug`` (then with tracebacks)."""
    handler = _handler()
    handler.shown_level = (logging.DEBUG if verbose >= 2 or debug else
                           logging.WARNING if verbose == 1 else logging.CRITICAL + 1)
    handler.tracebacks = debug
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose >= 2 or debug else logging.WARNING)
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        for own in list(logger.handlers):  # a library's own stream handler
            if type(own) is logging.StreamHandler:
                logger.removeHandler(own)
        logger.propagate = True
    _install_collector()
    logging.captureWarnings(True)
    warnings.simplefilter("default")


@contextmanager
def library_errors() -> Iterator[list[str]]:
    """The error records libraries log in this thread inside the block (first lines)."""
    _install_collector()
    previous = getattr(_local, "errors", None)
    _local.errors = collected = []
    try:
        yield collected
    finally:
        _local.errors = previous
