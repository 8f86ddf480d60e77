"""Class circuits end to end: detectors per class, the conv wiring into them, and the causal check.

`class_circuits` finds each class's top channels on the training split, reads the
connections between consecutive conv layers from the weights, and ablates the top
channels on the held-out split against random channels, so the channels are chosen on
one split and tested on another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture.outputs import OutputSpec
from mechscope.circuits.ablation import CausalCheck, Mode, causal_check, channel_means
from mechscope.circuits.connections import ConvConnections, conv_connections
from mechscope.circuits.layers import activation_after, conv_feeding
from mechscope.circuits.contributions import ClassContributions, Method, class_contributions, class_mean_maps
from mechscope.data import DataBundle
from mechscope.errors import ConfigError, DataError

__all__ = ["ClassCircuits", "class_circuits"]


@dataclass(frozen=True)
class ClassCircuits:
    """Each class's main detector channels, the conv wiring, and what ablating the detectors costs."""

    contributions: ClassContributions  # per-class channel contributions and top channels
    connections: tuple[ConvConnections, ...]  # conv pairs where the first feeds the second, shallowest first
    causal: CausalCheck  # top channels versus random channels, ablated on held-out data
    detector_conv: str | None  # the conv module producing the detector layer (e.g. "conv3" for "relu3")
    source_layer: str | None  # activation layer feeding the detector conv (e.g. "relu2"), if any
    source_maps: Tensor | None  # (n_classes, channel, *spatial) mean maps of `source_layer` per class
    class_mean_inputs: Tensor  # (n_classes, *input_shape) mean training input per class

    @property
    def layer(self) -> str:
        """The layer whose channels are the detectors."""
        return self.contributions.layer

    def feeding(self) -> ConvConnections | None:
        """The connections into the detector layer's conv (e.g. conv2 -> conv3), if the model has them.

        When several convs feed it (a residual sum), the one that ran last.
        """
        found = [pair for pair in self.connections if pair.target == self.detector_conv]
        return found[-1] if found else None

    def __json__(self) -> dict[str, Any]:
        """`classes` -> {class -> top_channels, contributions, ablation_drop, random_ablation_drop},
        `connections`, plus the ablation summary."""
        found, check = self.contributions, self.causal
        classes = {}
        for c, name in enumerate(found.class_names):
            top = found.top_channels[c]
            classes[name] = {
                "top_channels": top,
                "contributions": found.contributions[c, top],
                "ablation_drop": check.top_drop[c],
                "random_ablation_drop": check.random_drop[c],
            }
        return {
            "layer": found.layer,
            "method": found.method,
            "classes": classes,
            "connections": self.connections,
            "ablation": {
                "mode": check.mode,
                "n_random": check.n_random,
                "ratio": check.ratio,
                "logit_ratio": check.logit_ratio,
                "classes_hurt_more": check.classes_hurt_more,
                "base_accuracy": check.base_accuracy,
                "top_logit_drop": check.top_logit_drop,
                "random_logit_drop": check.random_logit_drop,
            },
            "all_contributions": found.contributions,
        }


def class_circuits(
    model: nn.Module,
    data: DataBundle,
    *,
    layer: str | None = None,
    top: int = 3,
    method: Method = "auto",
    mode: Mode = "zero",
    n_random: int = 20,
    seed: int = 0,
    output: OutputSpec = None,
) -> ClassCircuits:
    """Find each class's top detector channels and test them causally.

    Args:
        model: A classifier returning logits (batch, n_classes), or a dict, tuple or
            `ModelOutput` holding them (see `output`).
        data: Classification data; contributions are measured on the training split,
            ablations on the test split.
        layer: Detector layer; None uses `mechscope.capture.default_layer` (the last spatial
            map, after its nonlinearity, at the block output); `layer` of the result says which.
        top: Detectors per class.
        method: Contribution measure: "auto", "gap" or "gradient" (see `class_contributions`).
        mode: Ablation by "zero" or by the training-split "mean".
        n_random: Random channel sets drawn per class for the baseline.
        seed: Seed of the random draws.
        output: Which of the model's outputs holds the logits (see
            `mechscope.capture.select_output`): None (auto), a key, an index or a callable.

    Returns:
        ClassCircuits; `to_dict()` is the `mechscope circuits --format json` output.

    Raises:
        DataError: `data` is not a classification bundle, or a split holds NaN/inf.

    Example:
        >>> circuits = class_circuits(model, digits_data("digits"))
        >>> circuits.contributions.top_channels[3], circuits.causal.ratio
    """
    if data.task != "classification":
        raise DataError(f"class circuits need classification data; got task {data.task!r}.")
    data.check_finite()
    found = class_contributions(
        model, data.x_train, data.y_train, layer=layer, top=top, method=method, class_names=data.class_names,
        output=output,
    )
    n_channels = int(found.contributions.shape[1])
    if top > n_channels // 2:
        raise ConfigError(
            f"top={top} detectors per class need at least {2 * top} channels in {found.layer!r} (it has {n_channels}), "
            f"so that as many random channels can be drawn outside them; choose top <= {max(n_channels // 2, 1)}."
        )
    means = channel_means(model, found.layer, data.x_train) if mode == "mean" else None
    check = causal_check(
        model, data.x_test, data.y_test, found.top_channels, layer=found.layer, mode=mode, n_random=n_random,
        seed=seed, means=means, output=output,
    )
    example = data.x_train[:2]  # read only when torch.fx cannot trace the model
    connections = conv_connections(model, top=top, example=example)
    detector_conv = conv_feeding(model, found.layer, example=example)
    sources = [pair.source for pair in connections if pair.target == detector_conv]
    source = sources[-1] if sources else None  # the conv that ran last, for a residual sum
    source_layer = None if source is None else activation_after(model, source)
    n_classes = found.n_classes
    return ClassCircuits(
        contributions=found,
        connections=connections,
        causal=check,
        detector_conv=detector_conv,
        source_layer=source_layer,
        source_maps=None if source_layer is None else class_mean_maps(
            model, data.x_train, data.y_train, source_layer, n_classes=n_classes
        ),
        class_mean_inputs=_class_means(data.x_train, data.y_train, n_classes),
    )


def _class_means(x: Tensor, y: Tensor, n_classes: int) -> Tensor:
    x, y = x.cpu(), y.cpu()
    sums = torch.zeros(n_classes, *x.shape[1:], dtype=torch.float64, device="cpu").index_add_(0, y, x.double())
    counts = torch.bincount(y, minlength=n_classes).clamp_min(1).double()
    return (sums / counts.reshape(-1, *([1] * (x.dim() - 1)))).float()
