"""Errors a user can cause and fix.

Every expected failure (a bad name, a missing file, an invalid value, a command run
outside an experiment) raises a :class:`NxgidError` whose message is one line naming the
thing and what was expected. The CLI prints it as ``error: <message>`` and exits with
status 2; anything else is a bug and keeps its traceback under ``--debug``.
"""

from __future__ import annotations


class NxgidError(Exception):
    """An expected error with a one-line, user-facing message."""

    exit_code = 2
    #: Whether a workflow task that failed with it is tried again (up to ``[server]
    #: max_attempts``). An expected error comes from the task's inputs — a missing
    #: monitor, an unreadable file, a bad value — which another attempt does not change,
    #: so it fails the task at once; the subclasses for what passes (a file in use, a
    #: locked database, a slow read) say True. Unexpected exceptions are always retried.
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidNameError(NxgidError, ValueError):
    """A sample, label, scan or experiment name breaks the naming rule."""


class SettingsError(NxgidError, ValueError):
    """A settings file, section, key or value is invalid."""


class NotInExperimentError(NxgidError):
    """A command that needs an experiment was run outside of one."""


class ExistsError(NxgidError, FileExistsError):
    """Something would be overwritten; nxgid never clobbers without being told to."""


class MissingError(NxgidError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class RefusedError(NxgidError):
    """A safety rule refuses the request (a link out of the tree, an output that is an
    input): trying again cannot help, so a task failing with it is not retried."""

    retryable = False


class BusyError(NxgidError):
    """Something is in use by another process right now (an HDF5 file open for writing):
    the same request may succeed a moment later, so a task failing with it is retried."""

    retryable = True


class DatabaseError(NxgidError):
    """The workflow database cannot be reached or has an unexpected schema."""

    retryable = True  # a lock held too long, a server restarting
