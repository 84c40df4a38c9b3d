"""Where nxgid may read and write: outputs never meet inputs, the tree is a boundary.

Two rules, checked before a command reads anything:

* **Inputs and outputs never meet.** An output may not be any of the command's inputs:
  not the same path, not a symlink to one, not a hard link to one (same device and
  inode). Nor may it lie inside a raw tree, which nxgid only ever reads.
* **The tree is a boundary.** Inside an experiment, every path nxgid reaches *through
  something in the tree* (a symlinked folder or file, an HDF5 external link, a path
  built from a setting) must resolve inside the experiment, its raw tree, or an outside
  root the settings name explicitly (``[instrument] outside_roots``). Paths the user
  types on the command line are the user's choice and are not confined.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nxgid.errors import NxgidError, RefusedError


class BoundaryError(RefusedError):
    """A path leads outside the experiment and its raw tree."""


class OverlapError(RefusedError):
    """An output would replace or write into an input, or into a raw tree."""


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def is_inside(path: Path, root: Path) -> bool:
    """True if *path*, with every symlink resolved, is *root* or lies below it."""
    return _resolved(path).is_relative_to(_resolved(root))


def same_file(first: Path, second: Path) -> bool:
    """The same file: one path, a symlink to the other, or a hard link (same inode)."""
    if _resolved(first) == _resolved(second):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (yet)
        return False


@dataclass(frozen=True)
class Protected:
    """A folder nxgid only reads (a raw tree), with how to name it in a message."""

    root: Path
    name: str = "the raw tree"


def refuse_overlap(outputs: Iterable[Path | None], inputs: Iterable[Path | str | None], *,
                   protected: Sequence[Protected] = ()) -> None:
    """Raise :class:`OverlapError` if an output is an input or lies in a protected tree.

    Inputs may be glob patterns; those are expanded here so that every file the command
    will read is compared."""
    import glob

    files: list[Path] = []
    for item in inputs:
        if item is None:
            continue
        text = str(item)
        if any(c in text for c in "*?[") and not Path(text).exists():
            files.extend(Path(hit) for hit in glob.glob(os.path.expanduser(text),
                                                        recursive=True))
        else:
            files.append(Path(text))
    for output in outputs:
        if output is None:
            continue
        output = Path(output)
        for source in files:
            if same_file(output, source):
                how = "" if str(output) == str(source) else f" (it is the same file as {source})"
                raise OverlapError(f"{output}: is also an input of this command{how}; an "
                                   "output never replaces an input, choose another output")
        for tree in protected:
            if is_inside(output, tree.root) or is_inside(output.parent, tree.root):
                raise OverlapError(f"{output}: lies inside {tree.name} {tree.root}, which "
                                   "nxgid only reads; write the output elsewhere")


@dataclass(frozen=True)
class Boundary:
    """The folders an experiment may reach: its root, its raw tree and named outside
    roots. ``check`` resolves every symlink of a path and refuses one that leaves them."""

    roots: tuple[Path, ...]
    #: What the roots are, for messages (e.g. "the experiment /x or its raw tree /y").
    described: str = ""
    outside_roots: tuple[Path, ...] = field(default=())

    @classmethod
    def of(cls, experiment_root: Path, raw_root: Path | None,
           outside_roots: Sequence[Path] = ()) -> Boundary:
        roots = [experiment_root] + ([raw_root] if raw_root is not None else [])
        described = f"the experiment {experiment_root}" + (
            f" or its raw tree {raw_root}" if raw_root is not None else "")
        if outside_roots:
            described += " or " + ", ".join(str(r) for r in outside_roots) + \
                " ([instrument] outside_roots)"
        return cls(tuple([*roots, *outside_roots]), described, tuple(outside_roots))

    def contains(self, path: Path) -> bool:
        return any(is_inside(path, root) for root in self.roots)

    def check(self, path: Path, what: str = "") -> Path:
        """*path* if it resolves inside the boundary, else :class:`BoundaryError`."""
        path = Path(path)
        if self.contains(path):
            return path
        target = _resolved(path)
        through = f" (it resolves to {target})" if target != Path(os.path.abspath(path)) \
            else ""
        label = f"{what} " if what else ""
        raise BoundaryError(f"{label}{path}{through} is outside {self.described}; nxgid does "
                            "not follow links out of the tree (name an outside root in "
                            "[instrument] outside_roots to allow one)")


def check_regular_file(path: Path, what: str = "") -> Path:
    """*path* if it is a regular file (after symlinks): named pipes, devices and sockets
    are refused, since reading one can block forever or never end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        from nxgid.errors import MissingError

        raise MissingError(f"{path}: no such file") from None
    except OSError as exc:
        raise NxgidError(f"{path}: cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise NxgidError(f"{path}: is a directory, expected {what or 'a file'}")
    if not stat.S_ISREG(mode):
        kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a device"
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
                if stat.S_ISSOCK(mode) else "not a regular file")
        raise NxgidError(f"{path}: is {kind}, expected {what or 'a regular file'}")
    return path
