"""Beamline plugins: the interface (base), discovery and the built-in beamlines."""
