"""Every `mechscope` command, built from its module: noun-verb groups, the verbs, and the earlier verbs as aliases.

Importing this module imports the whole library (PyTorch included); `mechscope.cli.main` imports
it only when a command runs, so `mechscope --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from mechscope.cli import layers, train, tour
from mechscope.cli import formula
from mechscope.cli import attribute
from mechscope.cli import probe
from mechscope.cli import examples, circuits
from mechscope.cli import fourier
from mechscope.cli import featurevis
from mechscope.cli import report, serve
from mechscope.cli import import_model

__all__ = ["app"]

app = typer.Typer(
    name="mechscope",
    help="Train or load a network, record what happens inside it, and explain it. Earlier verbs still work: "
    "train, import-model, layers (= model ...), examples, featurevis (= units examples/render), serve (= report serve).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)



class DefaultGroup(TyperGroup):
    """A command group that runs its first command when the next word is not one of its commands.

    So `mechscope report CHECKPOINT --out DIR` stays `mechscope report build CHECKPOINT --out DIR`.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        first = next(iter(self.commands), None)
        if args and first is not None and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [first, *args]
        return super().parse_args(ctx, args)


def _group(name: str, help_text: str, *, default: bool = False) -> typer.Typer:
    group = typer.Typer(name=name, help=help_text, no_args_is_help=True, add_completion=False,
                        cls=DefaultGroup if default else TyperGroup, rich_markup_mode=None)
    app.add_typer(group, name=name)
    return group


model = _group("model", "Bring a model in, train a built-in one, or list its layers.")
model.add_typer(train.app, name="train")
model.command("import", epilog=import_model.EXAMPLES)(import_model.import_model)
model.command("layers", epilog=layers.EXAMPLES)(layers.layers)
units = _group("units", "What each unit of a layer responds to: dataset examples, rendered inputs.")
units.command("examples", epilog=examples.EXAMPLES)(examples.examples)
units.command("render", epilog=featurevis.EXAMPLES)(featurevis.featurevis)
probe_group = _group("probe", "Decode what the layers hold with probes (`mechscope probe CHECKPOINT` = probe fit).",
                     default=True)
probe_group.command("fit", epilog=probe.EXAMPLES)(probe.probe)
report_group = _group("report", "The browsable report of a model (`mechscope report CHECKPOINT` = report build).",
                      default=True)
report_group.command("build", epilog=report.EXAMPLES)(report.report)
report_group.command("serve", epilog=serve.EXAMPLES)(serve.serve)
app.command("attribute", epilog=attribute.EXAMPLES)(attribute.attribute)
app.command("circuits", epilog=circuits.EXAMPLES)(circuits.circuits)
app.command("formula", epilog=formula.EXAMPLES)(formula.formula)
app.command("fourier", epilog=fourier.EXAMPLES)(fourier.fourier)
app.command("tour", epilog=tour.EXAMPLES)(tour.tour)
# the earlier verbs (mechscope.cli.main.ALIASES), hidden from the help: each runs its noun-verb command
app.add_typer(train.app, name="train", hidden=True)
app.command("import-model", hidden=True, epilog=import_model.EXAMPLES)(import_model.import_model)
app.command("layers", hidden=True, epilog=layers.EXAMPLES)(layers.layers)
app.command("examples", hidden=True, epilog=examples.EXAMPLES)(examples.examples)
app.command("featurevis", hidden=True, epilog=featurevis.EXAMPLES)(featurevis.featurevis)
app.command("serve", hidden=True, epilog=serve.EXAMPLES)(serve.serve)
