"""Detector and beam geometry, read from PONI files or given by hand, computed by pyFAI.

nxgid never re-derives PONI maths: pixel positions come from pyFAI's ``Geometry``
(pixel centres at (i + ½)·pixel size, PONI 2.1 detector ``orientation`` honoured).
Positions are in pyFAI's laboratory frame, in metres, from the sample:

* ``z`` along the incident beam,
* ``y`` vertical, up (pyFAI's axis 1, detector rows),
* ``x`` horizontal (pyFAI's axis 2, detector columns), such that ``(x, y, z)`` is
  right-handed: looking downstream, +x points to the left.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from nxgid.errors import MissingError, NxgidError
from nxgid.units import energy_keV_to_wavelength_A


@dataclass(frozen=True, eq=False)
class DetectorGeometry:
    """A detector at a place in the beam: pyFAI geometry plus convenient accessors."""

    #: The pyFAI geometry (``pyFAI.geometry.Geometry`` or an integrator).
    pyfai: Any
    #: Where it came from, for provenance ("manual" or the PONI path).
    source: str = "manual"
    _cache: dict = field(default_factory=dict, repr=False)

    # --- construction ---------------------------------------------------------------

    @classmethod
    def from_poni(cls, path: str | Path) -> DetectorGeometry:
        """Any PONI version (1, 2, 2.1 with detector orientation, non-square pixels)."""
        from nxgid.geometry.poni import check_poni
        from nxgid.safety.paths import check_regular_file

        path = Path(path)
        if not path.exists():
            raise MissingError(f"PONI file {path} does not exist")
        check_regular_file(path, "a PONI file")
        keys = check_poni(path)
        from pyFAI.geometry import Geometry

        geometry = Geometry()
        try:
            geometry.load(path)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "is unknown" in reason:
                reason = (f"detector {keys.get('Detector', '')!r} is not in pyFAI's "
                          "detector database")
            raise NxgidError(f"PONI file {path} cannot be read: {reason}") from None
        return cls(geometry, source=str(path))

    @classmethod
    def from_parameters(
        cls,
        *,
        detector: str | Any = "Pilatus2M",
        distance_m: float,
        wavelength_A: float | None = None,
        energy_keV: float | None = None,
        poni1_m: float | None = None,
        poni2_m: float | None = None,
        beam_center_px: tuple[float, float] | None = None,
        rot1_rad: float = 0.0,
        rot2_rad: float = 0.0,
        rot3_rad: float = 0.0,
        pixel_size_m: tuple[float, float] | None = None,
        shape: tuple[int, int] | None = None,
        orientation: int | None = None,
    ) -> DetectorGeometry:
        """Manual geometry.

        ``beam_center_px`` is (row, column) of the point of normal incidence in pixel
        units, i.e. ``poni = (beam_center + 0) · pixel size`` — with pixel centres at
        (i + ½)·size, the centre of pixel (r, c) lies at beam centre (r + ½, c + ½).
        A detector is a pyFAI name, or give ``pixel_size_m`` (rows, columns) and ``shape``.
        """
        import pyFAI
        from pyFAI.detectors import Detector
        from pyFAI.geometry import Geometry

        if (wavelength_A is None) == (energy_keV is None):
            raise NxgidError("geometry: give exactly one of wavelength_A and energy_keV")
        if wavelength_A is None:
            wavelength_A = energy_keV_to_wavelength_A(float(energy_keV))
        if wavelength_A <= 0:
            raise NxgidError(f"geometry: wavelength {wavelength_A} Å must be positive")
        if distance_m <= 0:
            raise NxgidError(f"geometry: distance {distance_m} m must be positive")
        if pixel_size_m is not None:
            if shape is None:
                raise NxgidError("geometry: a manual detector needs pixel_size_m and shape")
            det = Detector(pixel1=pixel_size_m[0], pixel2=pixel_size_m[1], max_shape=shape,
                           orientation=orientation or 0)
        elif isinstance(detector, str):
            from nxgid.geometry.detectors import check_detector_name

            check_detector_name(detector)
            kwargs = {"config": {"orientation": orientation}} if orientation else {}
            det = pyFAI.detector_factory(detector, **kwargs)
        else:
            det = detector
        if beam_center_px is not None:
            if poni1_m is not None or poni2_m is not None:
                raise NxgidError("geometry: give the PONI or the beam centre, not both")
            poni1_m = beam_center_px[0] * det.pixel1
            poni2_m = beam_center_px[1] * det.pixel2
        if poni1_m is None or poni2_m is None:
            raise NxgidError("geometry: give poni1_m and poni2_m, or beam_center_px")
        geometry = Geometry(dist=distance_m, poni1=poni1_m, poni2=poni2_m, rot1=rot1_rad,
                            rot2=rot2_rad, rot3=rot3_rad, detector=det,
                            wavelength=wavelength_A * 1e-10)
        return cls(geometry)

    # --- properties -----------------------------------------------------------------

    @property
    def detector(self):
        return self.pyfai.detector

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(n) for n in self.detector.shape)  # type: ignore[return-value]

    @property
    def wavelength_A(self) -> float:
        return float(self.pyfai.wavelength) * 1e10

    @property
    def distance_m(self) -> float:
        return float(self.pyfai.dist)

    @property
    def pixel_size_m(self) -> tuple[float, float]:
        return float(self.detector.pixel1), float(self.detector.pixel2)

    @property
    def poni_m(self) -> tuple[float, float]:
        return float(self.pyfai.poni1), float(self.pyfai.poni2)

    @property
    def rotations_rad(self) -> tuple[float, float, float]:
        return float(self.pyfai.rot1), float(self.pyfai.rot2), float(self.pyfai.rot3)

    @property
    def detector_mask(self) -> np.ndarray | None:
        """The detector's own mask (module gaps), True = masked; None if it has none."""
        mask = self.detector.mask
        return None if mask is None else np.asarray(mask, dtype=bool)

    def config(self) -> dict:
        """Everything that defines the geometry, JSON-serialisable (PONI-like)."""
        cfg = self.pyfai.get_config()
        cfg = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in cfg.items()}
        return json.loads(json.dumps(cfg, default=str))

    @cached_property
    def key(self) -> str:
        """A hash of :meth:`config`, for caches."""
        text = json.dumps(self.config(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # --- positions --------------------------------------------------------------------

    def positions_m(self, corners: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, z) in float64 of the pixel centres, shape (rows, cols); with *corners*,
        of the pixel corners: the (rows + 1, cols + 1) grid of corner points shared by
        neighbouring pixels (see :func:`pixel_corners`), or (rows, cols, 4) per pixel for
        a detector whose pixels are not adjacent (pyFAI's own, float32, corners).

        pyFAI's default path computes centres from float32 index arrays, or by bilinear
        interpolation of its float32 corner cache once any corner was asked for (errors
        of 1e-8 m); nxgid passes float64 pixel indices to ``calc_pos_zyx`` instead, with
        pixel centres at index i and corners at i ± ½ (pyFAI adds the half pixel).
        """
        name = "corners" if corners else "centres"
        if name not in self._cache:
            self._cache[name] = self._positions(corners)
        return self._cache[name]

    def _positions(self, corners: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        detector = self.detector
        rows, cols = self.shape
        exact = bool(getattr(detector, "IS_CONTIGUOUS", True)) and \
            bool(getattr(detector, "IS_FLAT", True)) and \
            getattr(detector, "spline", None) is None
        if corners and not exact:
            z, y, x = self.pyfai.calc_pos_zyx(corners=True)
        else:
            offset = -0.5 if corners else 0.0
            d1, d2 = np.meshgrid(np.arange(rows + bool(corners), dtype=np.float64) + offset,
                                 np.arange(cols + bool(corners), dtype=np.float64) + offset,
                                 indexing="ij")
            # a corner cache pyFAI built earlier would replace the exact float64 path by
            # an interpolation of float32 corners: set aside while computing
            cached = getattr(detector, "_pixel_corners", None) if exact else None
            if cached is not None:
                detector._pixel_corners = None
            try:
                z, y, x = self.pyfai.calc_pos_zyx(d1=d1, d2=d2)
            finally:
                if cached is not None:
                    detector._pixel_corners = cached
        return (np.ascontiguousarray(x, dtype=np.float64),
                np.ascontiguousarray(y, dtype=np.float64),
                np.ascontiguousarray(z, dtype=np.float64))

    def solid_angle(self) -> np.ndarray:
        """pyFAI's solid angle per pixel relative to a pixel at the PONI (detector tilt
        included); 1 at the PONI, smaller away from it."""
        if "solid_angle" not in self._cache:
            self._cache["solid_angle"] = np.asarray(self.pyfai.solidAngleArray(), float)
        return self._cache["solid_angle"]

    def save_poni(self, path: str | Path) -> None:
        """Write a PONI file (pyFAI's ``save`` appends to an existing file: written to a
        fresh temporary file, then renamed over *path*)."""
        import os

        path = Path(path)
        from nxgid.safety.partials import clear_stale, partial_path

        clear_stale(path)
        partial = partial_path(path)
        try:
            self.pyfai.save(str(partial))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
