"""The safety rules of :mod:`nxgid.safety.paths` applied to experiments and settings.

* :func:`experiment_boundary`: what an experiment may reach through links (its root,
  its raw tree, ``[instrument] outside_roots``).
* :func:`guard_outputs`: called by every command that writes, before it reads anything:
  no output is an input, none lies in a raw tree (the site's ``raw_home``, the
  experiment's raw directory), and none is the raw stack of a scan (only the commands
  that make raw stacks — ``stack``, ``import``, ``sum``, ``watch`` — write those).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from nxgid.errors import NotInExperimentError, NxgidError
from nxgid.experiment.layout import ENTRY_PATTERN, RAW_SUFFIX, Experiment
from nxgid.safety.paths import Boundary, OverlapError, Protected, refuse_overlap


def _raw_directory(experiment: Experiment, effective) -> Path | None:
    from nxgid.experiment.create import planned_raw_directory

    return planned_raw_directory(experiment.name, effective)


def experiment_boundary(experiment: Experiment, effective) -> Boundary:
    """The folders links met in *experiment* may lead to."""
    instrument = effective.settings.instrument
    return Boundary.of(experiment.root, _raw_directory(experiment, effective),
                       tuple(instrument.outside_roots))


def boundary_of(experiment: Experiment) -> Boundary:
    """:func:`experiment_boundary` with the experiment's own effective settings (only its
    root when those cannot be read: the narrowest boundary)."""
    from nxgid.settings.store import load_effective

    try:
        effective = load_effective(experiment_settings=experiment.settings_file)
    except NxgidError:
        return Boundary.of(experiment.root, None)
    return experiment_boundary(experiment, effective)


def external_link_problem(scan_file: Path, link_path: str, filename: str,
                          boundary: Boundary) -> str | None:
    """Why the external link *link_path* → *filename* of *scan_file* must not be followed
    (None when it may): scan files hold relative links that stay inside the boundary."""
    if Path(filename).is_absolute():
        return (f"link {link_path} → {filename} is absolute; scan files hold relative "
                "links only (run `nxgid reduce --tasks link --overwrite` after moving the "
                "stack into the scan folder)")
    target = scan_file.parent / filename
    if not boundary.contains(target):
        return (f"link {link_path} → {filename} resolves to {target.resolve()}, outside "
                f"{boundary.described}; nxgid does not follow links out of the tree")
    return None


def protected_trees(effective=None, experiment: Experiment | None = None
                    ) -> list[Protected]:
    """The raw trees nxgid only reads: the site's ``raw_home`` and the experiment's raw
    directory (usually inside it)."""
    trees: list[Protected] = []
    if effective is not None and effective.settings.instrument.raw_home is not None:
        trees.append(Protected(effective.settings.instrument.raw_home))
    if experiment is not None and effective is not None:
        raw = _raw_directory(experiment, effective)
        if raw is not None:
            trees.append(Protected(raw))
    return trees


def _site_settings_or_none():
    """The site's effective settings, or None when there are none or they are broken
    (standalone commands such as ``convert`` work without them)."""
    from nxgid.settings.store import load_effective

    try:
        return load_effective()
    except NxgidError:
        return None


def raw_stack_of(path: Path) -> str | None:
    """``SAMPLE/LABEL/SCAN fN`` if *path* is the raw stack of a scan of an experiment."""
    path = Path(path)
    if path.suffix != RAW_SUFFIX or not ENTRY_PATTERN.fullmatch(path.stem):
        return None
    try:
        experiment = Experiment.open(path.parent)
        ref = experiment.scan_from_path(path)
    except (NotInExperimentError, NxgidError, OSError):
        return None
    if experiment.raw_stack(ref, path.stem).resolve() == path.resolve():
        return f"{ref} {path.stem}"
    return None


def guard_outputs(outputs: Iterable[Path | None], inputs: Iterable[Path | str | None], *,
                  effective=None, experiment: Experiment | None = None,
                  raw_stacks: bool = False) -> None:
    """Refuse outputs that meet an input, a raw tree or (unless *raw_stacks*) a scan's
    raw stack; *effective* defaults to the site settings, if readable."""
    outputs = [Path(o) for o in outputs if o is not None]
    effective = effective if effective is not None else _site_settings_or_none()
    trees: Sequence[Protected] = protected_trees(effective, experiment)
    refuse_overlap(outputs, inputs, protected=trees)
    if raw_stacks:
        return
    for output in outputs:
        if (stack := raw_stack_of(output)) is not None:
            raise OverlapError(f"{output}: is the raw stack of scan {stack}, which only "
                               "`nxgid stack`, `import`, `sum` and `watch` write; choose "
                               "another output")
