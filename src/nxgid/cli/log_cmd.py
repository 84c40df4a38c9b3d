"""``nxgid log``: read the experiment log (tasks/nxlogger.log)."""

from __future__ import annotations

import click

from nxgid.cli.common import State, experiment_option, pass_state


@click.command("log")
@experiment_option
@click.option("-n", "--lines", default=20, show_default=True, type=click.IntRange(min=0),
              help="How many of the last lines to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@pass_state
def log_command(state: State, lines: int, follow: bool) -> None:
    """Show the end of the experiment log.

    \b
    Examples:
        nxgid log -n 50
        nxgid log --follow
    """
    from nxgid.experiment.logbook import follow as follow_lines
    from nxgid.experiment.logbook import tail

    exp = state.experiment()
    for line in tail(exp.log_file, lines):
        click.echo(line)
    if follow:
        try:
            for line in follow_lines(exp.log_file):
                click.echo(line)
        except KeyboardInterrupt:
            return
