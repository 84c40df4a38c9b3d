"""Checking nxgid NeXus files: the NXgid application definition and the common readers.

    problems = validate("film.nxs")      # {"nexusformat": [...], "pynxtools": [...], ...}
    if any(problems.values()): ...

Every check returns a list of problems, one line each, starting with the HDF5 path of
the entry, group or field concerned (an empty list: no problem). Only the entries
written by nxgid (``definition = NXgid``) are validated against the definition; other
entries of the file (raw data, another program's results) are left alone, but every
NXdata group of the file must satisfy silx.

* :func:`validate_with_nexusformat` — nexusformat's validator (NeXpy's ``nxvalidate``):
  the entry against ``NXgid.nxdl.xml`` and its groups against the NeXus base classes.
  Returns errors; warnings (e.g. a recommended field left out, a value of the wrong
  type, which nexusformat only warns about) go to an optional list. ~0.15 s per entry.
* :func:`validate_with_pynxtools` — pynxtools' stricter validator (FAIRmat, NOMAD):
  units against their NeXus unit categories, types, enumerations, required fields,
  symbol sizes (every per-frame field has one value per frame), link targets,
  undocumented fields. Every warning it logs is a problem. The first call costs
  ~1.5 s (imports); then ~0.4 s per entry, growing with the number of entries in the
  file (pynxtools walks the whole file for every entry it validates): ~0.6 s per entry
  for a file with all eight grazing-incidence results. Array sizes do not matter: no
  data is read.
* :func:`check_nxdata_with_silx` — every NXdata group passes
  ``silx.io.nxdata.is_valid_nxdata`` and the ``@default`` chain leads to one.
* :func:`check_nxload` — the file opens with ``nexusformat.nexus.nxload`` (NeXpy) and
  the default plot of the file and of every nxgid entry resolves to its signal.

The validators are optional dependencies (the ``dev`` extra): they are imported on
first use, and a missing one raises :class:`~nxgid.errors.NxgidError` naming the
package and the extra that installs it.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from nxgid import names as nx
from nxgid.errors import MissingError, NxgidError

#: File name of the application definition in :func:`definitions_dir`.
DEFINITION_FILE = f"{nx.DEFINITION}.nxdl.xml"
#: The pip extra that installs the validators.
EXTRA = "dev"
#: Names of the checks run by :func:`validate`, in order.
CHECKS: tuple[str, ...] = ("nexusformat", "pynxtools", "silx", "nxload")


def definitions_dir() -> Path:
    """The folder of nxgid's NeXus application definitions (shipped in the package)."""
    return Path(__file__).resolve().parent / "definitions"


def definition_path() -> Path:
    """The NXgid application definition, ``NXgid.nxdl.xml``."""
    return definitions_dir() / DEFINITION_FILE


# --- shared helpers ------------------------------------------------------------------

def _require(module: str, package: str, what: str):
    """Import an optional validator, or explain how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NxgidError(f"{what} needs the {package} package: install nxgid's "
                         f"'{EXTRA}' extra (pip install 'nxgid[{EXTRA}]') or "
                         f"pip install {package}") from None


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "shape") and getattr(value, "shape", None) == ():
        return _text(value[()])
    return str(value)


def _check_file(path: str | os.PathLike) -> Path:
    """*path*, made absolute: the validators work in the file's folder (relative external
    links resolve from there), where a relative name would no longer point at it."""
    if not Path(path).is_file():
        raise MissingError(f"{path}: no such file")
    return Path(os.path.abspath(path))


def _open(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise NxgidError(f"{path}: not a readable HDF5 file: "
                         f"{str(exc).splitlines()[0]}") from None


def nxgid_entries(path: str | os.PathLike) -> list[str]:
    """Names of the top-level entries of a file that follow NXgid (``definition =
    NXgid``). The results nested in their ``other_results`` are validated as part of
    them (and their NXdata by silx)."""
    from nxgid.nexus.frames import nxgid_entry_paths

    path = _check_file(path)
    with _open(path) as root:
        return [name for name in nxgid_entry_paths(root) if "/" not in name]


def defined_entries(path: str | os.PathLike) -> dict[str, str]:
    """The entries nxgid validates against an application definition, with its name:
    the NXgid entries of a file, and in a configuration or scan file of nxgid (its
    ``/entry`` names the configuration) the entries ``f1…fN`` with the definition they
    name (NXsas). Other programs' entries in the same file are left alone."""
    import h5py

    path = _check_file(path)
    with _open(path) as root:
        ours = isinstance(root.get("entry/configuration"), h5py.Dataset)
        found = {}
        for name in root:
            item = root.get(name)
            if not isinstance(item, h5py.Group) or \
                    _text(item.attrs.get("NX_class", "")) != "NXentry" or \
                    not isinstance(item.get("definition"), h5py.Dataset):
                continue
            definition = _text(item["definition"][()])
            if definition == nx.DEFINITION or ours:
                found[name] = definition
        return found


def _entries(path: Path) -> list[str]:
    """The entries nxgid checks against the base classes: those of
    :func:`defined_entries`, and ``/entry`` of a configuration or scan file."""
    import h5py

    named = list(defined_entries(path))
    with _open(path) as root:
        if isinstance(root.get("entry/configuration"), h5py.Dataset):
            named.insert(0, "entry")
    return named


def _no_entry(path: Path) -> list[str]:
    return [f"{path}: no NXgid entry (an NXentry whose definition is {nx.DEFINITION!r}), "
            "nor is it an nxgid configuration or scan file"]


class _Records(logging.Handler):
    """Collects the records of a logger (its own handlers are set aside meanwhile)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _captured(name: str, level: int) -> Iterator[_Records]:
    """Route the records of logger *name* at *level* and above into a list only."""
    logger = logging.getLogger(name)
    handlers, old_level, propagate = list(logger.handlers), logger.level, logger.propagate
    records = _Records()
    for handler in handlers:
        logger.removeHandler(handler)
    logger.addHandler(records)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.removeHandler(records)
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = propagate


def _message(record: logging.LogRecord) -> str:
    """A record's message without pynxtools' ``WARNING: `` prefix or colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())
    return re.sub(r"^(WARNING|ERROR|CRITICAL): ", "", text)


# --- nexusformat ---------------------------------------------------------------------

def _nexusformat_problems(records: list[logging.LogRecord], entry: str
                          ) -> tuple[list[str], list[str]]:
    """Errors and warnings of nexusformat's indented log, each with its path.

    At level INFO, nexusformat logs a context line for every group and field it checks
    (``Group: name: NXclass``, ``Field: /path``, ``NXclass: /path``, level CRITICAL) and
    its findings one level deeper (ERROR, WARNING). Lines deeper still that follow a
    finding are its details (e.g. the sizes behind "Values for "nFrames" are not
    unique"); they are appended to it.
    """
    found: list[tuple[int, str, list[str]]] = []  # (level, message, details)
    context: list[tuple[int, str]] = []  # (indent, line) from the outside in
    last = -1  # indent of the previous finding, -1 after a context line
    for record in records:
        raw = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())
        text = raw.strip()
        if not text:
            continue
        indent = (len(raw) - len(raw.lstrip(" "))) // 4
        if record.levelno >= logging.CRITICAL:
            if not text.startswith(("Total number of", "Filename:", "Path:", "Definitions:",
                                    "Application Definition:", "NXDL File:")):
                context = [(i, line) for i, line in context if i < indent] + \
                    [(indent, text)]
                last = -1
            continue
        if record.levelno < logging.WARNING:
            continue
        if 0 <= last < indent:  # a detail of the previous finding
            if not text.startswith("doc:"):
                found[-1][2].append(text)
            continue
        where = f"/{entry}"
        for i, line in context:
            if i >= indent:
                break
            kind, _, rest = line.partition(": ")
            if rest.startswith("/"):  # Field: /path, Link: /path, NXdata: /path
                where = rest.split()[0]
            elif kind == "Group":  # Group: name: NXclass, or Group: NXclass
                where = f"{where}/{rest.split(': ')[0]}"
        found.append((record.levelno, f"{where}: {text}", []))
        last = indent
    messages = {(level, message + (f" ({', '.join(details)})" if details else "")): None
                for level, message, details in found}  # once each, in order
    return ([message for level, message in messages if level >= logging.ERROR],
            [message for level, message in messages if level < logging.ERROR])


def validate_with_nexusformat(path: str | os.PathLike,
                              warnings: list[str] | None = None) -> list[str]:
    """Errors of nexusformat's validator for every entry of *path*.

    Each entry that names a definition is validated against it (``NXgid.nxdl.xml``, or
    NXsas for the entries of configuration and scan files: required fields and groups,
    types, enumerations, dimensions), and every entry's groups against the NeXus base
    classes (class names, NXdata signal and axes), with a fresh validator per group
    (nexusformat's cache of one validator per class drops the findings of a group that
    holds a group of its own class). Errors are returned; pass a list as *warnings* to
    receive the warnings too (e.g. a recommended field left out). Base-class warnings
    that an item "is not defined" in its base class are left out: the application
    definitions define those items.
    """
    path = _check_file(path)
    validate = _require("nexusformat.nexus.validate", "nexusformat",
                        "validation with nexusformat")
    entries = _entries(path)
    if not entries:
        return _no_entry(path)
    definitions = defined_entries(path)
    errors: dict[str, None] = {}  # ordered, without the repeats of the two passes
    warned: dict[str, None] = {}
    with _nexusformat_read_only():
        for entry in entries:
            _nexusformat_entry(validate, path, entry, definitions.get(entry), errors,
                               warned)
    if warnings is not None:
        warnings.extend(warned)
    return list(errors)


@contextlib.contextmanager
def _nexusformat_read_only() -> Iterator[None]:
    """nexusformat's validator opens the file with ``with nxopen(...)``, and NXroot's
    ``__enter__`` switches the file to read-write: validating would open our outputs
    r+ and change their modification time (which makes a done task look stale). For the
    duration of the call, entering an NXroot keeps the mode it was opened with ("r")."""
    from nexusformat.nexus import tree
    from nexusformat.nexus import validate as nexusformat_validate

    original = tree.NXroot.__enter__
    cached = nexusformat_validate.get_validator

    def enter_read_only(self):
        if self.nxfile:
            self._current_mode = self._mode
            self.nxfile.__enter__()
        return self

    def fresh_validator(nxclass, definitions=None):
        return nexusformat_validate.GroupValidator(nxclass, definitions=definitions)

    tree.NXroot.__enter__ = enter_read_only
    nexusformat_validate.get_validator = fresh_validator
    try:
        yield
    finally:
        tree.NXroot.__enter__ = original
        nexusformat_validate.get_validator = cached


def _nexusformat_entry(validate, path, entry: str, definition: str | None, errors: dict,
                       warned: dict) -> None:
    """Both passes of nexusformat on one entry: its application definition (if it names
    one), then the base classes; problems go into *errors* and *warned* (ordered,
    without repeats). Relative external links resolve from the file's folder."""
    if definition is not None:
        application = str(definition_path()) if definition == nx.DEFINITION else definition
        with _captured("NXValidate", logging.INFO) as log, _in_folder(path.parent):
            validate.validate_application(str(path.resolve()), path=f"/{entry}",
                                          application=application)
        found, maybe = _nexusformat_problems(log.records, entry)
        errors.update(dict.fromkeys(found))
        warned.update(dict.fromkeys(maybe))
    with _captured("NXValidate", logging.INFO) as log:
        validate.validate_file(str(path), path=f"/{entry}")
    found, maybe = _nexusformat_problems(log.records, entry)
    errors.update(dict.fromkeys(found))
    warned.update(dict.fromkeys(text for text in maybe if "is not defined" not in text))


# --- pynxtools -----------------------------------------------------------------------

#: Definitions folders made for pynxtools: NeXus definitions folder -> folder with NXgid.
_merged_definitions: dict[Path, Path] = {}


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.symlink_to(source, target_is_directory=source.is_dir())
    except OSError:  # no symbolic links (Windows without the privilege)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)


def pynxtools_definitions() -> Path:
    """The NeXus definitions pynxtools ships (base classes, applications, …)."""
    _require("pynxtools", "pynxtools", "the NeXus definitions")
    from pynxtools.definitions.dev_tools.utils import nxdl_utils

    return Path(nxdl_utils.__file__).resolve().parents[2]


def write_definitions(target: Path) -> Path:
    """A folder holding the NeXus definitions (pynxtools' copy) and NXgid, for the
    standalone validators: ``NEXUS_DEF_PATH=TARGET pynx validate FILE`` and
    ``nxvalidate -d TARGET FILE``. Made under a temporary name, then renamed."""
    target = Path(target)
    if target.exists():
        raise NxgidError(f"{target} exists: choose a new folder for the definitions")
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(pynxtools_definitions(), partial,
                    ignore=shutil.ignore_patterns("__pycache__", "*.py", "dev_tools"))
    shutil.copy2(definition_path(), partial / "applications" / DEFINITION_FILE)
    partial.rename(target)
    return target


def _pynxtools_definitions(bundled: Path) -> Path:
    """A definitions folder for pynxtools: the NeXus definitions in *bundled* plus NXgid.

    pynxtools finds application definitions only inside one folder (``NEXUS_DEF_PATH``)
    that must also hold the base classes, so a temporary folder links both; it is made
    once per process and removed at exit.
    """
    made = _merged_definitions.get(bundled)
    if made is not None and made.is_dir():
        return made
    folder = Path(tempfile.mkdtemp(prefix="nxgid-nxdl-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for item in bundled.iterdir():
        if item.name != "applications":
            _link_or_copy(item, folder / item.name)
    applications = folder / "applications"
    applications.mkdir()
    if (bundled / "applications").is_dir():
        for item in (bundled / "applications").iterdir():
            if item.name != DEFINITION_FILE:
                _link_or_copy(item, applications / item.name)
    _link_or_copy(definition_path(), applications / DEFINITION_FILE)
    _merged_definitions[bundled] = folder
    return folder


@contextlib.contextmanager
def _nexus_def_path(folder: Path) -> Iterator[None]:
    """``NEXUS_DEF_PATH`` (and pynxtools' copy of it, read at import) set to *folder*
    for the duration of the block, then restored."""
    from pynxtools.definitions.dev_tools.utils import nxdl_utils

    old_env = os.environ.get("NEXUS_DEF_PATH")
    old_path = nxdl_utils.nexus_def_path
    os.environ["NEXUS_DEF_PATH"] = str(folder)
    nxdl_utils.nexus_def_path = folder
    try:
        yield
    finally:
        nxdl_utils.nexus_def_path = old_path
        if old_env is None:
            os.environ.pop("NEXUS_DEF_PATH", None)
        else:
            os.environ["NEXUS_DEF_PATH"] = old_env


@contextlib.contextmanager
def _in_folder(folder: Path) -> Iterator[None]:
    """Work in *folder* for a while: pynxtools resolves relative external links from the
    working directory. Survives a working directory that no longer exists."""
    try:
        previous: str | None = os.getcwd()
    except FileNotFoundError:
        previous = None
    os.chdir(folder)
    try:
        yield
    finally:
        if previous is not None:
            os.chdir(previous)


def validate_with_pynxtools(path: str | os.PathLike, *, definition: str | None = None,
                            entries: Sequence[str] | None = None) -> list[str]:
    """Problems pynxtools finds in every entry of *path* that names an application
    definition, against it (empty: valid); or in the given *entries* against
    *definition*. Relative external links are resolved from the file's folder.

    pynxtools logs each problem as a warning or error on its ``pynxtools`` logger; they
    are collected (and not printed) and returned, each naming the HDF5 path. Known false
    alarms of pynxtools (NXdetector's ``pixel_mask`` taken for a ``_mask`` suffix) are
    dropped. The NeXus definitions are pynxtools' own, or those in ``NEXUS_DEF_PATH``
    when it names a definitions folder; ``NEXUS_DEF_PATH`` points to them plus NXgid
    only during the call.
    """
    path = _check_file(path)
    _require("pynxtools", "pynxtools", "validation with pynxtools")
    from pynxtools.definitions.dev_tools.utils import nxdl_utils

    given = os.environ.get("NEXUS_DEF_PATH")
    if given and (Path(given) / "base_classes").is_dir():
        bundled = Path(given).resolve()  # the user's NeXus definitions
    else:
        bundled = Path(nxdl_utils.__file__).resolve().parents[2]  # pynxtools' own
    folder = _pynxtools_definitions(bundled)
    named = defined_entries(path)
    if entries is not None:
        named = {entry: definition or named.get(entry, nx.DEFINITION) for entry in entries}
    elif definition is not None:
        named = {entry: definition for entry in named}
    if not named:
        return _no_entry(path)
    problems: list[str] = []
    with _nexus_def_path(folder), _open(path) as root, _in_folder(path.parent):
        from pynxtools.dataconverter.validation import validate_hdf_group_against

        for entry, against in named.items():
            with _captured("pynxtools", logging.WARNING) as log:
                try:
                    valid = validate_hdf_group_against(against, root[entry],
                                                       str(path))
                except Exception as exc:  # a pynxtools failure is a finding, too
                    problems.append(f"/{entry}: pynxtools failed: "
                                    f"{type(exc).__name__}: {exc}".splitlines()[0])
                    continue
            found = list(map(_message, log.records))
            if not valid and not log.records:
                found.append(f"/{entry}: pynxtools reports the entry invalid")
            problems += [text if f"/{entry}" in text else f"/{entry}: {text}"
                         for text in found]
    return problems


# --- silx ----------------------------------------------------------------------------

def check_nxdata_with_silx(path: str | os.PathLike) -> list[str]:
    """Problems silx finds: every NXdata group of the file must be valid for
    ``silx.io.nxdata`` (signal, axes, shapes, errors), and the ``@default`` attributes
    of the file and of every top-level NXgid entry must lead to a valid NXdata group
    (the NXdata of nested results is checked like every other)."""
    import h5py

    path = _check_file(path)
    nxdata = _require("silx.io.nxdata", "silx", "checking NXdata with silx")
    problems: list[str] = []
    with _open(path) as root:
        groups: list[h5py.Group] = []

        def visit(_name, item):
            if isinstance(item, h5py.Group) and \
                    _text(item.attrs.get("NX_class", "")) == "NXdata":
                groups.append(item)

        root.visititems(visit)
        for group in groups:
            if not nxdata.is_valid_nxdata(group):
                issues = nxdata.NXdata(group).issues or ["not a valid NXdata group"]
                problems += [f"{group.name}: {issue}" for issue in issues]
        if nxdata.get_default(root) is None:
            problems.append(f"{path}: the file's @default does not lead to a valid NXdata "
                            "group")
        for entry in nxgid_entries(path):
            if nxdata.get_default(root[entry]) is None:
                problems.append(f"/{entry}: @default does not lead to a valid NXdata "
                                "group")
    return problems


# --- nxload --------------------------------------------------------------------------

def _plot_problems(group, where: str) -> list[str]:
    """Problems of the default plot of an nexusformat group (root or entry)."""
    default = group.get_default()
    if default is None:
        return [f"{where}: no default plot: @default does not lead to an NXdata group"]
    signal = default.nxsignal
    if signal is None:
        return [f"{default.nxpath}: nexusformat finds no signal"]
    problems = []
    wanted = _text(default.attrs.get("signal", ""))
    if signal.nxname != wanted:
        problems.append(f"{default.nxpath}: nexusformat's signal is {signal.nxname!r}, "
                        f"not @signal {wanted!r}")
    axes = default.nxaxes or []
    if len(axes) != signal.ndim:
        problems.append(f"{default.nxpath}: nexusformat finds {len(axes)} axes for a "
                        f"signal of rank {signal.ndim}")
    return problems


def check_nxload(path: str | os.PathLike) -> list[str]:
    """Problems opening *path* with ``nexusformat.nexus.nxload``: the file must open,
    and the default plot of the file and of every NXgid entry must resolve to the
    entry's signal with one axis per dimension."""
    path = _check_file(path)
    nexus = _require("nexusformat.nexus", "nexusformat", "opening files with nxload")
    entries = nxgid_entries(path)
    try:
        root = nexus.nxload(str(path), "r")
    except Exception as exc:
        return [f"{path}: nxload cannot open the file: {exc}".splitlines()[0]]
    try:
        problems = _plot_problems(root, str(path))
        for entry in entries:
            problems += _plot_problems(root[entry], f"/{entry}")
        problems = list(dict.fromkeys(problems))  # the default entry's, once
    except Exception as exc:
        problems = [f"{path}: nxload fails reading the file: "
                    f"{type(exc).__name__}: {exc}".splitlines()[0]]
    finally:
        root.close()
    return problems


# --- all -----------------------------------------------------------------------------

def validate(path: str | os.PathLike) -> dict[str, list[str]]:
    """Every check on *path*: ``{"nexusformat": errors, "pynxtools": problems,
    "silx": problems, "nxload": problems}``; all lists empty means valid."""
    path = _check_file(path)
    checks = {"nexusformat": validate_with_nexusformat, "pynxtools": validate_with_pynxtools,
              "silx": check_nxdata_with_silx, "nxload": check_nxload}
    return {name: checks[name](path) for name in CHECKS}
