"""Pictures: results as maps and profiles with axis units (:mod:`~nxgid.plot.results`)."""
