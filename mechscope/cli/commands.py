"""Every `mechscope` command, each built from its module only when it is asked for.

`mechscope.cli.main` lists the commands without importing them; `command(name)` imports the
modules of one top-level command (and with them the part of the library it uses), and
`full_command()` the whole tree (for the reference documentation and the tests).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup

__all__ = ["command", "full_command", "DefaultGroup", "NAMES", "ALIASES"]

ALIASES = {
    "train": "model train",
    "import-model": "model import",
    "layers": "model layers",
    "examples": "units examples",
    "featurevis": "units render",
    "serve": "report serve",
}
"""The verbs of earlier releases, kept as hidden commands: alias -> the noun-verb form it runs."""


class DefaultGroup(TyperGroup):
    """A command group that runs its first command when the next word is not one of its commands.

    So `mechscope report CHECKPOINT --out DIR` stays `mechscope report build CHECKPOINT --out DIR`.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        first = next(iter(self.commands), None)
        if args and first is not None and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [first, *args]
        return super().parse_args(ctx, args)


def _group(help_text: str, *, default: bool = False) -> typer.Typer:
    group = typer.Typer(help=help_text, no_args_is_help=True, add_completion=False,
                        cls=DefaultGroup if default else TyperGroup, rich_markup_mode=None)
    group.callback()(lambda: None)  # a group even with one command (typer would collapse it into that command)
    return group


def _single(function: Callable[..., Any], epilog: str) -> Any:
    app = typer.Typer(add_completion=False, rich_markup_mode=None)
    app.command(epilog=epilog)(function)
    return typer.main.get_command(app)


def _model() -> Any:
    from mechscope.cli import import_model, layers, train

    group = _group("Bring a model in, train a built-in one, or list its layers.")
    group.add_typer(train.app, name="train")
    group.command("import", epilog=import_model.EXAMPLES)(import_model.import_model)
    group.command("layers", epilog=layers.EXAMPLES)(layers.layers)
    return typer.main.get_command(group)


def _units() -> Any:
    from mechscope.cli import examples, featurevis

    group = _group("What each unit of a layer responds to: dataset examples, rendered inputs.")
    group.command("examples", epilog=examples.EXAMPLES)(examples.examples)
    group.command("render", epilog=featurevis.EXAMPLES)(featurevis.featurevis)
    return typer.main.get_command(group)


def _probe() -> Any:
    from mechscope.cli import probe

    group = _group("Decode what the layers hold with probes (`mechscope probe CHECKPOINT` = probe fit).", default=True)
    group.command("fit", epilog=probe.EXAMPLES)(probe.probe)
    return typer.main.get_command(group)


def _report() -> Any:
    from mechscope.cli import report, serve

    group = _group("The browsable report of a model (`mechscope report CHECKPOINT` = report build).", default=True)
    group.command("build", epilog=report.EXAMPLES)(report.report)
    group.command("serve", epilog=serve.EXAMPLES)(serve.serve)
    return typer.main.get_command(group)


def _attribute() -> Any:
    from mechscope.cli import attribute

    return _single(attribute.attribute, attribute.EXAMPLES)


def _circuits() -> Any:
    from mechscope.cli import circuits

    return _single(circuits.circuits, circuits.EXAMPLES)


def _formula() -> Any:
    from mechscope.cli import formula

    return _single(formula.formula, formula.EXAMPLES)


def _fourier() -> Any:
    from mechscope.cli import fourier

    return _single(fourier.fourier, fourier.EXAMPLES)


def _patch() -> Any:
    from mechscope.cli import patch

    return _single(patch.patch, patch.EXAMPLES)


def _lens() -> Any:
    from mechscope.cli import lens

    return _single(lens.lens, lens.EXAMPLES)


def _sweep() -> Any:
    from mechscope.cli import sweep

    group = _group("Train and probe a model over a grid of settings and seeds, one task per point.")
    group.command("modular-mlp", epilog=sweep.EXAMPLES)(sweep.modular_mlp)
    return typer.main.get_command(group)


def _tour() -> Any:
    from mechscope.cli import tour

    return _single(tour.tour, tour.EXAMPLES)


_BUILDERS: dict[str, Callable[[], Any]] = {
    "model": _model, "units": _units, "probe": _probe, "report": _report, "attribute": _attribute,
    "circuits": _circuits, "formula": _formula, "fourier": _fourier, "patch": _patch,
    "lens": _lens, "sweep": _sweep, "tour": _tour,
}
NAMES = (*_BUILDERS, *ALIASES)
"""Every top-level command name, the hidden aliases last."""


@functools.cache
def command(name: str) -> Any:
    """The click command `mechscope NAME` runs (an alias: a hidden copy of its noun-verb command)."""
    if name in ALIASES:
        noun, verb = ALIASES[name].split()
        found = copy.copy(command(noun).commands[verb])
        found.hidden = True
        return found
    return _BUILDERS[name]()


@functools.cache
def full_command() -> Any:
    """The whole command tree as one click group (imports every command module)."""
    from mechscope.cli.main import app

    root: Any = copy.copy(typer.main.get_command(app))
    root.commands = {name: command(name) for name in NAMES}
    return root
