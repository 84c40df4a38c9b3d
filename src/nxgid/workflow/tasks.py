"""The reduction tasks: what each does to one scan entry, what it reads, when it is done.

For every entry ``fN`` of a scan, in order (each waits for the one before):

``sum``
    Summed scans only, once per scan: add the source scans' raw stacks frame by frame.
``link``
    The raw stack ``<scan>/fN.h5`` is there with the detector's frame shape; the scan
    file is refreshed from its configuration if that was recalibrated (or given a new
    mask) since; beamline logs are read into the scan file if the import did not; the
    scan file's ``fN`` links the raw stack (instead of its placeholder).
``convert``
    Every map and profile of the scan's recipe into ``<scan>/fN_reduced.nxs``; then
    ``/fN/reduced`` of the scan file links the reduced data (one NXdata per result), so
    one file reaches everything.
``preview``
    A PNG of the first (or mean) frame of every map, ``<scan>/previews/fN_<map>.png``.

Each task has a *signature* (:class:`Signature`): named parts, each a short digest of
one input's content (:mod:`nxgid.workflow.fingerprints`: the raw stack's chunk index and
first and last frames, the geometry and mask of the scan's configuration, the logged
values, the recipe, …; never a file time), and their SHA-256. A done task whose
signature has changed is stale, and the parts it was done with say why.

A new reduced file is built under a temporary name, appears under its own name once its
first block is complete and then grows block by block (each block flushed before the
frame axis grows), so a task killed half-way leaves a file whose committed frames all
read back; a replacement stays temporary until complete and then replaces the old file
atomically. The redo of an interrupted run (same signature, fewer
frames) replaces its file. An output that exists and was not made by this task with
these inputs is never replaced without ``overwrite``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nxgid.errors import ExistsError, MissingError, NxgidError, RefusedError
from nxgid.experiment.layout import Experiment, ScanRef
from nxgid.experiment.logbook import scan_extra
from nxgid.workflow.fingerprints import (
    GEOMETRY_PART,
    dataset_fingerprint,
    digest_of,
    file_digest,
    geometry_part,
    overall_signature,
    reduced_fingerprint,
    short,
)

log = logging.getLogger("nxgid.workflow")

#: Every task, in the order they run on an entry.
TASK_ORDER: tuple[str, ...] = ("sum", "link", "convert", "preview")
#: The task each one waits for (on the same entry; ``sum`` is on the whole scan).
PREREQUISITE: dict[str, str | None] = {"sum": None, "link": "sum", "convert": "link",
                                       "preview": "convert"}
#: Where the reduced file records the signature it was made with (process/inputs).
SIGNATURE_INPUT = "task_signature"

#: Progress callback of a running task: (what, done, total).
TaskProgress = Callable[[str, int, int], None]


class InputsMissing(MissingError):
    """A task's inputs are not there (yet)."""


@dataclass(frozen=True)
class TaskContext:
    """What every task needs: the experiment and its effective settings."""

    experiment: Experiment
    effective: object  # nxgid.settings.store.Effective
    progress: TaskProgress | None = None

    @property
    def settings(self):
        return self.effective.settings  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TaskResult:
    #: The overall SHA-256 of the inputs the task was done with.
    signature: str
    detail: str
    #: Their parts (name → short digest), kept in ``TaskRun.inputs``.
    inputs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def made(cls, sig: Signature, detail: str) -> TaskResult:
        return cls(sig.digest, detail, dict(sig.parts))


@dataclass(frozen=True)
class PlannedTask:
    task: str
    entry: str
    after: tuple[str, str] | None


def check_tasks(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in TASK_ORDER]
    if unknown:
        raise NxgidError(f"task {', '.join(unknown)}: expected one of {', '.join(TASK_ORDER)}")
    return [n for n in TASK_ORDER if n in names]


def plan(entries: Sequence[str], *, summed: bool,
         tasks: Sequence[str] | None = None) -> list[PlannedTask]:
    """The tasks of one scan in the order they must run (prerequisites first)."""
    wanted = check_tasks(tasks) if tasks else list(TASK_ORDER)
    planned = []
    if summed and "sum" in wanted:
        planned.append(PlannedTask("sum", "", None))
    for entry in entries:
        for task in ("link", "convert", "preview"):
            if task not in wanted:
                continue
            before = PREREQUISITE[task]
            after = None
            if before == "sum":
                after = ("sum", "") if summed else None
            elif before is not None:
                after = (before, entry)
            planned.append(PlannedTask(task, entry, after))
    return planned


# --- signatures ----------------------------------------------------------------------

@dataclass(frozen=True)
class Signature:
    """What a task reads: named *parts* (name → short digest of one input, see
    :mod:`nxgid.workflow.fingerprints`) and their overall SHA-256 (:attr:`digest`)."""

    task: str
    parts: dict[str, str]
    #: part → a word on where it comes from, for :func:`stale_reason` (not hashed)
    hints: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def digest(self) -> str:
        return overall_signature(self.task, self.parts)


def recipe_for(ctx: TaskContext, ref: ScanRef):
    from nxgid.experiment.recipe import effective_recipe

    return effective_recipe(ctx.experiment, ctx.effective, ref)


def _memo(memo: dict | None, key: tuple, compute: Callable[[], object]):
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _raw_stack_part(path: Path, memo: dict | None) -> str:
    """The content fingerprint of a raw stack; ``unreadable`` when it is there but not
    readable (the task then fails with the reason); InputsMissing when absent."""
    def compute() -> str:
        try:
            return dataset_fingerprint(path)
        except FileNotFoundError:
            return ""
        except (OSError, KeyError, ValueError) as exc:
            log.debug("%s: no fingerprint (%s)", path, exc)
            return "unreadable"
    value = _memo(memo, ("raw stack", str(path)), compute)
    if not value:
        raise InputsMissing(f"{path} does not exist (yet)")
    return value


def _geometry_part(exp: Experiment, ref: ScanRef, expected: bool,
                   memo: dict | None) -> tuple[str, str | None]:
    """The geometry part and its hint: the scan file's own copy (what the task reads),
    or with *expected* its configuration's (what it should read; the scan's copy when
    the configuration no longer exists)."""
    from nxgid.experiment.scans import scan_geometry

    def compute():
        try:
            return scan_geometry(exp, ref, configuration_hashes=None if memo is None
                                 else memo.setdefault(("configurations",), {}))
        except MissingError as exc:
            raise InputsMissing(str(exc)) from None
    geometry = _memo(memo, ("geometry", str(ref)), compute)
    if expected and geometry.configuration_hash is not None:
        return geometry_part(geometry.configuration, geometry.configuration_hash), None
    hint = (f"configuration {geometry.configuration} no longer exists; the scan file's "
            "copy changed") if expected else None
    return geometry_part(geometry.configuration, geometry.scan_hash), hint


def _file_part(exp: Experiment, text: str, role: str) -> str:
    return file_digest(_experiment_path(exp, text, role))


def signature(ctx: TaskContext, ref: ScanRef, task: str, entry: str, *,
              expected: bool = False, memo: dict | None = None) -> Signature:
    """The parts of what *task* reads and their SHA-256; raises :class:`InputsMissing`
    when an input is absent.

    The geometry part is the scan file's own copy, as the task reads it; with
    *expected* it is the configuration's (``nxgid reduce`` and ``status`` compare the
    recorded parts with these: a recalibration makes the scans of the configuration
    stale). *memo* (a dict kept for one planning pass) saves reading a file twice.
    """
    from nxgid.experiment.scans import entry_logs, scan_variables, summed_from

    exp = ctx.experiment
    if task == "sum":
        sources = summed_from(exp, ref)
        return Signature(task, {"sources": digest_of(
            [[str(s), e, _raw_stack_part(exp.raw_stack(s, e), memo)]
             for s in sources for e in exp.entries(ref)])})
    if task in ("link", "convert"):
        raw = _raw_stack_part(exp.raw_stack(ref, entry), memo)
        geometry, hint = _geometry_part(exp, ref, expected, memo)
        hints = {GEOMETRY_PART: hint} if hint else {}
        if task == "link":
            return Signature(task, {"raw stack": raw, GEOMETRY_PART: geometry}, hints)
        recipe = recipe_for(ctx, ref)
        values = recipe.values
        parts = {"recipe": short(recipe.sha256), "raw stack": raw, GEOMETRY_PART: geometry,
                 "logs": digest_of(entry_logs(exp, ref, entry).__dict__),
                 "scan variables": digest_of(scan_variables(exp, ref)),
                 "polarization factor":
                     f"{float(ctx.settings.configuration.polarization_factor):.12g}"}
        if values.mask not in ("configuration", "gaps", "none"):
            parts["mask file"] = _file_part(exp, values.mask, "mask")
        for role in ("dark", "flat"):
            if getattr(values, role):
                parts[f"{role} file"] = _file_part(exp, getattr(values, role), role)
        metadata = exp.sample_metadata_file(ref.sample)
        if metadata.is_file():
            parts["sample metadata"] = file_digest(metadata)
        return Signature(task, parts, hints)
    if task == "preview":
        recipe = recipe_for(ctx, ref)
        reduced = exp.reduced_file(ref, entry)
        try:
            fingerprint = reduced_fingerprint(reduced, f"process/inputs/{SIGNATURE_INPUT}")
        except FileNotFoundError:
            raise InputsMissing(f"{reduced} does not exist (yet)") from None
        except OSError:
            fingerprint = "unreadable"
        return Signature(task, {"preview setting": str(recipe.values.preview),
                                "reduced file": fingerprint})
    raise NxgidError(f"unknown task {task!r}")


# --- running -------------------------------------------------------------------------

def run_task(ctx: TaskContext, ref: ScanRef, task: str, entry: str, *,
             overwrite: bool = False) -> TaskResult:
    """Run one task; raises on failure (the caller records it)."""
    runner = {"sum": _sum, "link": _link, "convert": _convert, "preview": _preview}.get(task)
    if runner is None:
        raise NxgidError(f"unknown task {task!r}")
    start = time.perf_counter()
    result = runner(ctx, ref, entry, overwrite)
    log.info("%s done in %.1f s: %s", task, time.perf_counter() - start, result.detail,
             extra=scan_extra(ref, entry or None))
    return result


def _sum(ctx: TaskContext, ref: ScanRef, entry: str, overwrite: bool) -> TaskResult:
    from nxgid.experiment.scans import sum_stacks, summed_from

    exp = ctx.experiment
    sources = summed_from(exp, ref)
    if not sources:
        raise NxgidError(f"scan {ref} is not a summed scan (no summed_from)")
    entries = exp.entries(ref)
    sig = signature(ctx, ref, "sum", entry)
    outputs = [exp.raw_stack(ref, e) for e in entries]
    newest_input = max(exp.raw_stack(s, e).stat().st_mtime_ns for s in sources
                       for e in entries)
    if all(p.exists() and p.stat().st_mtime_ns >= newest_input for p in outputs) \
            and not overwrite:
        return TaskResult.made(sig, f"summed stacks of {len(sources)} scans are up to date")
    if any(p.exists() for p in outputs) and not overwrite:
        raise ExistsError(f"{ref}: the summed stacks are older than their sources; "
                          "`nxgid reduce --stale` or --overwrite sums them again")
    sum_stacks(exp, sources, ref, entries, progress=ctx.progress)
    return TaskResult.made(signature(ctx, ref, "sum", entry),
                           f"summed {', '.join(s.scan for s in sources)}")


def _link(ctx: TaskContext, ref: ScanRef, entry: str, overwrite: bool) -> TaskResult:

    from nxgid.experiment.scans import entry_logs, entry_status, link_raw

    exp = ctx.experiment
    status = entry_status(exp, ref, entry)  # before anything opens the stack
    if status.state.startswith("refused"):
        raise RefusedError(f"{exp.scan_file(ref)}: "
                           f"{status.state.removeprefix('refused: ')}")
    if status.state == "missing":
        raise InputsMissing(f"{exp.raw_stack(ref, entry)}: missing")
    if status.state != "present":  # there, but not usable: waiting will not help
        raise NxgidError(f"{exp.raw_stack(ref, entry)}: {status.state}")
    sig = signature(ctx, ref, "link", entry)
    notes = _refresh_from_configuration(ctx, ref, overwrite)
    if notes and notes[0].startswith("refreshed"):
        sig = signature(ctx, ref, "link", entry)  # the new geometry is the scan's now
    if not entry_logs(exp, ref, entry).has_logs:
        notes += _read_beamline_logs(ctx, ref, entry)
    link_raw(exp, ref, [entry])
    return TaskResult.made(sig, f"{status.frames} frames"
                           + "".join(f"; {n}" for n in notes))


def _refresh_from_configuration(ctx: TaskContext, ref: ScanRef, overwrite: bool
                                ) -> list[str]:
    """Bring the scan file's geometry and mask up to date with its configuration
    (:func:`nxgid.experiment.scans.refresh_scan`, under the scan file's lock), so the
    convert after this link reads the new calibration. Not when an entry of the scan
    already has a reduced file and the task may not replace outputs (live mode appending
    frames, a first link on old outputs): frames of one file keep one geometry, and the
    tasks stay stale until `nxgid reduce --stale` redoes them."""
    from nxgid.experiment.scans import refresh_scan, scan_geometry

    exp = ctx.experiment
    geometry = scan_geometry(exp, ref)
    if not geometry.stale:  # up to date, or the configuration no longer exists
        return []
    if not overwrite and any(exp.reduced_file(ref, e).exists() for e in exp.entries(ref)):
        return [f"scan file not refreshed from configuration {geometry.configuration}: "
                "reduced files exist (`nxgid reduce --stale` redoes them)"]
    if refresh_scan(exp, ref):
        log.info("scan file refreshed from configuration %s", geometry.configuration,
                 extra=scan_extra(ref))
        return [f"refreshed from configuration {geometry.configuration}"]
    return []


def _read_beamline_logs(ctx: TaskContext, ref: ScanRef, entry: str) -> list[str]:
    """Logs of an imported scan whose import wrote none (e.g. an older import)."""
    import h5py

    from nxgid.beamlines.base import get_beamline
    from nxgid.beamlines.importer import IMPORT_GROUP, write_logs
    from nxgid.experiment.configuration import rewrite
    from nxgid.experiment.create import planned_raw_directory
    from nxgid.experiment.locks import file_lock

    exp = ctx.experiment
    path = exp.scan_file(ref)
    with h5py.File(path, "r") as root:
        record = root["entry"].get(IMPORT_GROUP)
        if record is None or "beamline" not in record:
            return []
        name = record["beamline"][()]
    name = name.decode() if isinstance(name, bytes) else str(name)
    raw_directory = planned_raw_directory(exp.name, ctx.effective)
    if raw_directory is None or not raw_directory.is_dir():
        return [f"raw directory {raw_directory} not found; no logs read"]
    beamline = get_beamline(name)(raw_directory, ctx.settings)
    raw = next((r for r in beamline.raw_scans(ref.sample, ref.label) if r.scan == ref.scan),
               None)
    if raw is None:
        return [f"beamline {name} no longer lists the scan; no logs read"]
    logs = beamline.logs(raw)
    with file_lock(path), rewrite(path) as root:
        write_logs(root[entry], logs)
    return [f"logs read with beamline {name}"]


def _convert(ctx: TaskContext, ref: ScanRef, entry: str, overwrite: bool) -> TaskResult:
    from nxgid.nexus.convert import run_convert

    exp = ctx.experiment
    sig = signature(ctx, ref, "convert", entry)
    output = exp.reduced_file(ref, entry)
    _remove_abandoned_partials(exp, output, ctx.settings.server.heartbeat_timeout_s)
    job = convert_job(ctx, ref, entry, output)
    if output.exists() and not overwrite:
        recorded = recorded_signature(output)
        if recorded == sig.digest \
                and _committed_frames(output) == {_frame_count(Path(job.inputs[0]))}:
            return TaskResult.made(sig, f"{output.name} already made with this recipe and "
                                        "inputs")
        if recorded == sig.digest:  # an interrupted run of this very task: redo it cleanly
            overwrite = True
            log.warning("%s is incomplete (an interrupted run): converting again",
                        output.name, extra=scan_extra(ref, entry))
    if output.exists() and not overwrite:
        raise ExistsError(
            f"{output} exists and was made "
            + ("with another recipe or other inputs: `nxgid reduce --stale` (or "
               "--overwrite) replaces it" if recorded else
               "outside the workflow: `nxgid reduce --overwrite` replaces it"))
    job.mode = "overwrite" if output.exists() else "create"
    job.provenance = {SIGNATURE_INPUT: sig.digest, "scan": str(ref), "entry": entry}
    progress = ctx.progress
    summary = run_convert(job, progress=(lambda done, total: progress("convert", done, total))
                          if progress else None)
    link_reduced_data(exp, ref, entry)
    return TaskResult.made(sig, f"{summary.frames} frames → {output.name} "
                           f"({', '.join(summary.entries)})")


def link_reduced_data(exp: Experiment, ref: ScanRef, entry: str) -> None:
    """``/fN/reduced`` of the scan file: links to the reduced data (under the scan
    file's lock: entries of one scan may be converted at the same time)."""
    from nxgid.experiment.configuration import rewrite
    from nxgid.experiment.links import link_reduced
    from nxgid.experiment.locks import file_lock

    path = exp.scan_file(ref)
    with file_lock(path), rewrite(path) as root:
        link_reduced(root[entry], exp.reduced_link(ref, entry), exp.reduced_file(ref, entry))


def convert_job(ctx: TaskContext, ref: ScanRef, entry: str, output: Path):
    """The :class:`nxgid.nexus.convert.ConvertJob` of one entry under its recipe: geometry and
    mask from the scan file, incidence angles, monitor and temperature from its logs."""
    import numpy as np

    from nxgid.experiment.configuration import configuration_geometry, configuration_mask
    from nxgid.experiment.scans import entry_logs, scan_identity, scan_variables
    from nxgid.names import MAP_RESULTS, PIXEL_MASK_GAP, PROFILE_RESULTS
    from nxgid.nexus.convert import ConvertJob

    exp = ctx.experiment
    settings = ctx.settings
    recipe = recipe_for(ctx, ref)
    values = recipe.values
    scan_file = exp.scan_file(ref)
    geometry = configuration_geometry(scan_file)
    logs = entry_logs(exp, ref, entry)
    targets = recipe.targets()
    kinds = {(MAP_RESULTS.get(t.name) or PROFILE_RESULTS.get(t.name))[0] for t in targets}
    transmission = kinds == {"transmission"}
    frames = _frame_count(exp.raw_stack(ref, entry))

    def per_frame(values_, what: str):
        if values_ is not None and len(values_) not in (1, frames):
            raise NxgidError(f"{scan_file} {entry}: {len(values_)} logged {what} values for "
                             f"{frames} frames")
        return values_

    incidence: list[float] | None = None
    if not transmission:
        source = values.incidence_angle
        fixed = recipe.fixed_incidence_deg()
        if fixed is not None:
            incidence = [fixed]
        elif source == "log" or (source == "auto" and logs.incidence_deg):
            if not logs.incidence_deg:
                raise NxgidError(f"{scan_file} {entry}: the recipe takes the incidence angle "
                                 "from the log (incidence_angle = log), but none was logged")
            incidence = per_frame(logs.incidence_deg, "incidence angle")
        else:
            if logs.configured_incidence_deg is None:
                raise NxgidError(f"{scan_file} {entry}: no configured incidence angle")
            incidence = [logs.configured_incidence_deg]
    monitor = None
    if values.monitor_normalisation:
        if not logs.monitor:
            raise NxgidError(f"{scan_file} {entry}: the recipe normalises by the monitor "
                             "(monitor_normalisation = true), but no monitor was logged")
        monitor = per_frame(logs.monitor, "monitor")
    user_mask = None
    mask_path = None
    use_detector_mask = values.mask != "none"
    if values.mask == "configuration":
        bits = configuration_mask(scan_file).astype(np.int64) & 0xFFFF
        user_mask = (bits & ~PIXEL_MASK_GAP) != 0
    elif values.mask not in ("gaps", "none"):
        mask_path = _experiment_path(exp, values.mask, "mask")
    variables = {name: ([value], unit) for name, (value, unit)
                 in scan_variables(exp, ref).items()}
    if logs.temperature_K:
        variables["temperature"] = (per_frame(logs.temperature_K, "temperature"), "K")
    metadata = exp.sample_metadata_file(ref.sample)
    sample_name, measured = scan_identity(exp, ref, entry)
    instrument = settings.instrument
    return ConvertJob(
        inputs=[str(exp.raw_stack(ref, entry))], output=output, poni=None,
        geometry=geometry, targets=targets, incidence_deg=incidence,
        transmission=transmission, tilt_deg=values.tilt_deg,
        sample_orientation=values.sample_orientation, mask=mask_path,
        user_mask=user_mask, use_detector_mask=use_detector_mask,
        dark=_experiment_path(exp, values.dark, "dark") if values.dark else None,
        flat=_experiment_path(exp, values.flat, "flat") if values.flat else None,
        corrections=recipe.corrections(settings.configuration.polarization_factor),
        q_unit=values.q_unit, method=values.method, pixel_splitting=values.pixel_splitting,
        max_bins=values.max_bins,
        errors=values.errors, compression=values.compression,
        metadata_file=metadata if metadata.is_file() else None,
        title=f"{ref} {entry}", source_type=instrument.source_type,
        source_name=instrument.source or None, instrument_name=instrument.instrument
        or "unknown", block_frames=values.block_frames,
        cache_dir=exp.tasks_dir / "cache", monitor=monitor, variables=variables,
        recipe={**recipe.as_dict()}, sample_name=sample_name, start_time=measured)


def _experiment_path(exp: Experiment, text: str, role: str) -> Path:
    path = Path(text).expanduser()
    path = path if path.is_absolute() else exp.root / path
    if not path.is_file():
        raise InputsMissing(f"recipe {role} = {text}: {path} does not exist")
    return path


def _frame_count(path: Path) -> int:
    from nxgid.images.series import open_series

    return len(open_series([path]))


def recorded_signature(path: Path) -> str | None:
    """The task signature a reduced file was made with (None if not by a task)."""
    import h5py

    try:
        with h5py.File(path, "r") as root:
            for name in root:
                item = root[name].get(f"process/inputs/{SIGNATURE_INPUT}")
                if item is not None:
                    value = item[()]
                    return value.decode() if isinstance(value, bytes) else str(value)
    except OSError:
        return None
    return None


def _committed_frames(path: Path) -> set[int]:
    """Frames committed in each nxgid entry of a reduced file (one value if complete)."""
    import h5py

    from nxgid.nexus.frames import committed_frames, nxgid_entry_paths

    with h5py.File(path, "r") as root:
        return {committed_frames(root[name]) for name in nxgid_entry_paths(root)}


def _remove_abandoned_partials(exp: Experiment, output: Path, older_than_s: float) -> None:
    """Partial files a killed run left: of a dead process on this host, or (another
    host's) older than the heartbeat timeout: no live writer of them can remain, as its
    task would have been requeued."""
    from nxgid.safety.partials import clear_stale

    clear_stale(output, older_than_s=older_than_s)


def _preview(ctx: TaskContext, ref: ScanRef, entry: str, overwrite: bool) -> TaskResult:
    from nxgid.nexus.reader import NexusFile
    from nxgid.plot.results import plot_result

    exp = ctx.experiment
    sig = signature(ctx, ref, "preview", entry)
    recipe = recipe_for(ctx, ref)
    reduced = NexusFile(exp.reduced_file(ref, entry))
    written = []
    for info in reduced.entries():
        stored = reduced.result(info.name)
        if len(info.axes) != 2:
            continue  # profiles: no picture
        path = exp.preview_file(ref, entry, info.name.rsplit("/", 1)[-1])
        path.parent.mkdir(exist_ok=True)
        if recipe.values.preview == "first":
            result = stored.read(slice(0, 1), errors=False)
            plot_result(result, path, frame=0, title=f"{ref} {entry} {info.name}")
        else:
            result = stored.read(None, errors=False)
            plot_result(result, path, frame=None, title=f"{ref} {entry} {info.name}")
        written.append(path.name)
    return TaskResult.made(sig, f"{len(written)} previews" if written
                           else "no maps to preview")
