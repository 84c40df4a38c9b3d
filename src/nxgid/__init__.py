"""nxgid: grazing-incidence x-ray scattering experiments, from detector images to NeXus files.

The package reads like a map, each layer importing only the ones before it::

    errors, units, names  foundation: one-line user errors, units, every shared name
    safety                outputs never meet inputs, read deadlines, quiet libraries
    geometry, images      detector/sample geometry (pyFAI); frames read or simulated
    conversion, plot      frames → maps and profiles; pictures of them
    nexus                 the NeXus format (writer, reader, metadata, validators, convert)
    settings              typed site/experiment settings
    experiment            the workspace: layout, configurations, calibration, masks,
                          stacks, scans, sums, recipes
    beamlines, workflow   beamline plugins; the workflow database, tasks and workers
    demo                  a complete example beamtime built from the layers above
    cli                   the ``nxgid`` command: parses, calls the layers below, prints

Heavy dependencies (SQLAlchemy, h5py, pyFAI) are imported where they are used, so that
``import nxgid`` and ``nxgid --help`` stay instant.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nxgid")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
