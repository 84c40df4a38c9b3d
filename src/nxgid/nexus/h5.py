"""The small h5py helpers of nxgid: writing fields and groups, and opening a file of the
experiment (a configuration, a scan file) with the error contract."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nxgid.errors import BusyError, MissingError, NxgidError

_MISSING_OBJECT = re.compile(r"object '([^']*)' doesn't exist")


@contextlib.contextmanager
def opened(path: Path, mode: str = "r", *, what: str, **kwargs) -> Iterator:
    """``h5py.File(path, mode)``, whose failures become one line naming *what* and the
    file: not HDF5, cut short, locked, or (inside the block) lacking a group or field it
    should hold."""
    import h5py
    import hdf5plugin  # noqa: F401  (registers the compression filters)

    path = Path(path)
    try:
        handle = h5py.File(path, mode, **kwargs)
    except FileNotFoundError:
        raise MissingError(f"{what} {path} does not exist") from None
    except BlockingIOError:
        raise BusyError(f"{what} {path} is open for writing in another process; try "
                         "again when it is closed") from None
    except OSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "file signature not found" in reason:
            reason = "not an HDF5 file"
        elif "truncated file" in reason:
            reason = "cut short (truncated HDF5 file)"
        raise NxgidError(f"{what} {path}: cannot be opened: {reason}") from None
    try:
        yield handle
    except KeyError as exc:
        found = _MISSING_OBJECT.search(str(exc))
        if found is None and "Unable to synchronously open object" not in str(exc):
            raise
        name = found.group(1) if found else str(exc)
        raise NxgidError(f"{what} {path}: has no '{name}'; it is not a complete nxgid "
                         f"{what} (made by another program, or damaged)") from None
    finally:
        handle.close()


def nx_group(parent, name: str, nx_class: str):
    """The group *name* of *parent* (created if missing), with its ``NX_class``."""
    group = parent.require_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def nx_field(group, name: str, value, units: str | None = None, **attrs):
    """A field with its value (replacing an existing one), ``@units`` and attributes;
    strings (and lists of them) become variable-length UTF-8, the rest numpy values."""
    import h5py

    if name in group:
        del group[name]
    if isinstance(value, str):
        data = value
    elif isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        data = np.array(value, dtype=h5py.string_dtype())
    else:
        data = np.asarray(value)
    dataset = group.create_dataset(name, data=data)
    if units:
        dataset.attrs["units"] = units
    for key, attr in attrs.items():
        dataset.attrs[key] = attr
    return dataset
