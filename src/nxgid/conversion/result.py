"""A converted result: intensity, errors and counts on named axes, with provenance."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nxgid.conversion.grid import Axis


@dataclass
class Result:
    """One result (e.g. ``img_gid_q``) for a stack of frames.

    ``intensity`` and ``errors`` have shape (frames, y bins, x bins) for maps and
    (frames, x bins) for profiles; bins no pixel reaches are NaN (the GI missing wedge
    stays empty). ``axes`` are in the order of the array's dimensions after the frame:
    (y, x) for a map — e.g. (q_z, q_xy) — and (x,) for a profile. ``counts`` is the
    number of pixels per bin (before frame-wise exclusion of pixels outside the valid
    count range).
    """

    name: str
    axes: tuple[Axis, ...]
    intensity: np.ndarray
    errors: np.ndarray | None
    counts: np.ndarray
    #: What was applied, with parameters: corrections, method, mask, geometry, sample.
    process: dict = field(default_factory=dict)
    #: Per-frame values (incidence angle, monitor, …), each of length ``frames``.
    frame_values: dict[str, np.ndarray] = field(default_factory=dict)
    #: Σ signal and Σ normalisation per frame and bin (float64), when asked for.
    signal_sum: np.ndarray | None = None
    norm_sum: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.intensity.shape[0])

    @property
    def is_map(self) -> bool:
        return len(self.axes) == 2

    @property
    def x_axis(self) -> Axis:
        """The horizontal axis: the last dimension of the array."""
        return self.axes[-1]

    @property
    def y_axis(self) -> Axis:
        """The vertical axis of a map: the dimension after the frame."""
        if not self.is_map:
            raise ValueError(f"{self.name} is a profile: it has no y axis")
        return self.axes[0]

    def axis(self, name: str) -> Axis:
        for axis in self.axes:
            if axis.name == name:
                return axis
        raise KeyError(name)

    def to_xarray(self):
        """An ``xarray.DataArray`` (needs xarray: ``pip install 'nxgid[analysis]'``)."""
        try:
            import xarray as xr
        except ModuleNotFoundError:  # pragma: no cover - depends on the installation
            from nxgid.errors import NxgidError

            raise NxgidError("to_xarray needs xarray: pip install 'nxgid[analysis]'") \
                from None
        dims = ["frame", *(a.name for a in self.axes)]
        coords = {a.name: (a.name, a.centres, {"units": a.unit if a.is_q else "deg"})
                  for a in self.axes}
        coords["frame"] = ("frame", np.arange(self.frames))
        for key, values in self.frame_values.items():
            coords[key] = ("frame", np.asarray(values))
        array = xr.DataArray(self.intensity, dims=dims, coords=coords, name=self.name,
                             attrs={"process": str(self.process)})
        if self.errors is not None:
            array.attrs["has_errors"] = True
            return xr.Dataset({self.name: array,
                               f"{self.name}_errors": (dims, self.errors)})
        return array
