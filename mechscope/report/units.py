"""Everything a report says about single units, gathered layer by layer from the analyses.

One streaming pass finds the top and bottom dataset examples of every unit of every
layer; feature visualisation renders the units of a layer in chunks, one batch each; ablating
each unit runs as one replicated batch per chunk of units (`mechscope.circuits.ablation.unit_ablation`);
connections are read from the weights between unit layers that feed each other
(`mechscope.circuits.connections.unit_connections`).

Units lie along each layer's unit axis (`mechscope.capture.units`): channels of conv maps,
features of sequences (batch, pos, d_model), neurons of dense layers.

Under a memory budget (`ReportConfig.max_memory`) every batch of this work is cut smaller
(`memory_plan`), so the activations it holds stay under the budget: the same work in smaller
batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture.summary import activation_bytes
from mechscope.capture.units import layer_unit_axes
from mechscope.circuits import dataset_examples, polysemanticity
from mechscope.circuits.ablation import UnitAblation, unit_ablation_effect
from mechscope.circuits.connections import Connection, unit_connections
from mechscope.circuits.examples import LayerExamples
from mechscope.circuits.polysemantic import Polysemanticity
from mechscope.errors import ConfigError, MechscopeError
from mechscope.featurevis import InputSpace, RenderConfig, visualize
from mechscope.featurevis.evidence import Evidence
from mechscope.featurevis.render import RenderResult
from mechscope.featurevis.visualize import Visualization, unit_objective
from mechscope.limits import format_size
from mechscope.report.context import ReportContext

__all__ = [
    "LayerUnits",
    "MemoryPlan",
    "analyse_units",
    "example_inputs",
    "memory_plan",
    "GRADIENT_FACTOR",
    "UNITS_PER_TASK",
    "EXAMPLES_BATCH",
    "EVIDENCE_BATCH",
    "ABLATION_BATCH",
]

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
    plan = memory_plan(ctx)
    inputs, targets = example_inputs(ctx)
    found = dataset_examples(ctx.model, inputs, layers, k=min(ctx.settings.k, inputs.shape[0]),
                             batch_size=plan.examples_batch, progress=ctx.progress, engine=ctx.engine,
                             cache=ctx.cache)
    for name in layers:
        units = results[name]
        units.examples = found[name]
        if ctx.is_classifier:
            units.poly = polysemanticity(found[name], targets, n_classes=len(ctx.class_names),
                                         class_names=ctx.class_names)
    _connect(ctx, results)
    _featurevis(ctx, results, plan)
    _ablate(ctx, results, plan)
    return results


UNITS_PER_TASK = 32
"""Units of one layer rendered or ablated by one task (renders: fewer under a memory budget)."""

EXAMPLES_BATCH = 256
"""Inputs per forward pass of the dataset-example search without a budget (`dataset_examples`' default)."""

EVIDENCE_BATCH = 512
"""Dataset images per forward pass comparing renders with the data without a budget (`visualize`'s default)."""

ABLATION_BATCH = 4096
"""Inputs per forward pass of the unit ablations, copies included, without a budget (`unit_ablation_effect`'s)."""

GRADIENT_FACTOR = 3
"""Bytes one rendered row holds, in units of one input's forward pass without gradients (`memory_plan`).

Autograd keeps about one tensor per layer output for the backward pass (x1), the backward
pass makes gradients of the same sizes (x1), and the image's parameters, their gradient,
Adam's two moments and the transforms add up to about one more (x1). With every tensor
allocation tracked, renders of the test models held at most 1.3 times the estimate per row.
"""


@dataclass(frozen=True)
class MemoryPlan:
    """Batch sizes of the per-unit work: the defaults, or smaller ones under `ReportConfig.max_memory`."""

    input_bytes: int | None  # estimated bytes one input holds in a forward pass (`memory_plan`); None: no budget
    examples_batch: int  # inputs per forward pass of the dataset-example search
    render_units: int  # units per feature-visualisation task (`featurevis_restarts` rows each, with gradients)
    evidence_batch: int  # dataset images per forward pass when renders are compared with the data
    ablation_batch: int  # inputs per forward pass of the unit ablations, copies included


def memory_plan(ctx: ReportContext) -> MemoryPlan:
    """The batch sizes `analyse_units` runs with under `ctx.settings.max_memory`.

    One input's forward pass is estimated as its own bytes, every layer's output for it
    (`mechscope.capture.summary.activation_bytes` over `ctx.layers`) and the copies `capture`
    keeps of the unit layers' outputs. A pass of n inputs without gradients (dataset examples,
    evidence, ablations) is counted as n such inputs, a render of n rows as `GRADIENT_FACTOR` x n.
    Each batch is its default, or the most that fits the budget when that is fewer. Without a
    budget (or without data) every batch is the default. Checks of the whole data set (NaN/inf,
    value range) are not batched and not counted.

    Raises:
        ConfigError: the budget is below the smallest step: one input, or for image models
            one unit's render (`featurevis_restarts` rows with gradients); the message names
            the least budget that works.
    """
    budget = ctx.settings.max_memory
    if budget is None or ctx.data is None or not ctx.layers:
        return MemoryPlan(None, EXAMPLES_BATCH, UNITS_PER_TASK, EVIDENCE_BATCH, ABLATION_BATCH)
    per_input = _input_bytes(ctx)
    per_unit = GRADIENT_FACTOR * ctx.settings.featurevis_restarts * per_input if ctx.is_image else 0
    if budget < max(per_input, per_unit):
        raise ConfigError(_too_small(budget, per_input, ctx.settings.featurevis_restarts if per_unit else 0))
    fits = budget // per_input
    return MemoryPlan(per_input, min(EXAMPLES_BATCH, fits),
                      min(UNITS_PER_TASK, budget // per_unit) if per_unit else UNITS_PER_TASK,
                      min(EVIDENCE_BATCH, fits), min(ABLATION_BATCH, fits))


def _input_bytes(ctx: ReportContext) -> int:
    """Estimated bytes one input holds in a forward pass: itself, every layer's output, a copy of each unit layer's.

    `capture` keeps its own copy of a recorded output the first time it sees a layer and
    whenever a later in-place op would change it (`mechscope.capture.guard`).
    """
    if ctx.data is None:
        return 0
    names = set(ctx.unit_layers)
    copies = activation_bytes(row for row in ctx.layers if row.name in names)
    return ctx.data.x_test[0].numel() * ctx.data.x_test.element_size() + activation_bytes(ctx.layers) + copies


def _too_small(budget: int, per_input: int, restarts: int) -> str:
    """Why `budget` cannot hold the smallest step (a render of `restarts` rows, or one input with 0), and the fix."""
    if restarts:
        need = GRADIENT_FACTOR * restarts * per_input
        rows = f"{restarts} row{'s' if restarts > 1 else ''}"
        what = (f"one unit's feature visualisation on this model needs ({rows} with gradients, about "
                f"{format_size(need)}; one input is about {format_size(per_input)} of activations)")
    else:
        need = per_input
        what = f"one input of this model needs (about {format_size(per_input)} of activations)"
    return f"a memory budget of {format_size(budget)} is below what {what}; give at least {_at_least(need)}."


def _at_least(n_bytes: int) -> str:
    """A size that `mechscope.limits.parse_size` reads as `n_bytes` or more, rounded up for people: `3.3MB`."""
    if n_bytes < 1024:
        return f"{n_bytes}B"
    scales = (("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("TB", 1 << 40))
    unit, scale = next((unit, scale) for unit, scale in scales if n_bytes < 1024 * scale or unit == "TB")
    value = n_bytes / scale
    return f"{math.ceil(value * 10) / 10:g}{unit}" if value < 10 else f"{math.ceil(value)}{unit}"


def _chunks(results: dict[str, LayerUnits], size: int) -> list[tuple[str, tuple[int, ...]]]:
    """(layer, units) of every task: each layer's shown units cut into runs of `size`."""
    return [(name, tuple(range(start, min(start + size, units.shown))))
            for name, units in results.items() for start in range(0, units.shown, size)]


def _shown(width: int, max_units: int | None) -> int:
    """Units of a layer `width` wide that get a page: the first `max_units`, or all when it is None."""
    return width if max_units is None else min(width, max_units)


def _width(ctx: ReportContext, name: str) -> int | None:
    info = ctx.layer_info(name)
    if info is None or info.output_shape is None or len(info.output_shape) == 0:
        return None
    shape = (1, *info.output_shape)
    return layer_unit_axes(ctx.model, name, shape).n_units(shape)


def _featurevis(ctx: ReportContext, results: dict[str, LayerUnits], plan: MemoryPlan) -> None:
    if not ctx.is_image or ctx.data is None:
        shape = "no data" if ctx.data is None else "inputs of shape " + "x".join(
            str(d) for d in ctx.data.x_test.shape[1:])
        for units in results.values():
            units.featurevis_reason = (
                "feature visualisation optimises an input image; this model takes " + shape + ", not images."
            )
        return
    config = RenderConfig(steps=ctx.settings.featurevis_steps, restarts=ctx.settings.featurevis_restarts)
    chunks = _chunks(results, plan.render_units)
    parts = ctx.engine.map(_render_task, [(layer, units, config, plan.evidence_batch) for layer, units in chunks],
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


def _render_task(shared: tuple[nn.Module, Tensor],
                 item: tuple[str, tuple[int, ...], RenderConfig, int]) -> Visualization | str:
    """Render units of one layer (a task): the Visualization, or why it failed."""
    model, data = shared
    layer, units, config, batch_size = item
    try:
        return visualize(model, unit_objective("channel", layer, list(units)), data,
                         space=InputSpace.from_data(data), config=config, progress=False, batch_size=batch_size)
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


def _ablate(ctx: ReportContext, results: dict[str, LayerUnits], plan: MemoryPlan) -> None:
    if ctx.data is None:
        return
    if not ctx.is_classifier and ctx.data.task != "regression":
        for units in results.values():
            units.notes.append("ablation needs a classifier returning logits or a regression model.")
        return
    n = ctx.settings.ablation_inputs
    x, y = ctx.data.x_test[:n], ctx.data.y_test[:n]
    task = "classification" if ctx.is_classifier else "regression"
    chunks = _chunks(results, UNITS_PER_TASK)
    items = [(layer, units, task, ctx.settings.output, plan.ablation_batch) for layer, units in chunks]
    parts = ctx.engine.map(_ablation_task, items,
                           shared=(ctx.model, x, y), cache=ctx.cache, desc=None if not ctx.progress else "ablation")
    for name, units in results.items():
        mine = [part for (layer, _), part in zip(chunks, parts) if layer == name]
        if not mine:
            continue
        units.ablation = torch.cat([p.change for p in mine])
        per_class = [p.per_class for p in mine]
        units.ablation_per_class = None if per_class[0] is None else torch.cat(per_class)  # type: ignore[arg-type]
        units.ablation_metric = mine[0].metric


def _ablation_task(shared: tuple[nn.Module, Tensor, Tensor],
                   item: tuple[str, tuple[int, ...], str, Any, int]) -> UnitAblation:
    """Zero each of some units of one layer (a task) and score what it costs."""
    model, x, y = shared
    layer, units, task, output, batch = item
    return unit_ablation_effect(model, x, y, layer, list(units), task=task, output=output,  # type: ignore[arg-type]
                                batch=batch)


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
