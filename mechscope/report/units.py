"""Everything a report says about single units, gathered layer by layer from the analyses.

One streaming pass finds the top and bottom dataset examples of every unit of every
layer; feature visualisation renders the units of a layer in chunks, one batch each; ablating
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
from torch import Tensor, nn

from mechscope.capture.units import layer_unit_axes
from mechscope.circuits import dataset_examples, polysemanticity
from mechscope.circuits.ablation import UnitAblation, unit_ablation_effect
from mechscope.circuits.connections import Connection, unit_connections
from mechscope.circuits.examples import LayerExamples
from mechscope.circuits.polysemantic import Polysemanticity
from mechscope.errors import MechscopeError
from mechscope.featurevis import InputSpace, RenderConfig, visualize
from mechscope.featurevis.evidence import Evidence
from mechscope.featurevis.render import RenderResult
from mechscope.featurevis.visualize import Visualization, unit_objective
from mechscope.report.context import ReportContext

__all__ = ["LayerUnits", "analyse_units", "example_inputs", "UNITS_PER_TASK"]

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
    """Examples, polysemanticity, feature visualisation, ablation and connections of every unit layer.

    The dataset-example search, the renders and the ablations run as tasks on `ctx.engine`
    (chunks of `UNITS_PER_TASK` units of one layer; the same chunks on any engine, so the
    result does not depend on how many workers ran them), kept in `ctx.cache` when it is set.
    """
    widths = {name: _width(ctx, name) for name in ctx.unit_layers}
    layers = [name for name, width in widths.items() if width]
    results = {
        name: LayerUnits(name, n_units=int(widths[name] or 0),
                         shown=_shown(int(widths[name] or 0), ctx.settings.max_units))
        for name in layers
    }
    if not layers or ctx.data is None:
        return results
    inputs, targets = example_inputs(ctx)
    found = dataset_examples(ctx.model, inputs, layers, k=min(ctx.settings.k, inputs.shape[0]),
                             progress=ctx.progress, engine=ctx.engine, cache=ctx.cache)
    for name in layers:
        units = results[name]
        units.examples = found[name]
        if ctx.is_classifier:
            units.poly = polysemanticity(found[name], targets, n_classes=len(ctx.class_names),
                                         class_names=ctx.class_names)
    _connect(ctx, results)
    _featurevis(ctx, results)
    _ablate(ctx, results)
    return results


UNITS_PER_TASK = 32
"""Units of one layer rendered or ablated by one task."""


def _chunks(results: dict[str, LayerUnits]) -> list[tuple[str, tuple[int, ...]]]:
    """(layer, units) of every task: each layer's shown units cut into runs of `UNITS_PER_TASK`."""
    return [(name, tuple(range(start, min(start + UNITS_PER_TASK, units.shown))))
            for name, units in results.items() for start in range(0, units.shown, UNITS_PER_TASK)]


def _shown(width: int, max_units: int | None) -> int:
    """Units of a layer `width` wide that get a page: the first `max_units`, or all when it is None."""
    return width if max_units is None else min(width, max_units)


def _width(ctx: ReportContext, name: str) -> int | None:
    info = ctx.layer_info(name)
    if info is None or info.output_shape is None or len(info.output_shape) == 0:
        return None
    shape = (1, *info.output_shape)
    return layer_unit_axes(ctx.model, name, shape).n_units(shape)


def _featurevis(ctx: ReportContext, results: dict[str, LayerUnits]) -> None:
    if not ctx.is_image or ctx.data is None:
        shape = "no data" if ctx.data is None else "inputs of shape " + "x".join(
            str(d) for d in ctx.data.x_test.shape[1:])
        for units in results.values():
            units.featurevis_reason = (
                "feature visualisation optimises an input image; this model takes " + shape + ", not images."
            )
        return
    config = RenderConfig(steps=ctx.settings.featurevis_steps, restarts=ctx.settings.featurevis_restarts)
    chunks = _chunks(results)
    parts = ctx.engine.map(_render_task, [(layer, units, config) for layer, units in chunks],
                           shared=(ctx.model, ctx.data.x_test), cache=ctx.cache,
                           desc=None if not ctx.progress else "feature visualisation")
    for name, units in results.items():
        mine = [part for (layer, _), part in zip(chunks, parts) if layer == name]
        failure = next((part for part in mine if isinstance(part, str)), None)
        if failure is not None:
            units.featurevis_reason = f"rendering failed: {failure}"
        elif mine:
            whole = unit_objective("channel", name, list(range(units.shown))).description
            units.featurevis = _joined([p for p in mine if isinstance(p, Visualization)], whole)


def _render_task(shared: tuple[nn.Module, Tensor], item: tuple[str, tuple[int, ...], RenderConfig]) -> Visualization | str:
    """Render units of one layer (a task): the Visualization, or why it failed."""
    model, data = shared
    layer, units, config = item
    try:
        return visualize(model, unit_objective("channel", layer, list(units)), data,
                         space=InputSpace.from_data(data), config=config, progress=False)
    except MechscopeError as err:
        return str(err)


def _joined(parts: list[Visualization], description: str) -> Visualization:
    """One layer's renders from its chunks, as if rendered in one call (the objective described whole)."""
    results, proofs = [p.result for p in parts], [p.evidence for p in parts]
    units = [u for r in results for u in (r.units or ())]
    result = RenderResult(torch.cat([r.images for r in results]), torch.cat([r.trace for r in results], dim=1),
                          torch.cat([r.activation for r in results]), tuple(units) if units else None, description,
                          sum(r.seconds for r in results))
    proof = Evidence(description, *(tuple(v for e in proofs for v in getattr(e, name)) for name in
                                    ("units", "activation", "dataset_max", "dataset_argmax", "ratio")))
    return Visualization(result, proof)


def _ablate(ctx: ReportContext, results: dict[str, LayerUnits]) -> None:
    if ctx.data is None:
        return
    if not ctx.is_classifier and ctx.data.task != "regression":
        for units in results.values():
            units.notes.append("ablation needs a classifier returning logits or a regression model.")
        return
    n = ctx.settings.ablation_inputs
    x, y = ctx.data.x_test[:n], ctx.data.y_test[:n]
    task = "classification" if ctx.is_classifier else "regression"
    chunks = _chunks(results)
    parts = ctx.engine.map(_ablation_task, [(layer, units, task, ctx.settings.output) for layer, units in chunks],
                           shared=(ctx.model, x, y), cache=ctx.cache, desc=None if not ctx.progress else "ablation")
    for name, units in results.items():
        mine = [part for (layer, _), part in zip(chunks, parts) if layer == name]
        if not mine:
            continue
        units.ablation = torch.cat([p.change for p in mine])
        per_class = [p.per_class for p in mine]
        units.ablation_per_class = None if per_class[0] is None else torch.cat(per_class)  # type: ignore[arg-type]
        units.ablation_metric = mine[0].metric


def _ablation_task(shared: tuple[nn.Module, Tensor, Tensor], item: tuple[str, tuple[int, ...], str, Any]) -> UnitAblation:
    """Zero each of some units of one layer (a task) and score what it costs."""
    model, x, y = shared
    layer, units, task, output = item
    return unit_ablation_effect(model, x, y, layer, list(units), task=task, output=output)  # type: ignore[arg-type]


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
