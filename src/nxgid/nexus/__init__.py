"""NeXus files written and read by nxgid."""
