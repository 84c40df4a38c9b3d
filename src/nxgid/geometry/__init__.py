"""Geometry: detector and beam (from pyFAI), sample, and per-pixel coordinates."""

from nxgid.geometry.coordinates import PixelCoordinates, SampleGeometry, pixel_coordinates
from nxgid.geometry.detector import DetectorGeometry

__all__ = ["DetectorGeometry", "PixelCoordinates", "SampleGeometry", "pixel_coordinates"]
