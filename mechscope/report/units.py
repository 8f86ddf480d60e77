"""Everything a report says about single units, computed layer by layer in batches.

One streaming pass finds the top and bottom dataset examples of every unit of every
layer; one feature-visualisation call renders all units of a layer together; ablating
each unit runs as one replicated batch per chunk of units (replica u has unit u zeroed);
connections are read from the weights between unit layers that feed each other
(`mechscope.circuits.dataflow`).

Units lie along each layer's unit axis (`mechscope.capture.units`): channels of conv maps,
features of sequences (batch, pos, d_model), neurons of dense layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.capture import HookPoint, OutputSpec, UnitAxes, layer_unit_axes, model_device, patch, select_output
from mechscope.circuits import LayerExamples, Polysemanticity, connection_strengths, dataset_examples, polysemanticity
from mechscope.circuits.dataflow import WEIGHT_LAYERS, LayerGraph, layer_graph
from mechscope.errors import MechscopeError
from mechscope.featurevis import InputSpace, RenderConfig, Visualization, unit_objective, visualize
from mechscope.report.context import ReportContext

__all__ = ["Connection", "LayerUnits", "analyse_units", "unit_ablation", "example_inputs"]

_TOP_CONNECTIONS = 6  # connections listed per unit and direction
_REPLICA_BUDGET = 4096  # inputs per forward pass when ablating units in replicated batches


@dataclass(frozen=True)
class Connection:
    """A weight-level link from or to another unit."""

    layer: str | None  # unit layer on the other side; None for a model input or output
    unit: int  # unit, input feature or output index on the other side
    strength: float  # L2 norm of the kernel slice (conv) or |weight| (dense)
    signed: float  # sum of the kernel slice or the weight itself: + excites, - inhibits
    label: str | None = None  # name of an input feature or output ("a = 1", "logit of class 3")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"layer": self.layer, "unit": self.unit, "label": self.label, "strength": self.strength,
                "signed": self.signed}


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no pixels)."""
        return {
            "layer": self.layer,
            "n_units": self.n_units,
            "shown": self.shown,
            "featurevis": None if self.featurevis is None else self.featurevis.to_dict(),
            "featurevis_reason": self.featurevis_reason,
            "polysemanticity": None if self.poly is None else self.poly.to_dict(),
            "ablation_metric": self.ablation_metric,
            "ablation": None if self.ablation is None else self.ablation.tolist(),
            "inbound": {u: [c.to_dict() for c in cs] for u, cs in self.inbound.items()},
            "outbound": {u: [c.to_dict() for c in cs] for u, cs in self.outbound.items()},
            "notes": list(self.notes),
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
                             progress=ctx.progress)
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


def unit_ablation(
    model: nn.Module,
    inputs: Tensor,
    layer: str,
    units: list[int],
    *,
    batch: int = _REPLICA_BUDGET,
    output: OutputSpec = None,
) -> Tensor:
    """Model outputs with each unit of `layer` zeroed in turn: (len(units), batch, *output).

    The layers before `layer` run once per input batch; at `layer` the output is repeated,
    copy u with `units[u]` zeroed along the unit axis (all positions of a channel or of a
    sequence feature), and the rest of the model runs
    on all copies at once. A model whose later layers cannot take the larger batch (a skip
    connection from before `layer`, a batch size fixed early in `forward`) is detected by the
    output's batch size or its error and run on repeated inputs instead. `output` picks the
    model output returned (`mechscope.capture.select_output`). `inputs` move to the model's
    device; the outputs come back on the CPU.
    """
    inputs = inputs.to(model_device(model))
    outputs: list[Tensor] = []
    per_pass = max(1, batch // max(1, inputs.shape[0]))
    for first in range(0, len(units), per_pass):
        chunk = units[first : first + per_pass]
        try:
            out = _ablated_pass(model, inputs, layer, chunk, expand=True, output=output)
        except RuntimeError:  # shapes that do not broadcast past the layer: fall back to repeated inputs
            out = None
        if out is None or out.shape[0] != len(chunk) * inputs.shape[0]:
            out = _ablated_pass(model, inputs, layer, chunk, expand=False, output=output)
        outputs.append(out.reshape(len(chunk), inputs.shape[0], *out.shape[1:]).cpu())
    return torch.cat(outputs)


def _ablated_pass(
    model: nn.Module, inputs: Tensor, layer: str, chunk: list[int], *, expand: bool, output: OutputSpec
) -> Tensor:
    """One forward pass with len(chunk) copies, copy u with unit chunk[u] of `layer` zeroed."""
    n = len(chunk)
    layouts: dict[int, UnitAxes] = {}

    def zero(output: Tensor, *, hook: HookPoint) -> Tensor:
        if output.dim() not in layouts:
            layouts[output.dim()] = layer_unit_axes(model, layer, output.shape)
        unit = layouts[output.dim()].unit
        copies = output.unsqueeze(0).expand(n, *output.shape) if expand else output.reshape(n, -1, *output.shape[1:])
        mask = torch.ones(n, output.shape[unit], dtype=output.dtype, device=output.device)
        mask[torch.arange(n, device=output.device), torch.tensor(chunk, device=output.device)] = 0
        # (copy, batch, ...) with the units on the layer's unit axis and 1 on every other axis
        mask = mask.reshape(n, 1, *[output.shape[a] if a == unit else 1 for a in range(1, output.dim())])
        return (copies * mask).reshape(-1, *output.shape[1:])

    source = inputs if expand else inputs.repeat(n, *([1] * (inputs.dim() - 1)))
    with torch.no_grad(), patch(model, {layer: zero}):
        return select_output(model(source), output)


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
    n = ctx.settings.ablation_inputs
    x, y = ctx.data.x_test[:n], ctx.data.y_test[:n]
    base = ctx.explained(x)
    ablated = unit_ablation(ctx.model, x, units.layer, list(range(units.shown)), output=ctx.settings.output)
    if ctx.is_classifier:
        n_classes = base.shape[1]
        right_base = (base.argmax(1) == y).float()
        right = (ablated.argmax(-1) == y[None]).float()  # (unit, batch)
        units.ablation = right_base.mean() - right.mean(dim=1)
        counts = torch.bincount(y, minlength=n_classes).clamp_min(1).float()
        per_class = torch.zeros(right.shape[0], n_classes, device="cpu").index_add_(1, y, right_base[None] - right)
        units.ablation_per_class = per_class / counts
        units.ablation_metric = "accuracy drop"
    elif ctx.data.task == "regression":
        target = y.reshape(base.shape).float()
        mse_base = (base - target).pow(2).mean()
        units.ablation = (ablated - target[None]).pow(2).flatten(1).mean(dim=1) - mse_base
        units.ablation_metric = "MSE increase"
    else:
        units.notes.append("ablation needs a classifier returning logits or a regression model.")


def _connect(ctx: ReportContext, results: dict[str, LayerUnits]) -> None:
    """Inbound/outbound weight links between unit layers, read from the model's dataflow.

    Unit layer S links to unit layer T through the weights of conv/linear layer W when W
    reads S (through norms, pooling, adds, ...) and W's output makes up T; at a residual
    add T is linked to every summand's layer. Also links the last unit layer to the
    outputs and the first to the input features, where a Linear reads them directly.
    """
    names = list(results)
    try:
        graph = layer_graph(ctx.model, example=ctx.example, stops=names)
    except MechscopeError as err:
        for units in results.values():
            units.notes.append(f"connections are not shown: {err}")
        return
    modules = dict(ctx.model.named_modules())
    for target in names:
        for made in graph.producers(target):
            layer = modules.get(made.source)
            if not isinstance(layer, WEIGHT_LAYERS):
                continue  # an identity path (a residual branch): no weights to show
            strength, signed = _weights(layer)  # (out, in)
            out_at = made.aligned(strength.shape[0], results[target].n_units)
            if out_at is None:
                continue
            for feed in graph.sources(made.source):
                source = results.get(feed.source)
                in_at = None if source is None else feed.aligned(source.n_units, strength.shape[1])
                if source is None or in_at is None:
                    continue
                columns = slice(in_at, in_at + source.n_units)
                _link(source, results[target], strength[:, columns], signed[:, columns], out_at)
    if names:
        _link_output(ctx, graph, modules, results[names[-1]], names)
        _link_input(ctx, graph, modules, results[names[0]])


def _weights(layer: nn.Module) -> tuple[Tensor, Tensor]:
    """(out, in) strength and signed weight: kernel-slice L2 norm and sum (conv), |w| and w (linear)."""
    if isinstance(layer, nn.Linear):
        weight = layer.weight.detach().cpu()
        return weight.abs(), weight
    return connection_strengths(layer)


def _link(source: LayerUnits, target: LayerUnits, strength: Tensor, signed: Tensor, first: int = 0) -> None:
    """strength/signed: (target unit - first, source unit); merged with links already found."""
    for row in range(strength.shape[0]):
        o = first + row
        if o >= target.shown:
            break
        top = torch.argsort(strength[row], descending=True, stable=True)[:_TOP_CONNECTIONS].tolist()
        found = [Connection(source.layer, i, float(strength[row, i]), float(signed[row, i])) for i in top]
        target.inbound[o] = _strongest(target.inbound.get(o, []) + found)
    for i in range(min(source.shown, strength.shape[1])):
        top = torch.argsort(strength[:, i], descending=True, stable=True)[:_TOP_CONNECTIONS].tolist()
        found = [Connection(target.layer, first + r, float(strength[r, i]), float(signed[r, i])) for r in top]
        source.outbound[i] = _strongest(source.outbound.get(i, []) + found)


def _strongest(connections: list[Connection]) -> list[Connection]:
    return sorted(connections, key=lambda c: -c.strength)[:_TOP_CONNECTIONS]


def _link_output(
    ctx: ReportContext, graph: LayerGraph, modules: dict[str, nn.Module], last: LayerUnits, names: list[str]
) -> None:
    """The last unit layer's weights into the outputs: a Linear that reads it and that nothing reads."""
    made = {feed.source for name in names for feed in graph.producers(name)}
    read = {feed.source for feed in graph.feeds}
    for feed in graph.feeds:
        module = modules.get(feed.target)
        if feed.source != last.layer or not isinstance(module, nn.Linear) or feed.target in read | made:
            continue
        if feed.aligned(last.n_units, module.in_features) != 0 or module.in_features != last.n_units:
            continue
        weight = module.weight.detach().cpu()  # (output, unit)
        names_ = ctx.class_names if ctx.is_classifier and len(ctx.class_names) == weight.shape[0] else ()
        for i in range(last.shown):
            top = torch.argsort(weight[:, i].abs(), descending=True, stable=True)[:_TOP_CONNECTIONS].tolist()
            last.outbound[i] = [
                Connection(None, o, float(weight[o, i].abs()), float(weight[o, i]),
                           f"logit of class {names_[o]}" if o < len(names_) else f"output {o}")
                for o in top
            ]
        return


def _link_input(ctx: ReportContext, graph: LayerGraph, modules: dict[str, nn.Module], first: LayerUnits) -> None:
    """The first unit layer's weights from the input features: a Linear making it that reads the input."""
    example = ctx.example
    if example is None or example.dim() != 2 or not example.is_floating_point():
        return
    n_features = int(example.shape[1])
    for made in graph.producers(first.layer):
        module = modules.get(made.source)
        if not isinstance(module, nn.Linear) or graph.sources(made.source):
            continue
        if module.in_features != n_features or made.aligned(module.out_features, first.n_units) != 0:
            continue
        weight = module.weight.detach().cpu()  # (unit, feature)
        labels = _feature_names(ctx, n_features)
        for u in range(first.shown):
            top = torch.argsort(weight[u].abs(), descending=True, stable=True)[:_TOP_CONNECTIONS].tolist()
            first.inbound[u] = [Connection(None, f, float(weight[u, f].abs()), float(weight[u, f]), labels[f])
                                for f in top]
        return


def _feature_names(ctx: ReportContext, n: int) -> list[str]:
    extras = ctx.data.extras if ctx.data is not None else {}
    m = int(extras.get("modulus", 0) or 0)
    if m and n == 2 * m:
        return [f"input a = {i}" for i in range(m)] + [f"input b = {i}" for i in range(m)]
    return [f"input x{i + 1}" for i in range(n)]
