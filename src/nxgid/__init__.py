"""nxgid: grazing-incidence x-ray scattering experiments, from detector images to NeXus files.

The package reads like a map, each layer importing only the ones before it::

    errors, settings      foundation: one-line user errors, typed site/experiment settings
    geometry, conversion  detector/sample geometry (pyFAI); frames → maps and profiles
    images, nexus         image series in; the NeXus format (writer, reader, metadata) out
    convert, plot         images → NeXus file (``nxgid convert``); pictures of results
    experiment            the experiment tree and every path-naming rule
    workflow              the workflow database, task queue and experiment log
    demo                  a complete example beamtime built from the layers above
    cli                   the ``nxgid`` command: parses, calls the layers above, prints

Heavy dependencies (SQLAlchemy, h5py, pyFAI) are imported where they are used, so that
``import nxgid`` and ``nxgid --help`` stay instant.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nxgid")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
