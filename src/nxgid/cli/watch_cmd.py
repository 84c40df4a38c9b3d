"""``nxgid watch``: live mode, importing and reducing scans while they are measured."""

from __future__ import annotations

import click

from nxgid.cli.common import State, console, experiment_option, pass_state, stderr_without


@click.command()
@click.argument("selection", nargs=-1, metavar="[SAMPLE[/LABEL]]...")
@click.option("--config", "configuration", required=True,
              help="Configuration of the scans imported.")
@click.option("--beamline", help="Beamline plugin [the settings' [beamline] plugin].")
@click.option("--poll", is_flag=True,
              help="Poll the raw tree instead of using inotify (network file systems, "
                   "where inotify does not see files written by other hosts).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              metavar="S", help="Look at the whole raw tree at least every S seconds.")
@click.option("--settle", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              metavar="S", help="Take an image file only once its size and time have not "
                                "changed for S seconds.")
@click.option("--max-passes", type=click.IntRange(min=1), metavar="N",
              help="Stop after N passes (for scripts and tests).")
@click.option("--until-idle", type=click.FloatRange(min=0.0), metavar="S",
              help="Stop once nothing was imported or converted for S seconds and no file "
                   "is waiting (for scripts and tests).")
@experiment_option
@pass_state
def watch(state: State, selection, configuration, beamline, poll, interval, settle,
          max_passes, until_idle) -> None:
    """Live mode: watch the experiment's raw tree, import new scans and convert new
    frames as they land, appending to the reduced files.

    New scans of SAMPLE[/LABEL] (default: every sample and label) are imported through
    the beamline plugin with the configuration --config; frames added to imported scans
    are appended to their raw stacks and converted under each scan's recipe into
    <scan>/fN_reduced.nxs, which `nxgid reduce` and `nxgid status` then see up to date.
    An image file is read only once it has settled (--settle) and reads completely; the
    raw tree is never written. Ctrl-C stops cleanly: every file written so far stays
    readable. Frames added inside HDF5 detector files are not picked up.

    \b
    Examples:
        nxgid watch --config gid
        nxgid watch pentacene-SiO2/as-grown --config gid --beamline spec
        nxgid watch --config gid --poll --interval 5
    """
    import signal

    from nxgid.workflow.live import watch as run_watch
    from nxgid.workflow.live.reduction import LIVE_EVENT
    from nxgid.workflow.workspace import effective_settings

    experiment = state.experiment()
    effective = effective_settings(experiment)
    out = console()

    def on_start(observer: str, raw) -> None:
        out.print(f"watching {raw} ({observer}); Ctrl-C stops")

    def on_event(event) -> None:  # e.g. "film/rt/s012 f1: converted frames 0–9 → …"
        prefix = {"warning": "warning: ", "error": "ERROR: "}.get(event.kind, "")
        out.print(f"{prefix}{event}")

    def interrupt(_number, _frame) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)  # stopped like Ctrl-C
    try:
        with stderr_without(LIVE_EVENT):  # each event once: on stdout, by on_event
            summary = run_watch(experiment, effective, configuration=configuration,
                                beamline=beamline, selections=selection, poll=poll,
                                interval=interval, settle=settle, on_event=on_event,
                                on_start=on_start, max_passes=max_passes,
                                until_idle=until_idle)
    except KeyboardInterrupt:  # before the watch started or after it ended
        out.print("stopped")
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
    out.print(("stopped: " if summary.interrupted else "done: ") + summary.line())
