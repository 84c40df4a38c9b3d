"""The example beamtime of ``nxgid demo``, built from the layers below it.

- :mod:`~nxgid.demo.beamtime` runs it, step by step;
- :mod:`~nxgid.demo.setup` makes the experiment, its configuration, calibration and scans;
- :mod:`~nxgid.demo.conversion` the stand-alone conversions and their previews;
- :mod:`~nxgid.demo.live` the live step (frames reduced as they land);
- :mod:`~nxgid.demo.safety` the data-safety step;
- :mod:`~nxgid.demo.bins_figure` the before/after picture of the default bins.
"""
