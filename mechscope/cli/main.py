"""The `mechscope` command: groups of verbs over checkpoints and built-in targets."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from mechscope.cli.commands import ALIASES, command, full_command  # light: builds commands only on demand
from mechscope.cli.errors import CLIError
from mechscope.errors import ConfigError, LayerNameError, LimitError, MechscopeError

try:  # typer vendors click in recent releases; older ones depend on it
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

__all__ = ["app", "main", "COMMANDS", "ALIASES", "full_command"]

COMMANDS: dict[str, tuple[str, bool]] = {
    "model": ("Bring a model in, train a built-in one, or list its layers.", False),
    "units": ("What each unit of a layer responds to: dataset examples, rendered inputs.", False),
    "probe": ("Decode what the layers hold with probes (`mechscope probe CHECKPOINT` = probe fit).", False),
    "report": ("The browsable report of a model (`mechscope report CHECKPOINT` = report build).", False),
    "attribute": ("Explain a classifier's predictions with attribution maps and check that the maps mean "
                  "something.", False),
    "circuits": ("Find each class's top detector channels, the conv wiring into them, and test them by "
                 "ablation.", False),
    "formula": ("Read the formula a piecewise-linear network computes, with coverage and verified errors.", False),
    "fourier": ("Key frequencies, restricted/excluded loss, ablations and clock-vs-pizza of a modular model.",
                False),
    "patch": ("Which layer, position, head or unit carries the answer: activation and attribution patching.",
              False),
    "lens": ("What the residual stream predicts at each depth (logit lens) and which heads and MLPs write the "
             "answer.", False),
    "sweep": ("Train and probe a model over a grid of settings and seeds, one task per point.", False),
    "tour": ("Train every built-in target, run every analysis and write a browsable report of each into --out.",
             False),
    **{alias: (f"= {target}", True) for alias, target in ALIASES.items()},
}
"""Top-level commands: name -> (one-line help, hidden). Listed without importing them (and PyTorch)."""


class LazyCommands(TyperGroup):
    """The top-level group: lists its commands from COMMANDS and imports one only when it runs or shows help."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [name for name, (_, hidden) in COMMANDS.items() if not hidden]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return command(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, text) for name, (text, hidden) in COMMANDS.items() if not hidden]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="mechscope",
    help="Train or load a network, record what happens inside it, and explain it. Earlier verbs still work: "
    "train, import-model, layers (= model ...), examples, featurevis (= units examples/render), serve (= report serve).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=LazyCommands,
)


@app.callback()
def _root() -> None:
    """Train or load a network, record what happens inside it, and explain it."""


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
        command = ctx.command
        if isinstance(command, LazyCommands):
            names = ", ".join(command.list_commands(ctx))
        else:
            commands = getattr(command, "commands", {}) or {}
            names = ", ".join(name for name, cmd in commands.items() if not getattr(cmd, "hidden", False))
        return f"{ctx.command_path} needs a command: {names}{hint}"
    return " ".join(err.format_message().split()) + hint


if __name__ == "__main__":
    sys.exit(main())
