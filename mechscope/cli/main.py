"""The `mechscope` command: groups of verbs over checkpoints and built-in targets."""

from __future__ import annotations

import os
import sys

import typer

from mechscope.cli import layers, train, tour
from mechscope.cli import formula
from mechscope.cli import attribute
from mechscope.cli import probe
from mechscope.cli import examples, circuits
from mechscope.cli import fourier
from mechscope.cli import featurevis
from mechscope.cli import report, serve
from mechscope.cli import import_model
from mechscope.cli.errors import CLIError
from mechscope.errors import ConfigError, LayerNameError, LimitError, MechscopeError

try:  # typer vendors click in recent releases; older ones depend on it
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

__all__ = ["app", "main"]

app = typer.Typer(
    name="mechscope",
    help="Train or load a network, record what happens inside it, and explain it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(train.app, name="train")
app.command("import-model", epilog=import_model.EXAMPLES)(import_model.import_model)
app.command("layers", epilog=layers.EXAMPLES)(layers.layers)
app.command("tour", epilog=tour.EXAMPLES)(tour.tour)
app.command("formula", epilog=formula.EXAMPLES)(formula.formula)
app.command("attribute", epilog=attribute.EXAMPLES)(attribute.attribute)
app.command("probe", epilog=probe.EXAMPLES)(probe.probe)
app.command("examples", epilog=examples.EXAMPLES)(examples.examples)
app.command("circuits", epilog=circuits.EXAMPLES)(circuits.circuits)
app.command("fourier", epilog=fourier.EXAMPLES)(fourier.fourier)
app.command("featurevis", epilog=featurevis.EXAMPLES)(featurevis.featurevis)
app.command("report", epilog=report.EXAMPLES)(report.report)
app.command("serve", epilog=serve.EXAMPLES)(serve.serve)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; errors print one line (exit 2 for bad arguments, 1 otherwise).

    Bad arguments are usage errors, CLIError, and the library's ConfigError (a value out of
    range), LimitError (a size over its limit) and LayerNameError (an unknown --layer).

    Set MECHSCOPE_DEBUG=1 to see the full traceback.
    """
    debug = os.environ.get("MECHSCOPE_DEBUG") == "1"
    command = typer.main.get_command(app)
    try:
        command.main(args=argv if argv is not None else sys.argv[1:], prog_name="mechscope", standalone_mode=False)
    except typer.Exit as done:
        return int(done.exit_code or 0)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return 130
    except click_exceptions.UsageError as err:
        if debug:
            raise
        typer.echo(f"Error: {_usage_line(err)}", err=True)
        return 2
    except (CLIError, LimitError, ConfigError, LayerNameError) as err:  # a flag to change: exit 2
        if debug:
            raise
        typer.echo(f"Error: {err}", err=True)
        return 2
    except MechscopeError as err:
        if debug:
            raise
        typer.echo(f"Error: {err}", err=True)
        return 1
    except OSError as err:  # the file system refused: one line naming the path
        if debug:
            raise
        where = f" at {err.filename!r}" if err.filename is not None else ""
        typer.echo(f"Error: {err.strerror or err}{where}.", err=True)
        return 1
    return 0


def _usage_line(err: click_exceptions.UsageError) -> str:
    """One line for a usage error; a group called without a command lists its commands."""
    ctx = err.ctx
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    if isinstance(err, click_exceptions.NoArgsIsHelpError) and ctx is not None:
        names = ", ".join(getattr(ctx.command, "commands", {}) or [])
        return f"{ctx.command_path} needs a command: {names}{hint}"
    return " ".join(err.format_message().split()) + hint


if __name__ == "__main__":
    sys.exit(main())
