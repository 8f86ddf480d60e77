"""Everything a report says about single units, computed layer by layer in batches.

One streaming pass finds the top and bottom dataset examples of every unit of every
layer; one feature-visualisation call renders all units of a layer together; ablating
each unit runs as one replicated batch per chunk of units (replica u has unit u zeroed);
connections are read from the weights between consecutive unit layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.capture import HookPoint, patch
from mechscope.circuits import LayerExamples, Polysemanticity, conv_connections, dataset_examples, polysemanticity
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
    n_units: int  # channels (conv) or neurons (dense)
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
            first = torch.full((distinct.shape[0],), x.shape[0], dtype=torch.long)
            first = first.scatter_reduce(0, inverse, torch.arange(x.shape[0]), reduce="amin")
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
    model: nn.Module, inputs: Tensor, layer: str, units: list[int], *, batch: int = _REPLICA_BUDGET
) -> Tensor:
    """Model outputs with each unit of `layer` zeroed in turn: (len(units), batch, *output).

    The layers before `layer` run once per input batch; at `layer` the output is repeated,
    copy u with `units[u]` zeroed (all positions of a channel), and the rest of the model runs
    on all copies at once. A model whose later layers cannot take the larger batch (a skip
    connection from before `layer`, a batch size fixed early in `forward`) is detected by the
    output's batch size or its error and run on repeated inputs instead.
    """
    outputs: list[Tensor] = []
    per_pass = max(1, batch // max(1, inputs.shape[0]))
    for first in range(0, len(units), per_pass):
        chunk = units[first : first + per_pass]
        try:
            out = _ablated_pass(model, inputs, layer, chunk, expand=True)
        except RuntimeError:  # shapes that do not broadcast past the layer: fall back to repeated inputs
            out = None
        if out is None or out.shape[0] != len(chunk) * inputs.shape[0]:
            out = _ablated_pass(model, inputs, layer, chunk, expand=False)
        outputs.append(out.reshape(len(chunk), inputs.shape[0], *out.shape[1:]))
    return torch.cat(outputs)


def _ablated_pass(model: nn.Module, inputs: Tensor, layer: str, chunk: list[int], *, expand: bool) -> Tensor:
    """One forward pass with len(chunk) copies, copy u with unit chunk[u] of `layer` zeroed."""
    n = len(chunk)

    def zero(output: Tensor, *, hook: HookPoint) -> Tensor:
        copies = output.unsqueeze(0).expand(n, *output.shape) if expand else output.reshape(n, -1, *output.shape[1:])
        mask = torch.ones(n, output.shape[1], dtype=output.dtype, device=output.device)
        mask[torch.arange(n), torch.tensor(chunk)] = 0
        mask = mask.reshape(n, 1, output.shape[1], *([1] * (output.dim() - 2)))
        return (copies * mask).reshape(-1, *output.shape[1:])

    source = inputs if expand else inputs.repeat(n, *([1] * (inputs.dim() - 1)))
    with torch.no_grad(), patch(model, {layer: zero}):
        return model(source)


def _width(ctx: ReportContext, name: str) -> int | None:
    info = ctx.layer_info(name)
    if info is None or info.output_shape is None or len(info.output_shape) == 0:
        return None
    return int(info.output_shape[0])


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
    with torch.no_grad():
        base = ctx.model(x)
    ablated = unit_ablation(ctx.model, x, units.layer, list(range(units.shown)))
    if ctx.is_classifier:
        n_classes = base.shape[1]
        right_base = (base.argmax(1) == y).float()
        right = (ablated.argmax(-1) == y[None]).float()  # (unit, batch)
        units.ablation = right_base.mean() - right.mean(dim=1)
        counts = torch.bincount(y, minlength=n_classes).clamp_min(1).float()
        per_class = torch.zeros(right.shape[0], n_classes).index_add_(1, y, right_base[None] - right)
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
    """Inbound/outbound links between consecutive unit layers, and from the last one to the output."""
    names = list(results)
    producer = _producers(ctx.model, names)
    by_conv = {conv: name for name, conv in producer.items() if conv is not None}
    for pair in conv_connections(ctx.model, top=_TOP_CONNECTIONS):
        source, target = by_conv.get(pair.source), by_conv.get(pair.target)
        if source is None or target is None:
            continue
        _link(results[source], results[target], pair.l2, pair.signed_sum)
    leaves = [(n, m) for n, m in ctx.model.named_modules() if n and not list(m.children())]
    order = [n for n, _ in leaves]
    for source, target in zip(names, names[1:]):
        if producer.get(target) is not None:
            continue  # a conv feeds it: linked above
        linear = _linear_between(leaves, order, source, target, results[source].n_units, results[target].n_units)
        if linear is not None:
            weight = linear.weight.detach().cpu()
            _link(results[source], results[target], weight.abs(), weight)
    if names and ctx.example is not None:
        _link_output(ctx, results[names[-1]], leaves, order)
        if producer.get(names[0]) is None:
            _link_input(ctx, results[names[0]], leaves, order)


def _link(source: LayerUnits, target: LayerUnits, strength: Tensor, signed: Tensor) -> None:
    """strength/signed: (target unit, source unit)."""
    for o in range(min(target.shown, strength.shape[0])):
        top = torch.argsort(strength[o], descending=True, stable=True)[:_TOP_CONNECTIONS].tolist()
        target.inbound[o] = [Connection(source.layer, i, float(strength[o, i]), float(signed[o, i])) for i in top]
    for i in range(min(source.shown, strength.shape[1])):
        top = torch.argsort(strength[:, i], descending=True, stable=True)[:_TOP_CONNECTIONS].tolist()
        source.outbound[i] = [Connection(target.layer, o, float(strength[o, i]), float(signed[o, i])) for o in top]


def _link_output(ctx: ReportContext, last: LayerUnits, leaves: list[tuple[str, nn.Module]], order: list[str]) -> None:
    """The last unit layer's weights into the model output (a Linear reading its units)."""
    with torch.no_grad():
        out = ctx.model(ctx.example)
    width = int(out.shape[1]) if out.dim() == 2 else 1
    start = _after(order, last.layer)
    for _, module in leaves[start:]:
        if isinstance(module, nn.Linear) and module.in_features == last.n_units and module.out_features == width:
            weight = module.weight.detach().cpu()  # (output, unit)
            names = ctx.class_names if ctx.is_classifier else ()
            for i in range(last.shown):
                top = torch.argsort(weight[:, i].abs(), descending=True, stable=True)[:_TOP_CONNECTIONS].tolist()
                last.outbound[i] = [
                    Connection(None, o, float(weight[o, i].abs()), float(weight[o, i]),
                               f"logit of class {names[o]}" if o < len(names) else f"output {o}")
                    for o in top
                ]
            return


def _link_input(ctx: ReportContext, first: LayerUnits, leaves: list[tuple[str, nn.Module]], order: list[str]) -> None:
    """The first unit layer's weights from the input features (a Linear reading the model input)."""
    example = ctx.example
    if example is None or example.dim() != 2 or not example.is_floating_point():
        return
    n_features = int(example.shape[1])
    for _, module in leaves[: _after(order, first.layer)]:
        if isinstance(module, nn.Linear):
            if module.in_features != n_features or module.out_features != first.n_units:
                return
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


def _producers(model: nn.Module, names: list[str]) -> dict[str, str | None]:
    """For each unit layer, the conv module that computes it, or None when a Linear (or nothing) does."""
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    order = [n for n, _ in leaves]
    out: dict[str, str | None] = {}
    for name in names:
        out[name] = None
        for leaf, module in reversed(leaves[: _after(order, name)]):
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                out[name] = leaf if not isinstance(module, nn.Linear) else None
                break
    return out


def _after(order: list[str], layer: str) -> int:
    """Index in the leaf order just past `layer` (a leaf, or a block whose leaves start with it)."""
    inside = [i for i, n in enumerate(order) if n == layer or n.startswith(layer + ".")]
    return (inside[-1] + 1) if inside else len(order)


def _linear_between(
    leaves: list[tuple[str, nn.Module]], order: list[str], source: str, target: str, n_in: int, n_out: int
) -> nn.Linear | None:
    first, last = _after(order, source), _after(order, target)
    for _, module in leaves[first:last]:
        if isinstance(module, nn.Linear) and module.in_features == n_in and module.out_features == n_out:
            return module
    return None
