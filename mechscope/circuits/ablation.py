"""Causal checks by ablation: switch channels off (zero or mean) and measure what each class loses.

`unit_ablation` zeroes every unit of a layer on its own, all units in replicated batches,
and `unit_ablation_effect` scores what each one costs (accuracy or mean squared error).
If class c's top channels (from `class_contributions`) really are its detectors, ablating
them must hurt class c more than ablating the same number of random channels. `causal_check`
measures both for every class and reports the ratio over all classes. Ablations run through
`mechscope.capture.patch`, so no hook outlives the call and the weights are never touched.

A unit is an index along the layer's unit axis (`mechscope.capture.units`): ablating unit 2
of a conv map zeroes channel 2 at every pixel, of a sequence (batch, pos, d_model) feature 2
at every position (not token 2), of a dense layer neuron 2.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from mechscope.capture import HookPoint, UnitAxes, capture, get_layer, patch, select_output
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.outputs import OutputSpec
from mechscope.capture.units import AxesSpec, layer_unit_axes
from mechscope.circuits.layers import check_inputs
from mechscope.data.bundle import Task
from mechscope.data.finite import check_finite
from mechscope.errors import ConfigError, DataError

__all__ = [
    "Mode",
    "ablate",
    "channel_means",
    "AblationEffect",
    "ablation_effect",
    "CausalCheck",
    "causal_check",
    "unit_ablation",
    "UnitAblation",
    "unit_ablation_effect",
]

Mode = Literal["zero", "mean"]
"""Ablation replaces channels by zero, or by their mean activation over a dataset."""

_REPLICA_BUDGET = 4096  # inputs per forward pass when ablating units in replicated batches


@contextmanager
def ablate(
    model: nn.Module,
    layer: str,
    channels: Sequence[int] | Tensor,
    *,
    mode: Mode = "zero",
    means: Tensor | None = None,
    axes: AxesSpec | None = None,
) -> Iterator[None]:
    """Replace `channels` of `layer`'s output while the block runs; the hook is removed on exit.

    Args:
        model: Any module.
        layer: Dotted layer name; its output is (batch, channel, ...), (batch, pos, d_model)
            or (batch, unit).
        channels: Unit indices to ablate along the unit axis (channels of a conv map,
            features of a sequence, neurons of a dense layer), at every position.
        mode: "zero", or "mean" to substitute `means[channel]`.
        means: (unit, *positions) mean activation per unit (see `channel_means`); needed for "mean".
        axes: The layer's unit axes (UnitAxes, kind or unit axis index); None infers them
            (`mechscope.capture.units.layer_unit_axes`).

    Example:
        >>> with ablate(model, "relu3", [4, 17, 9]):
        ...     logits = model(x)
    """
    if mode not in ("zero", "mean"):
        raise ConfigError(f"mode must be 'zero' or 'mean'; got {mode!r}.")
    if mode == "mean" and means is None:
        raise ConfigError("mode='mean' needs means=channel_means(model, layer, inputs).")
    # Unit indices stay on the CPU (range checks without a device sync); each call moves them to the output.
    index = torch.as_tensor(channels, dtype=torch.long, device="cpu").reshape(-1)
    fill = check_finite(means, "means") if means is not None else torch.zeros(0, device="cpu")
    get_layer(model, layer)
    layouts: dict[int, UnitAxes] = {}  # by output rank: inferred once, not on every forward call

    def replace(output: Tensor, *, hook: HookPoint) -> Tensor:
        if output.dim() >= 2 and output.dim() not in layouts:
            layouts[output.dim()] = layer_unit_axes(model, layer, output.shape, axes)
        unit = layouts[output.dim()].unit if output.dim() >= 2 else 1
        if output.dim() < 2 or (index.numel() and int(index.max()) >= output.shape[unit]) or (
            index.numel() and int(index.min()) < 0
        ):
            raise ConfigError(
                f"cannot ablate channels {index.tolist()} of {hook.name!r}: its output has shape "
                f"{tuple(output.shape)} (units are dimension {unit})."
            )
        new = output.clone()
        view = layouts[output.dim()].units_first(new)  # (batch, unit, *positions), a view into `new`
        idx = index.to(output.device)
        if mode == "zero":
            view[:, idx] = 0
        else:
            values = fill.to(output.device, output.dtype)[idx]  # (n_ablated, *positions)
            view[:, idx] = values.unsqueeze(0).expand(output.shape[0], *values.shape)
        return new

    with patch(model, {layer: replace}):
        yield


def channel_means(
    model: nn.Module, layer: str, inputs: Tensor, *, batch_size: int = 256, axes: AxesSpec | None = None
) -> Tensor:
    """Mean activation of `layer` over `inputs`, per unit and position: (unit, *positions).

    Units come first whatever the layer's layout: (channel, height, width) for conv maps,
    (d_model, pos) for sequences, (unit,) for dense layers; `axes` as in `ablate`.
    """
    check_inputs(inputs)
    total: Tensor | None = None
    with eval_mode(model), torch.no_grad():
        for batch in inputs.split(batch_size):
            with capture(model, [layer], check_finite=False) as store:
                model(batch.to(model_device(model)))
            act = store.act(layer)
            part = layer_unit_axes(model, layer, act.shape, axes).units_first(act).double().sum(dim=0).cpu()
            total = part if total is None else total + part
    if total is None:
        raise DataError("channel_means got no inputs; pass at least one.")
    return (total / inputs.shape[0]).float()


@dataclass(frozen=True)
class AblationEffect:
    """What ablating a set of channels does to every class."""

    json_skip: ClassVar[frozenset[str]] = frozenset({"class_counts"})
    json_extra: ClassVar[tuple[str, ...]] = ("accuracy_drop",)

    layer: str  # ablated layer
    channels: tuple[int, ...]  # ablated channels
    mode: str  # "zero" or "mean"
    base_accuracy: Tensor  # (n_classes,) accuracy per class without ablation
    ablated_accuracy: Tensor  # (n_classes,) accuracy per class with the channels ablated
    logit_change: Tensor  # (n_classes,) mean change of the true-class logit (ablated - base)
    class_counts: Tensor  # (n_classes,) inputs per class

    @property
    def accuracy_drop(self) -> Tensor:
        """(n_classes,) base minus ablated accuracy (positive: the ablation hurts)."""
        return self.base_accuracy - self.ablated_accuracy


def ablation_effect(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    layer: str,
    channels: Sequence[int] | Tensor,
    *,
    mode: Mode = "zero",
    means: Tensor | None = None,
    batch_size: int = 256,
    axes: AxesSpec | None = None,
    output: OutputSpec = None,
) -> AblationEffect:
    """Per-class accuracy and true-class logit change when `channels` of `layer` are ablated.

    Args:
        model: Any module returning logits (batch, n_classes).
        inputs: (batch, ...) inputs.
        labels: (batch,) class indices.
        layer: Layer to ablate.
        channels: Channels to ablate.
        mode: "zero" or "mean".
        means: Per-channel means for mode="mean"; None computes them on `inputs`.
        batch_size: Inputs per forward pass.
        axes: The layer's unit axes, as in `ablate`; None infers them.
        output: Which of the model's outputs holds the logits (see
            `mechscope.capture.select_output`): None (auto), a key, an index or a callable.

    Example:
        >>> effect = ablation_effect(model, data.x_test, data.y_test, "relu3", [4, 17, 9])
        >>> effect.accuracy_drop[3]
    """
    check_inputs(inputs, labels)
    labels = labels.cpu()  # compared with logits, which `_logits` hands back on the CPU
    if mode == "mean" and means is None:
        means = channel_means(model, layer, inputs, batch_size=batch_size, axes=axes)
    base = _logits(model, inputs, batch_size, output)
    n_classes = _n_classes(base, labels)
    with ablate(model, layer, channels, mode=mode, means=means, axes=axes):
        ablated = _logits(model, inputs, batch_size, output)
    counts = torch.bincount(labels, minlength=n_classes)
    return AblationEffect(
        layer=layer,
        channels=tuple(int(c) for c in torch.as_tensor(channels, device="cpu").reshape(-1).tolist()),
        mode=mode,
        base_accuracy=_per_class(base.argmax(1) == labels, labels, n_classes),
        ablated_accuracy=_per_class(ablated.argmax(1) == labels, labels, n_classes),
        logit_change=_per_class(_true(ablated, labels) - _true(base, labels), labels, n_classes),
        class_counts=counts,
    )


@dataclass(frozen=True)
class CausalCheck:
    """Ablating each class's top channels versus as many random channels, class by class."""

    json_skip: ClassVar[frozenset[str]] = frozenset({"top_channels"})
    json_extra: ClassVar[tuple[str, ...]] = ("ratio", "logit_ratio", "classes_hurt_more")

    layer: str  # ablated layer
    mode: str  # "zero" or "mean"
    n_random: int  # random draws per class
    top_channels: Tensor  # (n_classes, top) channels ablated for each class
    base_accuracy: Tensor  # (n_classes,) accuracy without ablation
    top_drop: Tensor  # (n_classes,) accuracy drop on class c when its top channels are ablated
    random_drop: Tensor  # (n_classes,) mean accuracy drop on class c over random draws of as many channels
    top_logit_drop: Tensor  # (n_classes,) mean decrease of class c's logit on its inputs, top channels ablated
    random_logit_drop: Tensor  # (n_classes,) the same for random channels, mean over draws
    cross_drop: Tensor  # (n_classes, n_classes): accuracy drop on class j (column) when class i's (row) top go

    @property
    def ratio(self) -> float:
        """Total accuracy drop from top channels over that from random ones, over all classes (inf if 0)."""
        return _ratio(self.top_drop, self.random_drop)

    @property
    def logit_ratio(self) -> float:
        """Total own-logit drop from top channels over that from random ones, over all classes."""
        return _ratio(self.top_logit_drop, self.random_logit_drop)

    @property
    def classes_hurt_more(self) -> int:
        """Classes whose own top channels cost them more accuracy than random ones."""
        return int((self.top_drop > self.random_drop).sum())


def causal_check(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    top_channels: Tensor,
    *,
    layer: str,
    mode: Mode = "zero",
    n_random: int = 20,
    seed: int = 0,
    means: Tensor | None = None,
    batch_size: int = 256,
    axes: AxesSpec | None = None,
    output: OutputSpec = None,
) -> CausalCheck:
    """Compare ablating each class's top channels with ablating as many random other channels.

    Args:
        model: Any module returning logits (batch, n_classes).
        inputs: (batch, ...) held-out inputs.
        labels: (batch,) class indices.
        top_channels: (n_classes, top) channels per class, e.g. `class_contributions(...).top_channels`.
        layer: The layer the channels belong to.
        mode: "zero" or "mean".
        n_random: Random draws per class (from the channels outside that class's top set).
        seed: Seed of the random draws.
        means: Per-channel means for mode="mean"; None computes them on `inputs`.
        batch_size: Inputs per forward pass.
        axes: The layer's unit axes, as in `ablate`; None infers them.
        output: Which of the model's outputs holds the logits, as in `ablation_effect`.

    Returns:
        CausalCheck; `ratio > 1` means top channels matter more than random ones.

    Example:
        >>> found = class_contributions(model, data.x_train, data.y_train)
        >>> check = causal_check(model, data.x_test, data.y_test, found.top_channels, layer=found.layer)
        >>> check.ratio
    """
    check_inputs(inputs, labels)
    _check_causal_options(n_random, top_channels)
    if mode == "mean" and means is None:
        means = channel_means(model, layer, inputs, batch_size=batch_size, axes=axes)
    n_channels = _n_units(model, layer, inputs, axes)
    base = _logits(model, inputs, batch_size, output)
    n_classes = _n_classes(base, labels)
    size = _top_size(top_channels, n_classes, n_channels, layer)
    labels = labels.cpu()
    ablation = _Ablation(model, layer, mode, means, axes, batch_size, output)
    generator = torch.Generator().manual_seed(seed)
    base_acc = _per_class(base.argmax(1) == labels, labels, n_classes)
    top_drop, random_drop = torch.zeros(n_classes, device="cpu"), torch.zeros(n_classes, device="cpu")
    top_logit, random_logit = torch.zeros(n_classes, device="cpu"), torch.zeros(n_classes, device="cpu")
    cross = torch.zeros(n_classes, n_classes, device="cpu")
    for c in range(n_classes):
        mine = labels == c
        if not bool(mine.any()):
            continue
        ablated = ablation.logits(inputs, top_channels[c])
        cross[c] = base_acc - _per_class(ablated.argmax(1) == labels, labels, n_classes)
        top_drop[c] = cross[c, c]
        top_logit[c] = (_true(base, labels) - _true(ablated, labels))[mine].mean()
        pool = _channels_outside(top_channels[c], n_channels)
        random_drop[c], random_logit[c] = _random_drops(
            ablation, inputs[mine], labels[mine], base[mine], base_acc[c], pool,
            size=size, n_random=n_random, generator=generator,
        )
    return CausalCheck(
        layer=layer,
        mode=mode,
        n_random=n_random,
        top_channels=top_channels.cpu(),
        base_accuracy=base_acc,
        top_drop=top_drop,
        random_drop=random_drop,
        top_logit_drop=top_logit,
        random_logit_drop=random_logit,
        cross_drop=cross,
    )


@dataclass(frozen=True)
class _Ablation:
    """How `causal_check` ablates one layer: the settings every ablated forward pass shares."""

    model: nn.Module
    layer: str  # the ablated layer
    mode: Mode  # "zero" or "mean"
    means: Tensor | None  # per-channel means for mode="mean"
    axes: AxesSpec | None  # the layer's unit axes; None infers them
    batch_size: int  # inputs per forward pass
    output: OutputSpec  # which of the model's outputs holds the logits

    def logits(self, inputs: Tensor, channels: Tensor) -> Tensor:
        """Logits (batch, n_classes) on the CPU with `channels` of the layer ablated."""
        with ablate(self.model, self.layer, channels, mode=self.mode, means=self.means, axes=self.axes):
            return _logits(self.model, inputs, self.batch_size, self.output)


def _check_causal_options(n_random: int, top_channels: Tensor) -> None:
    """Raise ConfigError for a bad `n_random`, DataError for `top_channels` that is not (n_classes, top)."""
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 1:
        raise ConfigError(f"n_random must be a positive integer; got {n_random!r}.")
    if top_channels.dim() != 2:
        raise DataError(f"top_channels must be (n_classes, top); got shape {tuple(top_channels.shape)}.")


def _n_units(model: nn.Module, layer: str, inputs: Tensor, axes: AxesSpec | None) -> int:
    """Units along `layer`'s unit axis, read from one forward pass on the first input."""
    with eval_mode(model), torch.no_grad(), capture(model, [layer], check_finite=False) as store:
        model(inputs[:1].to(model_device(model)))
    act = store.act(layer)
    return layer_unit_axes(model, layer, act.shape, axes).n_units(act.shape)


def _top_size(top_channels: Tensor, n_classes: int, n_channels: int, layer: str) -> int:
    """Top channels per class, checked against the classes and the channels left to draw from.

    Raises:
        DataError: `top_channels` has a row count other than `n_classes`.
        ConfigError: fewer channels lie outside a top set than it holds.
    """
    if top_channels.shape[0] != n_classes:
        raise DataError(f"top_channels has {top_channels.shape[0]} rows for {n_classes} classes.")
    size = top_channels.shape[1]
    if n_channels - size < size:
        raise ConfigError(
            f"{layer!r} has {n_channels} channels: too few to draw {size} random channels outside a top set of {size}."
        )
    return int(size)


def _channels_outside(top: Tensor, n_channels: int) -> Tensor:
    """The channels 0..n_channels-1 not in `top`, in order, on the CPU."""
    mine_top = set(top.tolist())
    return torch.tensor([k for k in range(n_channels) if k not in mine_top], device="cpu")


def _random_drops(
    ablation: _Ablation,
    x_c: Tensor,
    y_c: Tensor,
    base_c: Tensor,
    base_accuracy: Tensor,
    pool: Tensor,
    *,
    size: int,
    n_random: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Mean accuracy and own-logit drops on one class's inputs over random draws of channels.

    Args:
        ablation: The layer and settings to ablate with.
        x_c: (batch, ...) the class's inputs.
        y_c: (batch,) their labels.
        base_c: (batch, n_classes) their logits without ablation.
        base_accuracy: The class's accuracy without ablation (a scalar tensor).
        pool: Channels to draw from (those outside the class's top set).
        size: Channels per draw.
        n_random: Draws.
        generator: CPU generator of the draws (shared across classes, in class order).

    Returns:
        (mean accuracy drop, mean drop of the true class's logit), each a scalar tensor.
    """
    drops, logit_drops = [], []
    for _ in range(n_random):
        chosen = pool[torch.randperm(len(pool), generator=generator, device="cpu")[:size]]
        out = ablation.logits(x_c, chosen)
        drops.append(base_accuracy - (out.argmax(1) == y_c).float().mean())
        logit_drops.append((_true(base_c, y_c) - _true(out, y_c)).mean())
    return torch.stack(drops).mean(), torch.stack(logit_drops).mean()


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
    sequence feature), and the rest of the model runs on all copies at once. A model whose
    later layers cannot take the larger batch (a skip connection from before `layer`, a
    batch size fixed early in `forward`) is detected by the output's batch size or its
    error and run on repeated inputs instead. `batch` bounds the inputs per forward pass,
    copies included: more inputs than `batch` run in parts of `batch`, one unit at a time;
    `output` picks the model output returned (`mechscope.capture.select_output`). `inputs`
    move to the model's device; the outputs come back on the CPU.

    Example:
        >>> out = unit_ablation(model, x, "relu2", [0, 1, 2])
        >>> out.shape                       # (unit, batch, n_classes)
        torch.Size([3, 64, 10])
    """
    _check_batch(batch)
    inputs = inputs.to(model_device(model))
    if inputs.shape[0] > batch:
        return torch.cat([unit_ablation(model, part, layer, units, batch=batch, output=output)
                          for part in inputs.split(batch)], dim=1)
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


@dataclass(frozen=True)
class UnitAblation:
    """What zeroing each unit of a layer on its own costs the model."""

    layer: str  # ablated layer
    units: tuple[int, ...]  # ablated units, one at a time
    metric: str  # "accuracy drop" (classification) or "MSE increase" (regression)
    change: Tensor  # (unit,) metric change when the unit is zeroed
    per_class: Tensor | None = None  # (unit, n_classes) accuracy drop on each class (classification only)


def unit_ablation_effect(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    layer: str,
    units: list[int],
    *,
    task: Task,
    output: OutputSpec = None,
    batch: int = _REPLICA_BUDGET,
) -> UnitAblation:
    """Zero each unit of `layer` on its own (`unit_ablation`) and score what it costs.

    Args:
        model: Any module, in the mode it should be scored in (eval for a report).
        inputs: (batch, ...) inputs.
        targets: (batch,) class indices for "classification", values shaped like the
            explained output for "regression".
        layer: Layer whose units are zeroed.
        units: Units to zero, one at a time.
        task: "classification" (logits (batch, n_classes): accuracy drop, overall and per
            class) or "regression" (increase of the mean squared error).
        output: Which of the model's outputs is scored (`mechscope.capture.select_output`).
        batch: Most inputs per forward pass, copies included (as in `unit_ablation`).

    Example:
        >>> effect = unit_ablation_effect(model, x, y, "relu2", list(range(8)), task="classification")
        >>> effect.change.argmax()          # the unit the model misses most
    """
    if task not in ("classification", "regression"):
        raise ConfigError(f"task must be 'classification' or 'regression'; got {task!r}.")
    _check_batch(batch)
    with torch.no_grad():
        base = torch.cat([select_output(model(part.to(model_device(model))), output).cpu()
                          for part in inputs.split(batch)])
    ablated = unit_ablation(model, inputs, layer, units, batch=batch, output=output)
    y = targets.cpu()
    if task == "classification":
        n_classes = base.shape[1]
        right_base = (base.argmax(1) == y).float()
        right = (ablated.argmax(-1) == y[None]).float()  # (unit, batch)
        counts = torch.bincount(y, minlength=n_classes).clamp_min(1).float()
        per_class = torch.zeros(right.shape[0], n_classes, device="cpu").index_add_(1, y, right_base[None] - right)
        return UnitAblation(layer, tuple(units), "accuracy drop", right_base.mean() - right.mean(dim=1),
                            per_class / counts)
    target = y.reshape(base.shape).float()
    mse_base = (base - target).pow(2).mean()
    change = (ablated - target[None]).pow(2).flatten(1).mean(dim=1) - mse_base
    return UnitAblation(layer, tuple(units), "MSE increase", change)


def _check_batch(batch: int) -> None:
    """Raise ConfigError unless `batch` (inputs per forward pass) is a positive integer."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive integer; got {batch!r}.")


def _ablated_pass(
    model: nn.Module, inputs: Tensor, layer: str, chunk: list[int], *, expand: bool, output: OutputSpec
) -> Tensor:
    """One forward pass with len(chunk) copies, copy u with unit chunk[u] of `layer` zeroed."""
    n = len(chunk)
    layouts: dict[int, UnitAxes] = {}

    def zero(value: Tensor, *, hook: HookPoint) -> Tensor:
        if value.dim() not in layouts:
            layouts[value.dim()] = layer_unit_axes(model, layer, value.shape)
        unit = layouts[value.dim()].unit
        copies = value.unsqueeze(0).expand(n, *value.shape) if expand else value.reshape(n, -1, *value.shape[1:])
        mask = torch.ones(n, value.shape[unit], dtype=value.dtype, device=value.device)
        mask[torch.arange(n, device=value.device), torch.tensor(chunk, device=value.device)] = 0
        # (copy, batch, ...) with the units on the layer's unit axis and 1 on every other axis
        mask = mask.reshape(n, 1, *[value.shape[a] if a == unit else 1 for a in range(1, value.dim())])
        return (copies * mask).reshape(-1, *value.shape[1:])

    source = inputs if expand else inputs.repeat(n, *([1] * (inputs.dim() - 1)))
    with torch.no_grad(), patch(model, {layer: zero}):
        return select_output(model(source), output)


def _logits(model: nn.Module, inputs: Tensor, batch_size: int, output: OutputSpec) -> Tensor:
    device = model_device(model)
    with eval_mode(model), torch.no_grad():
        return torch.cat(
            [select_output(model(batch.to(device)), output).float().cpu() for batch in inputs.split(batch_size)]
        )


def _n_classes(logits: Tensor, labels: Tensor) -> int:
    if logits.dim() != 2:
        raise DataError(
            f"ablation needs logits of shape (batch, n_classes); the explained output has shape "
            f"{tuple(logits.shape)}. Pass output= choosing them (see mechscope.capture.select_output)."
        )
    n = int(logits.shape[1])
    if int(labels.max()) >= n:
        raise DataError(f"labels go up to {int(labels.max())} but the model returns {n} logits.")
    return n


def _per_class(values: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    labels = labels.cpu()
    sums = torch.zeros(n_classes, dtype=torch.float64, device="cpu").index_add_(0, labels, values.double().cpu())
    counts = torch.bincount(labels, minlength=n_classes).clamp_min(1)
    return (sums / counts).float()


def _true(logits: Tensor, labels: Tensor) -> Tensor:
    return logits.gather(1, labels.cpu()[:, None])[:, 0]


def _ratio(top: Tensor, random: Tensor) -> float:
    denominator = float(random.sum())
    if denominator <= 0:
        return float("inf") if float(top.sum()) > 0 else float("nan")
    return float(top.sum()) / denominator
