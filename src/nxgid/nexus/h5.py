"""The two small h5py helpers every NeXus writer of nxgid uses."""

from __future__ import annotations

import numpy as np


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
