"""Detector frames in: image series read lazily, in constant memory, from fabio formats,
HDF5/NeXus stacks and Eiger masters (:mod:`~nxgid.images.series`), and synthetic frames
with a known reciprocal-space truth, the ground truth of the tests and the demo
(:mod:`~nxgid.images.simulate`)."""
