"""The beamline plugin interface, and discovery through the ``nxgid.beamlines`` entry
point.

A beamline knows how its control system records scans: it lists the raw scans of a
sample/label in the raw tree, says which image files (or detector stacks) hold each
scan's frames, and reads the scan's logs into typed metadata. nxgid does the rest
(scan files from a configuration, stacking or linking, writing the logs) the same way
for every beamline, in :mod:`nxgid.beamlines.importer`.

A third-party package registers its beamline in its ``pyproject.toml``::

    [project.entry-points."nxgid.beamlines"]
    mybeamline = "mypackage.beamline:MyBeamline"

``nxgid beamlines`` lists what is installed; a plugin that fails to import is reported
there, never fatal. ``[beamline] plugin`` in the settings selects the plugin, unless
``--beamline`` names another (:func:`chosen_beamline`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from nxgid.errors import NxgidError

ENTRY_POINT_GROUP = "nxgid.beamlines"


@dataclass
class RawScan:
    """One scan as the beamline recorded it."""

    #: nxgid scan name (e.g. ``s012``) and what the beamline calls it (e.g. SPEC #S 12).
    scan: str
    label: str
    #: Frames of each entry: entry name (``f1``…) → image files, or one HDF5 file.
    entries: dict[str, list[Path]] = field(default_factory=dict)
    #: True if the frames are linked (HDF5 master files), False if they are stacked.
    link: bool = False
    #: Anything the beamline wants to keep (e.g. the SPEC scan number, command).
    source: dict[str, str] = field(default_factory=dict)
    #: Why the scan cannot be imported (an aborted scan, missing images), if so.
    skipped: str | None = None


@dataclass
class ScanLogs:
    """Typed metadata of a scan, one value per frame where it varies."""

    start_time: str | None = None
    monitor: list[float] | None = None
    counting_time_s: list[float] | None = None
    #: Goniometer and sample angles in degrees: phi, chi, omega, theta, incidence_angle.
    angles_deg: dict[str, list[float]] = field(default_factory=dict)
    temperature_K: list[float] | None = None
    #: Other scan variables: name → (values, unit).
    variables: dict[str, tuple[list[float], str]] = field(default_factory=dict)
    #: The raw log table: column name → values (kept as an NXcollection).
    table: dict[str, list[float]] = field(default_factory=dict)
    #: Problems worth a warning (e.g. image count ≠ point count).
    warnings: list[str] = field(default_factory=list)


class BeamLine(ABC):
    """A beamline plugin. Subclasses set the class attributes and implement the hooks."""

    #: The name the settings' ``[beamline] plugin`` or ``--beamline`` selects.
    name: str = ""
    source_name: str = ""
    source_type: str = "Synchrotron X-ray Source"

    def __init__(self, raw_directory: Path, settings=None) -> None:
        """*raw_directory* is the experiment's raw tree (``raw_home/<experiment>/
        raw_path``), only ever read; *settings* the effective nxgid settings."""
        self.raw_directory = Path(raw_directory)
        self.settings = settings

    @property
    def boundary(self):
        """Where raw files may be: the raw tree and ``[instrument] outside_roots``; a
        symlink out of it is refused (:meth:`checked`)."""
        from nxgid.safety.paths import Boundary

        instrument = getattr(self.settings, "instrument", None)  # None: no settings given
        outside = tuple(getattr(instrument, "outside_roots", ()) or ())
        described = f"the raw tree {self.raw_directory}" + (
            " or " + ", ".join(map(str, outside)) + " ([instrument] outside_roots)"
            if outside else "")
        return Boundary((self.raw_directory, *outside), described, outside)

    def checked(self, path: Path, what: str) -> Path:
        """*path* if it resolves inside :attr:`boundary`, else a one-line refusal."""
        return self.boundary.check(path, what)

    @abstractmethod
    def raw_scans(self, sample: str, label: str) -> list[RawScan]:
        """The raw scans available for *sample*/*label* (skipped ones included, with
        their reason)."""

    @abstractmethod
    def logs(self, scan: RawScan) -> ScanLogs:
        """The typed metadata of one scan."""


@dataclass
class BeamLineInfo:
    name: str
    #: The entry point's target, e.g. ``nxgid.beamlines.spec:SpecBeamLine``.
    target: str
    #: The distribution that provides it.
    package: str
    cls: type[BeamLine] | None = None
    error: str | None = None


def discover() -> dict[str, BeamLineInfo]:
    """Every beamline registered under the entry point, imported; failures kept."""
    from importlib.metadata import entry_points

    found: dict[str, BeamLineInfo] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        package = point.dist.name if point.dist is not None else "?"
        info = BeamLineInfo(point.name, point.value, package)
        try:
            cls = point.load()
            if not (isinstance(cls, type) and issubclass(cls, BeamLine)):
                raise TypeError(f"{point.value} is not a nxgid BeamLine subclass")
            info.cls = cls
        except Exception as exc:  # a broken plugin is reported, not fatal
            info.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        found.setdefault(point.name, info)
    return found


def get_beamline(name: str) -> type[BeamLine]:
    """The beamline class called *name*, or a one-line error listing the installed ones."""
    found = discover()
    info = found.get(name)
    if info is None:
        known = ", ".join(sorted(found)) or "none"
        raise NxgidError(f"beamline {name!r} is not installed; installed: {known} "
                         "(see `nxgid beamlines`)")
    if info.cls is None:
        raise NxgidError(f"beamline {name!r} ({info.package}) cannot be loaded: {info.error}")
    return info.cls


def chosen_beamline(option: str | None, settings) -> str:
    """The name of the plugin a command uses, checked to be installed: ``--beamline``,
    else ``[beamline] plugin``, else (for settings written before that key) an
    ``[instrument] instrument`` that happens to be a plugin's name. The instrument name
    itself (``ID10``) is only a name."""
    installed = discover()
    name = option or settings.beamline.plugin
    if not name and settings.instrument.instrument in installed:
        name = settings.instrument.instrument
    if not name:
        known = ", ".join(sorted(installed)) or "none"
        raise NxgidError("no beamline plugin: give --beamline NAME or set [beamline] plugin "
                         f"(`nxgid settings set beamline.plugin NAME`); installed: {known}")
    get_beamline(name)
    return name
