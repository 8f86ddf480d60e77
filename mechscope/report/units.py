"""Everything a report says about single units, gathered layer by layer from the analyses.

One streaming pass finds the top and bottom dataset examples of every unit of every
layer; one feature-visualisation call renders all units of a layer together; ablating
each unit runs as one replicated batch per chunk of units (`mechscope.circuits.ablation.unit_ablation`);
connections are read from the weights between unit layers that feed each other
(`mechscope.circuits.connections.unit_connections`).

Units lie along each layer's unit axis (`mechscope.capture.units`): channels of conv maps,
features of sequences (batch, pos, d_model), neurons of dense layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.capture.units import layer_unit_axes
from mechscope.circuits import dataset_examples, polysemanticity
from mechscope.circuits.ablation import unit_ablation_effect
from mechscope.circuits.connections import Connection, unit_connections
from mechscope.circuits.examples import LayerExamples
from mechscope.circuits.polysemantic import Polysemanticity
from mechscope.errors import MechscopeError
from mechscope.featurevis import InputSpace, RenderConfig, visualize
from mechscope.featurevis.visualize import Visualization, unit_objective
from mechscope.report.context import ReportContext

__all__ = ["LayerUnits", "analyse_units", "example_inputs"]

_TOP_CONNECTIONS = 6  # connections listed per unit and direction


@dataclass
class LayerUnits:
    """Per-unit results of one layer."""

    layer: str  # dotted layer name
    n_units: int  # channels (conv), features (sequence) or neurons (dense)
    shown: int  # units that get a page (the first ones)
    examples: LayerExamples | None = None  # top/bottom dataset examples
    poly: Polysemanticity | None = None  # label spread of the top examples (classifiers)
    featurevis: Visualization | None = None  # rendered units with evidence (image models)
    featurevis_reason: str | None = None  # why there is no feature visualisation
    ablation: Tensor | None = None  # (unit,) metric change when the unit is zeroed
    ablation_per_class: Tensor | None = None  # (unit, n_classes) accuracy drop per class
    ablation_metric: str = ""  # what `ablation` measures
    inbound: dict[int, list[Connection]] = field(default_factory=dict)  # unit -> strongest inputs
    outbound: dict[int, list[Connection]] = field(default_factory=dict)  # unit -> strongest outputs
    notes: list[str] = field(default_factory=list)  # what was skipped and why

    def __json__(self) -> dict[str, Any]:
        """Summary for `mechscope.serialize.to_json`: no pixels, no dataset examples, no per-class ablation."""
        return {
            "layer": self.layer,
            "n_units": self.n_units,
            "shown": self.shown,
            "featurevis": self.featurevis,
            "featurevis_reason": self.featurevis_reason,
            "polysemanticity": self.poly,
            "ablation_metric": self.ablation_metric,
            "ablation": self.ablation,
            "inbound": self.inbound,
            "outbound": self.outbound,
            "notes": self.notes,
        }


def example_inputs(ctx: ReportContext) -> tuple[Tensor, Tensor]:
    """Held-out inputs the unit pages draw examples from, with their targets.

    Non-image data with repeated inputs (modular pairs drawn with replacement) is reduced
    to its distinct rows, so a unit's top examples are distinct inputs.
    """
    if ctx.data is None:
        raise MechscopeError("no data: dataset examples need inputs.")
    x, y = ctx.data.x_test, ctx.data.y_test
    if not ctx.is_image and x.dim() == 2 and x.shape[0] <= 100_000:
        distinct, inverse = torch.unique(x, dim=0, return_inverse=True)
        if distinct.shape[0] < x.shape[0]:
            first = torch.full((distinct.shape[0],), x.shape[0], dtype=torch.long, device=x.device)
            first = first.scatter_reduce(0, inverse, torch.arange(x.shape[0], device=x.device), reduce="amin")
            return distinct, y[first]
    return x, y


def analyse_units(ctx: ReportContext) -> dict[str, LayerUnits]:
    """Examples, polysemanticity, feature visualisation, ablation and connections of every unit layer."""
    widths = {name: _width(ctx, name) for name in ctx.unit_layers}
    layers = [name for name, width in widths.items() if width]
    results = {
        name: LayerUnits(name, n_units=int(widths[name] or 0), shown=min(int(widths[name] or 0), ctx.settings.max_units))
        for name in layers
    }
    if not layers or ctx.data is None:
        return results
    inputs, targets = example_inputs(ctx)
    found = dataset_examples(ctx.model, inputs, layers, k=min(ctx.settings.k, inputs.shape[0]),
                             progress=ctx.progress, engine=ctx.engine)
    for name in layers:
        units = results[name]
        units.examples = found[name]
        if ctx.is_classifier:
            units.poly = polysemanticity(found[name], targets, n_classes=len(ctx.class_names),
                                         class_names=ctx.class_names)
    _connect(ctx, results)
    steps = tqdm(layers, desc="units", unit="layer", leave=False, disable=None if ctx.progress else True)
    for name in steps:
        units = results[name]
        _featurevis(ctx, units)
        _ablate(ctx, units)
    return results


def _width(ctx: ReportContext, name: str) -> int | None:
    info = ctx.layer_info(name)
    if info is None or info.output_shape is None or len(info.output_shape) == 0:
        return None
    shape = (1, *info.output_shape)
    return layer_unit_axes(ctx.model, name, shape).n_units(shape)


def _featurevis(ctx: ReportContext, units: LayerUnits) -> None:
    if not ctx.is_image or ctx.data is None:
        shape = "no data" if ctx.data is None else "inputs of shape " + "x".join(
            str(d) for d in ctx.data.x_test.shape[1:])
        units.featurevis_reason = (
            "feature visualisation optimises an input image; this model takes " + shape + ", not images."
        )
        return
    data = ctx.data.x_test
    try:
        units.featurevis = visualize(
            ctx.model,
            unit_objective("channel", units.layer, list(range(units.shown))),
            data,
            space=InputSpace.from_data(data),
            config=RenderConfig(steps=ctx.settings.featurevis_steps, restarts=ctx.settings.featurevis_restarts),
            progress=ctx.progress,
        )
    except MechscopeError as err:
        units.featurevis_reason = f"rendering failed: {err}"


def _ablate(ctx: ReportContext, units: LayerUnits) -> None:
    if ctx.data is None:
        return
    if not ctx.is_classifier and ctx.data.task != "regression":
        units.notes.append("ablation needs a classifier returning logits or a regression model.")
        return
    n = ctx.settings.ablation_inputs
    x, y = ctx.data.x_test[:n], ctx.data.y_test[:n]
    effect = unit_ablation_effect(ctx.model, x, y, units.layer, list(range(units.shown)),
                                  task="classification" if ctx.is_classifier else "regression",
                                  output=ctx.settings.output)
    units.ablation, units.ablation_per_class, units.ablation_metric = effect.change, effect.per_class, effect.metric


def _connect(ctx: ReportContext, results: dict[str, LayerUnits]) -> None:
    """Inbound/outbound weight links between unit layers and to the inputs and outputs (`unit_connections`)."""
    example = ctx.example
    n_features = int(example.shape[1]) if example is not None and example.dim() == 2 else 0
    try:
        found = unit_connections(
            ctx.model,
            {name: units.n_units for name, units in results.items()},
            max_units=ctx.settings.max_units,
            example=example,
            top=_TOP_CONNECTIONS,
            input_names=_input_names(ctx, n_features),
            output_names=ctx.class_names if ctx.is_classifier else (),
        )
    except MechscopeError as err:
        for units in results.values():
            units.notes.append(f"connections are not shown: {err}")
        return
    for name, links in found.items():
        results[name].inbound, results[name].outbound = links.inbound, links.outbound


def _input_names(ctx: ReportContext, n: int) -> list[str] | None:
    """Labels of modular inputs ("input a = 1"); None for any other input (numbered by `unit_connections`)."""
    extras = ctx.data.extras if ctx.data is not None else {}
    m = int(extras.get("modulus", 0) or 0)
    if m and n == 2 * m:
        return [f"input a = {i}" for i in range(m)] + [f"input b = {i}" for i in range(m)]
    return None
