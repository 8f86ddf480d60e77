"""Class circuits: the channels of a conv layer that contribute most to each class's logit.

Seed 003 draws, for each digit, the "main detector circuits": the few last-layer channels
the classifier relies on. Here a channel's contribution to class c is measured over the
inputs of class c:

* GAP head (global average pooling then one Linear, as DigitCNN(gap=True)): the logit is
  `b_c + sum_k W[c, k] * mean_hw A_k`, so `W[c, k] * mean over class-c inputs of mean_hw A_k`
  is exact: the contributions plus the bias sum to the class's mean logit.
* Any other head: gradient x activation, `sum_hw dlogit_c/dA_k * A_k`, averaged over the
  class's inputs (a first-order estimate that equals the exact value for a GAP head).

The GAP head is detected by checking, on the first batch, that some Linear layer maps the
channel means of the layer to the logits; nothing is assumed from module names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mechscope.capture import UnitAxes, capture, default_layer, get_layer, select_output
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.outputs import OutputSpec
from mechscope.capture.units import layer_unit_axes
from mechscope.circuits.layers import check_inputs
from mechscope.errors import ConfigError, DataError, UnsupportedModelError

__all__ = ["Method", "ClassContributions", "class_contributions", "class_mean_maps", "find_gap_head"]

Method = Literal["auto", "gap", "gradient"]
"""How contributions are measured: exact GAP-head weights, gradient x activation, or detect."""


@dataclass(frozen=True)
class ClassContributions:
    """Per-class channel contributions of one layer and each class's top channels."""

    layer: str  # dotted name of the layer whose channels are scored
    method: str  # "gap" (exact, head weight x mean activation) or "gradient" (gradient x activation)
    head: str | None  # the Linear layer read by the "gap" method
    contributions: Tensor  # (n_classes, channel): contribution of each channel to each class's logit
    top_channels: Tensor  # (n_classes, top): largest contributions first
    mean_maps: Tensor  # (n_classes, channel, *spatial): mean activation map of each channel per class
    class_counts: Tensor  # (n_classes,) inputs per class
    class_names: tuple[str, ...]  # readable label per class

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return int(self.contributions.shape[0])

    def top_maps(self, cls: int) -> Tensor:
        """Mean activation maps of class `cls`'s top channels on that class, (top, *spatial)."""
        return self.mean_maps[cls, self.top_channels[cls]]

    def __json__(self) -> dict[str, Any]:
        """Per class, its top channels and every channel's contribution (the mean maps are for figures)."""
        return {
            "layer": self.layer,
            "method": self.method,
            "head": self.head,
            "classes": {
                name: {
                    "top_channels": self.top_channels[c],
                    "contributions": self.contributions[c],
                }
                for c, name in enumerate(self.class_names)
            },
        }


def class_contributions(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    *,
    layer: str | None = None,
    top: int = 3,
    method: Method = "auto",
    batch_size: int = 256,
    class_names: tuple[str, ...] | None = None,
    output: OutputSpec = None,
) -> ClassContributions:
    """Score every channel of `layer` by its contribution to each class's logit.

    Args:
        model: Any module returning logits (batch, n_classes), or a dict, tuple or
            `ModelOutput` holding them (see `output`).
        inputs: (batch, ...) inputs; each is scored against its own label.
        labels: (batch,) class indices.
        layer: Layer whose channels are scored; None uses
            `mechscope.capture.default_layer(model, inputs[:1])`: the last spatial map, after
            its nonlinearity, at the block output.
        top: Channels kept per class.
        method: "gap" (exact, needs a GAP head), "gradient", or "auto" (GAP if detected).
        batch_size: Inputs per forward pass.
        class_names: Label per class; None uses "0", "1", ...
        output: Which of the model's outputs holds the logits (see
            `mechscope.capture.select_output`): None (auto), a key, an index or a callable.

    Returns:
        ClassContributions; `top_channels[c]` are class c's main detectors.

    Raises:
        UnsupportedModelError: method="gap" but no Linear maps the layer's channel means to the logits.
        DataError: inputs and labels disagree, or the model does not return (batch, n_classes) logits.

    Example:
        >>> found = class_contributions(model, data.x_train, data.y_train)
        >>> found.method, found.top_channels[3]     # 'gap', tensor([12, 5, 30])
    """
    check_inputs(inputs, labels)
    _check_options(method, batch_size, top)
    device = model_device(model)
    name = default_layer(model, inputs[:1].to(device), output=output) if layer is None else layer
    get_layer(model, name)
    with eval_mode(model):
        scoring = _scoring(model, name, inputs[:batch_size].to(device), labels, method, output)
        sums, map_sums, counts = _class_sums(model, inputs, labels, scoring, batch_size=batch_size, output=output)
    head, n_classes, n_channels = scoring.head, scoring.n_classes, scoring.unit_shape[0]
    denom = counts.clamp_min(1).double()
    per_class = sums / denom[:, None]
    if head is not None:  # per_class holds channel means: weight them by the head once
        weight: Tensor = getattr(get_layer(model, head), "weight")
        per_class = weight.detach().cpu().double() * per_class
    contributions = per_class.float()
    mean_maps = (map_sums / denom.reshape(-1, *([1] * (map_sums.dim() - 1)))).float()
    order = torch.sort(contributions, dim=1, descending=True, stable=True).indices[:, : min(top, n_channels)]
    names = tuple(str(c) for c in range(n_classes)) if class_names is None else tuple(class_names)
    if len(names) != n_classes:
        raise ConfigError(f"class_names has {len(names)} entries for {n_classes} classes.")
    return ClassContributions(
        layer=name,
        method="gap" if head is not None else "gradient",
        head=head,
        contributions=contributions,
        top_channels=order,
        mean_maps=mean_maps,
        class_counts=counts,
        class_names=names,
    )


@dataclass(frozen=True)
class _Scoring:
    """How `class_contributions` scores a layer, fixed on the first batch."""

    layer: str  # the scored layer
    n_classes: int  # logits the model returns
    axes: UnitAxes  # the layer's unit axes
    head: str | None  # the GAP head (a Linear layer) for the exact method; None: gradient x activation
    unit_shape: tuple[int, ...]  # one input's activation, units first: (channel, *spatial)


def _check_options(method: str, batch_size: int, top: int) -> None:
    """Raise ConfigError for an unknown method, a batch size below 1 or a top that is not a positive integer."""
    if method not in ("auto", "gap", "gradient"):
        raise ConfigError(f"method must be 'auto', 'gap' or 'gradient'; got {method!r}.")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1; got {batch_size}.")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be a positive integer; got {top!r}.")


def _scoring(
    model: nn.Module, name: str, first: Tensor, labels: Tensor, method: Method, output: OutputSpec
) -> _Scoring:
    """Read the logits, unit axes and GAP head (if any) of `model` from its pass on the first batch.

    Raises:
        DataError: the logits do not fit the labels, or the layer has no unit axis.
        UnsupportedModelError: method="gap" but no GAP head was found.
    """
    with torch.no_grad(), capture(model, [name], check_finite=False) as store:
        probe_logits = select_output(model(first), output)
    probe_act = store.act(name)
    n_classes = _check_logits(probe_logits, labels)
    if probe_act.dim() < 2:
        raise DataError(f"Layer {name!r} returns shape {tuple(probe_act.shape)}; it needs (batch, channel, ...).")
    axes = layer_unit_axes(model, name, tuple(probe_act.shape))  # units: channels, or features of tokens
    probe_act = axes.units_first(probe_act)
    head = None if method == "gradient" else find_gap_head(model, probe_act, probe_logits)
    if method == "gap" and head is None:
        raise UnsupportedModelError(
            f"No Linear layer of {type(model).__name__} maps the channel means of {name!r} to the logits, so "
            "the exact GAP contribution does not apply; use method='gradient' (or 'auto')."
        )
    return _Scoring(name, n_classes, axes, head, tuple(probe_act.shape[1:]))


def _class_sums(
    model: nn.Module, inputs: Tensor, labels: Tensor, scoring: _Scoring, *, batch_size: int, output: OutputSpec
) -> tuple[Tensor, Tensor, Tensor]:
    """Per class, the sums of the inputs' scores and activation maps, and the input counts.

    Returns:
        (scores (n_classes, channel), maps (n_classes, channel, *spatial), counts (n_classes,)),
        on the CPU, sums in float64.

    Raises:
        DataError: a label is not below the number of logits.
    """
    device = model_device(model)
    n_classes = scoring.n_classes
    # Sums stay on the CPU in float64: each batch's scores join them there.
    sums = torch.zeros(n_classes, scoring.unit_shape[0], dtype=torch.float64, device="cpu")
    map_sums = torch.zeros(n_classes, *scoring.unit_shape, dtype=torch.float64, device="cpu")
    counts = torch.zeros(n_classes, dtype=torch.int64, device="cpu")
    for batch, y in zip(inputs.split(batch_size), labels.split(batch_size)):
        if int(y.max()) >= n_classes:
            raise DataError(f"labels go up to {int(y.max())} but the model returns {n_classes} logits.")
        act, per_input = _score_batch(
            model, scoring.layer, batch.to(device), y.to(device), scoring.head, output, scoring.axes
        )
        y_cpu = y.cpu()
        sums.index_add_(0, y_cpu, per_input.double().cpu())
        map_sums.index_add_(0, y_cpu, act.double().cpu())
        counts += torch.bincount(y_cpu, minlength=n_classes)
    return sums, map_sums, counts


def class_mean_maps(
    model: nn.Module, inputs: Tensor, labels: Tensor, layer: str, *, n_classes: int | None = None, batch_size: int = 256
) -> Tensor:
    """Mean activation of `layer` over each class's inputs: (n_classes, channel, *spatial).

    Example:
        >>> class_mean_maps(model, data.x_test, data.y_test, "relu2").shape   # (10, 16, 14, 14)
    """
    check_inputs(inputs, labels)
    n = int(labels.max()) + 1 if n_classes is None else n_classes
    sums: Tensor | None = None
    device = model_device(model)
    with eval_mode(model), torch.no_grad():
        for batch, y in zip(inputs.split(batch_size), labels.split(batch_size)):
            with capture(model, [layer], check_finite=False) as store:
                model(batch.to(device))
            act = store.act(layer).double().cpu()
            if sums is None:
                sums = torch.zeros(n, *act.shape[1:], dtype=torch.float64, device="cpu")
            sums.index_add_(0, y.cpu(), act)
    if sums is None:
        raise DataError("class_mean_maps got no inputs; pass at least one.")
    counts = torch.bincount(labels.cpu(), minlength=n).clamp_min(1).double()
    return (sums / counts.reshape(-1, *([1] * (sums.dim() - 1)))).float()


def find_gap_head(model: nn.Module, activations: Tensor, logits: Tensor) -> str | None:
    """Name of the Linear layer with `logits == Linear(mean over positions of activations)`, if any.

    Args:
        model: The model.
        activations: A layer's output on a batch, (batch, channel, *spatial).
        logits: The model's output on the same batch, (batch, n_classes).

    Returns:
        The dotted name of the matching Linear layer, or None.
    """
    pooled = activations.flatten(2).mean(dim=2) if activations.dim() > 2 else activations
    scale = 1.0 + float(logits.abs().max())
    for candidate, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if module.in_features != pooled.shape[1] or module.out_features != logits.shape[1]:
            continue
        with torch.no_grad():
            predicted = F.linear(pooled, module.weight, module.bias)
        if torch.allclose(predicted, logits, rtol=0.0, atol=1e-4 * scale):
            return candidate
    return None


def _score_batch(
    model: nn.Module, layer: str, x: Tensor, y: Tensor, head: str | None, output: OutputSpec, axes: UnitAxes
) -> tuple[Tensor, Tensor]:
    """Activations (batch, unit, *positions) and per-input scores (batch, unit), units on `axes`.

    With a GAP head the score is the channel mean (the head weight is applied once, later);
    otherwise gradient x activation of each input's own-class logit, summed over positions.
    """
    if head is not None:
        with torch.no_grad(), capture(model, [layer], check_finite=False) as store:
            model(x)
        act = axes.units_first(store.act(layer))
        return act, act.flatten(2).mean(dim=2) if act.dim() > 2 else act
    if x.is_floating_point():
        x = x.detach().clone().requires_grad_(True)  # a graph exists even when the weights are frozen
    with torch.enable_grad(), capture(model, [layer], detach=False, check_finite=False) as store:
        logits = select_output(model(x), output)
        act = store.act(layer)
        if not act.requires_grad:
            raise UnsupportedModelError(
                f"Layer {layer!r} carries no gradient, so gradient x activation is undefined; "
                "give the model float inputs or trainable weights."
            )
        (grad,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), act)
    act = axes.units_first(act.detach())
    per_input = act * axes.units_first(grad)
    return act, per_input.flatten(2).sum(dim=2) if per_input.dim() > 2 else per_input


def _check_logits(logits: Tensor, labels: Tensor) -> int:
    if logits.dim() != 2:
        raise DataError(f"class circuits need logits of shape (batch, n_classes); the explained output has shape "
                        f"{tuple(logits.shape)}. Pass output= choosing them (see mechscope.capture.select_output).")
    n_classes = int(logits.shape[1])
    if int(labels.max()) >= n_classes:
        raise DataError(f"labels go up to {int(labels.max())} but the model returns {n_classes} logits.")
    return n_classes
