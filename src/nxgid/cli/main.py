"""The ``nxgid`` command: a thin shell that parses, calls the library and prints.

Error contract, for every command: an expected error (:class:`nxgid.errors.NxgidError`,
or a usage error such as a bad option value) prints one line ``error: …`` on stderr and
exits with status 2, without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from nxgid.cli.common import State, configure_logging, experiment_option
from nxgid.errors import NxgidError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Command name -> "module:attribute"; imported only when the command runs or lists help.
COMMANDS = {
    "settings": "nxgid.cli.settings_cmd:settings",
    "experiment": "nxgid.cli.experiment_cmd:experiment",
    "sample": "nxgid.cli.experiment_cmd:sample",
    "db": "nxgid.cli.db_cmd:db",
    "status": "nxgid.cli.db_cmd:status",
    "log": "nxgid.cli.log_cmd:log_command",
    "demo": "nxgid.cli.demo_cmd:demo",
    "examples": "nxgid.cli.demo_cmd:examples",
    "convert": "nxgid.cli.convert_cmd:convert",
    "show": "nxgid.cli.convert_cmd:show",
    "plot": "nxgid.cli.convert_cmd:plot",
    "export": "nxgid.cli.export_cmd:export",
    "config": "nxgid.cli.config_cmd:config",
    "calibrate": "nxgid.cli.config_cmd:calibrate",
    "mask": "nxgid.cli.config_cmd:mask",
    "scan": "nxgid.cli.scan_cmd:scan",
    "stack": "nxgid.cli.scan_cmd:stack",
    "sum": "nxgid.cli.scan_cmd:sum_command",
    "beamlines": "nxgid.cli.import_cmd:beamlines",
    "import": "nxgid.cli.import_cmd:import_command",
    "reduce": "nxgid.cli.reduce_cmd:reduce",
    "workers": "nxgid.cli.reduce_cmd:workers",
    "retry": "nxgid.cli.reduce_cmd:retry",
    "watch": "nxgid.cli.watch_cmd:watch",
    "recipe": "nxgid.cli.recipe_cmd:recipe",
    "validate": "nxgid.cli.validate_cmd:validate",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, keeping ``--help`` instant."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            import importlib

            module, attribute = COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@experiment_option
@click.option("-v", "--verbose", count=True, help="More output on stderr (-vv for debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="nxgid", prog_name="nxgid")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """nxgid: grazing-incidence x-ray scattering experiments, from images to NeXus files.

    Commands act on the experiment containing the current directory, or on the one
    given with --experiment/-E PATH. Start with:

    \b
        nxgid demo /tmp/nxgid-demo        # a complete example beamtime
        nxgid settings init -i            # site settings, prompting for each key
        nxgid experiment new my-beamtime  # a new experiment tree
    """
    state = ctx.ensure_object(State)
    state.verbose, state.debug = verbose, debug
    configure_logging(verbose, debug)


def _print_error(message: str) -> None:
    click.echo(f"error: {message}", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and applies the error contract."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="nxgid", standalone_mode=False)
    except NxgidError as exc:
        if debug:
            raise
        _print_error(str(exc))
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(0)
    except click.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        _print_error(f"{exc.format_message()}{hint}")
        sys.exit(2)
    except click.ClickException as exc:
        _print_error(exc.format_message())
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _print_error("aborted; nothing was changed by the interrupted step")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.stderr.close()  # output piped into `head`: not an error
        sys.exit(0)
    except Exception as exc:
        if debug:
            raise
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        _print_error(f"unexpected {type(exc).__name__}: {first_line} "
                     "(this is a bug in nxgid; rerun with --debug for the traceback)")
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
