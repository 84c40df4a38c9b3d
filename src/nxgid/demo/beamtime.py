"""``nxgid demo``: a complete example beamtime, built in one directory.

The demo has its own site settings (``DIR/site/settings.ini``) and never reads or
writes the user's. It goes through the same library functions as the commands do:

1. site settings with a raw tree (``DIR/raw``) and an analysis home (``DIR/analysis``);
2. the experiment, created with ``experiment new``;
3. two samples with labels, as ``sample new`` makes them;
4. a configuration, calibrated headless from a synthetic LaB6 image, a beam-stop mask,
   scans made from the configuration, raw CBF series stacked into them and two scans
   summed (:mod:`nxgid.demo.setup`), all registered in the workflow database;
5. a reduction recipe with a per-label and a per-scan override, as ``nxgid recipe set``;
6. every scan reduced by the workflow, as ``nxgid reduce --all`` and ``nxgid workers -n 2``:
   link, convert (into ``<scan>/fN_reduced.nxs`` with the sample's layers), preview and
   sum tasks claimed from the database by two local worker processes;
7. the reduced files read back and checked against the truth, validated, with PNG
   previews (:mod:`nxgid.demo.conversion`);
8. live mode: a new scan measured frame by frame while ``nxgid watch`` imports it and
   reduces each frame as it lands (:mod:`nxgid.demo.live`);
9. a recipe change for one sample, whose stale conversion is redone on a Dask cluster of
   two local worker processes;
10. requests that would harm data (an output that is its input, a CBF that hangs fabio,
    a write into the raw tree, a configuration that is not HDF5), refused by the real
    command with one line (:mod:`nxgid.demo.safety`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nxgid.demo.conversion import (
    DEMO_OVERRIDES,
    DEMO_RECIPE,
    ConversionReport,
    check_reduction,
    demo_geometry,
    validate_outputs,
    write_sample_files,
)
from nxgid.demo.handouts import Handouts, write_handouts
from nxgid.demo.live import LiveReport, run_live_step
from nxgid.demo.safety import Refusal, run_safety_step
from nxgid.demo.setup import (
    AS_GROWN,
    BEAMLINE_SETTINGS,
    CONFIGURATION,
    SetupReport,
    build_setup,
)
from nxgid.errors import ExistsError, NxgidError
from nxgid.experiment.layout import Experiment, Selection
from nxgid.experiment.logbook import attach, detach
from nxgid.experiment.recipe import effective_recipe, set_recipe
from nxgid.settings.store import create_site_file, load_effective
from nxgid.workflow.reduce import queue_reduction
from nxgid.workflow.status import ScanStatus, scan_status
from nxgid.workflow.sync import SyncReport, sync
from nxgid.workflow.tasks import TaskContext
from nxgid.workflow.worker import run_workers, work
from nxgid.workflow.workspace import (
    effective_settings,
    new_experiment,
    new_sample,
    open_database,
)

log = logging.getLogger("nxgid.demo.beamtime")

MARKER = ".nxgid-demo"
EXPERIMENT = "gid-demo-2026"
#: Local worker processes the demo reduces with.
WORKERS = 2

#: sample -> label -> scan -> (temperature in K, number of entries): what the demo's
#: raw tree holds and the import makes (see nxgid.demo.setup).
PLAN: dict[str, dict[str, dict[str, tuple[float, int]]]] = {
    "pentacene-SiO2": {
        "as-grown": {"s001": (295.0, 1), "s002": (295.0, 1), "s003": (295.0, 1),
                     "s005": (340.0, 1)},
    },
    "P3HT-blend": {
        "rt": {"s004": (295.0, 1)},
    },
}


@dataclass
class DemoReport:
    directory: Path
    site_file: Path
    raw_directory: Path
    experiment: Experiment
    sync: SyncReport
    status: list[ScanStatus]
    conversion: ConversionReport | None = None
    setup: SetupReport | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    live: LiveReport | None = None
    dask: DaskStep | None = None
    #: ``nxgid validate`` on every reduced, scan and configuration file: (exit status,
    #: the lines it printed).
    validation: tuple[int, list[str]] | None = None
    #: The harmful requests of the safety step and how each was refused.
    safety: list[Refusal] = field(default_factory=list)
    #: A raw frame with its mask, an exported table, the example inputs.
    handouts: Handouts | None = None


def _prepare(directory: Path, overwrite: bool) -> None:
    if directory.exists() and any(directory.iterdir()):
        if not overwrite:
            raise ExistsError(f"demo directory {directory} is not empty: choose a new "
                              "directory, or pass --overwrite to rebuild an earlier demo")
        if not (directory / MARKER).exists():
            raise ExistsError(f"{directory} is not empty and was not made by `nxgid demo`; "
                              "--overwrite only replaces an earlier demo, so nothing was "
                              "changed")
        for child in directory.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("made by `nxgid demo`; `--overwrite` may replace it\n")


def build_demo(directory: Path, *, overwrite: bool = False,
               progress: Callable[[str], None] | None = None) -> DemoReport:
    """Build the demo beamtime in *directory* and return what was made."""
    say = progress or (lambda _message: None)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    directory = directory.expanduser().resolve()
    _prepare(directory, overwrite)

    say("site settings")
    site_file = directory / "site" / "settings.ini"
    create_site_file(site_file, {
        "instrument": {
            "source": "Demo Synchrotron", "source_type": "Synchrotron X-ray Source",
            "instrument": "demo-gid", "raw_home": str(directory / "raw"),
            "analysis_home": str(directory / "analysis"),
        },
        "configuration": {"wavelength_A": "0.9537", "distance_mm": "285.0",
                          "detector": "Pilatus2M", "incidence_angle_deg": "0.15",
                          "polarization_factor": "0.99"},
        "beamline": BEAMLINE_SETTINGS,
    })
    site = load_effective(site_file)
    raw = directory / "raw" / EXPERIMENT
    raw.mkdir(parents=True)
    timings["settings"] = time.perf_counter() - start

    say("experiment")
    experiment = new_experiment(EXPERIMENT, site)
    handler = attach(experiment)
    try:
        log.info("demo beamtime started in %s", directory)
        timings["experiment"] = time.perf_counter() - start
        say("samples")
        for sample, labels in PLAN.items():
            for label in labels:
                new_sample(experiment, sample, label)
        timings["samples"] = time.perf_counter() - start
        setup = build_setup(experiment, site.settings, raw, say)
        timings.update(setup.timings_s)
        say("database")
        with open_database(experiment, site_path=site_file) as database:
            report = sync(database)
        timings["database"] = time.perf_counter() - start

        say("reduction recipe")
        effective = effective_settings(experiment, site_path=site_file)
        set_recipe(experiment, effective, "", list(DEMO_RECIPE.items()))
        for scope, values in DEMO_OVERRIDES.items():
            set_recipe(experiment, effective, scope, list(values.items()))
        write_sample_files(experiment, PLAN)
        timings["recipe"] = time.perf_counter() - start

        say(f"reduction: queue, then {WORKERS} local worker processes")
        effective = effective_settings(experiment, site_path=site_file)
        with open_database(experiment, site_path=site_file) as database:
            plan = queue_reduction(database, TaskContext(experiment, effective),
                                   [Selection()])
        codes = run_workers(experiment, WORKERS, site_path=site_file)
        with open_database(experiment, site_path=site_file) as database:
            status = scan_status(database)
        timings["reduction"] = time.perf_counter() - start
        failed = [f"{row.scan} {t.task} {t.entry}: {t.error}" for row in status
                  for t in row.tasks if t.status != "done"]
        if failed or any(codes):
            raise NxgidError("demo reduction did not finish: " + "; ".join(failed[:3]))

        say("checks")
        first_ref, first_entry, angles = setup.stacks[0]
        files = sorted((experiment.reduced_file(row.scan, entry) for row in status
                        for entry in row.entries),
                       key=lambda p: p != experiment.reduced_file(first_ref, first_entry))
        conversion = check_reduction(
            directory, files, angles[0], experiment.raw_stack(first_ref, first_entry),
            setup.poni, site.settings.configuration.polarization_factor,
            {f"{t.task} {row.scan} {t.entry}".rstrip(): t.duration_s or 0.0
             for row in status for t in row.tasks if t.task == "convert"},
            effective_recipe(experiment, effective, first_ref).targets())
        conversion.queued = plan.summary()
        timings["checks"] = time.perf_counter() - start
        found = sum(check.ok for check in conversion.spots)
        log.info("converted simulated frames to %s; %d of %d spots within half a bin",
                 ", ".join(conversion.results), found, len(conversion.spots))

        say("live mode: a new scan measured while `nxgid watch` runs")
        cfg = site.settings.configuration
        live = run_live_step(
            experiment, effective_settings(experiment, site_path=site_file), raw,
            site_file, setup.spec_file,
            demo_geometry(cfg.wavelength_A, cfg.distance_mm, cfg.detector), *AS_GROWN,
            cfg.polarization_factor, CONFIGURATION)
        # what live mode recorded is up to date for the workflow: only the preview is left
        effective = effective_settings(experiment, site_path=site_file)
        with open_database(experiment, site_path=site_file) as database:
            ctx = TaskContext(experiment, effective)
            live.after = queue_reduction(database, ctx, [Selection.parse(str(live.scan))])
            work(database, ctx)
        timings["live mode"] = time.perf_counter() - start

        say("a recipe change, redone on a Dask cluster (dask-local, 2 workers)")
        dask = redo_on_dask(experiment, site_file)
        timings["dask"] = time.perf_counter() - start
        with open_database(experiment, site_path=site_file) as database:
            status = scan_status(database)

        say("validation: `nxgid validate` on every reduced, scan and configuration file")
        outputs = sorted({experiment.reduced_file(row.scan, entry) for row in status
                          for entry in row.entries} |
                         {experiment.scan_file(row.scan) for row in status} |
                         set(experiment.configurations_dir.glob("*.nxs")))
        validation = validate_outputs(outputs)
        timings["validation"] = time.perf_counter() - start
        if validation[0] != 0:
            raise NxgidError("demo outputs are not valid NeXus: " + "; ".join(
                line for line in validation[1] if "NOT valid" in line or "[" in line)[:500])

        say("data safety: requests that would harm data, refused")
        first_cbf = min(raw.rglob("*.cbf"))
        safety = run_safety_step(directory, site_file.parent, experiment.root,
                                 experiment.raw_stack(first_ref, first_entry), setup.poni,
                                 first_cbf, raw)
        timings["safety"] = time.perf_counter() - start
        broken = [r.what for r in safety if r.status != 2 or not r.kept]
        if broken:
            raise NxgidError("demo safety step: not refused as promised: " + ", ".join(broken))
        say("hand-outs: a raw frame with its mask, a profile as a table, example inputs")
        handouts = write_handouts(directory, experiment, first_ref, first_entry)
        timings["hand-outs"] = time.perf_counter() - start
        log.info("demo beamtime ready: %s", report.summary())
    finally:
        detach(handler)
    return DemoReport(directory=directory, site_file=site_file, raw_directory=raw,
                      experiment=experiment, sync=report, status=status,
                      conversion=conversion, setup=setup, timings_s=timings, live=live,
                      dask=dask, validation=validation, safety=safety, handouts=handouts)


@dataclass
class DaskStep:
    change: str
    stale: list
    done: int
    failed: int
    where: list[str]
    seconds: float


def redo_on_dask(experiment: Experiment, site_file: Path) -> DaskStep:
    """``nxgid recipe set --for P3HT-blend outputs …`` adds the pseudo-polar map for the
    polymer; its conversion turns stale, and ``nxgid reduce P3HT-blend --stale --now
    --executor dask --scheduler dask-local -n 2`` redoes it, with its preview, on a Dask
    cluster of two worker processes."""
    from nxgid.workflow.dask_executor import run_dask

    tick = time.perf_counter()
    outputs = f"{DEMO_RECIPE['outputs']}, img_gid_pseudopol"
    effective = effective_settings(experiment, site_path=site_file)
    axes = "q_gid_rad=0.2:2.8:520, q_gid_azimuth=0:4.5:225"
    set_recipe(experiment, effective, "P3HT-blend",
               [("outputs", outputs), ("img_gid_pseudopol", axes)])
    effective = effective_settings(experiment, site_path=site_file)
    ctx = TaskContext(experiment, effective)
    with open_database(experiment, site_path=site_file) as database:
        plan = queue_reduction(database, ctx, [Selection.parse("P3HT-blend")], stale=True)
        report = run_dask(database, ctx, "dask-local", workers=2)
        where = sorted({t.detail.rsplit("[", 1)[-1].rstrip("]") for row in
                        scan_status(database, Selection.parse("P3HT-blend"))
                        for t in row.tasks if t.detail and "dask worker" in t.detail})
    return DaskStep(change=f"[reduction P3HT-blend] outputs = {outputs}; "
                           f"img_gid_pseudopol = {axes}", stale=plan.stale,
                    done=report.done, failed=report.failed, where=where,
                    seconds=time.perf_counter() - tick)
