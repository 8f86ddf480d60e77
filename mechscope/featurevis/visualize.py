"""One call from a model and its data to rendered units with their evidence.

`visualize` renders an objective (all units in one batch), then measures every picture
against the unit's best dataset example. `unit_objective` builds the five standard
objectives by name and `count_units` reads how many units a layer has.

Example:
    >>> data = digits_data("mnist5k")
    >>> vis = visualize(model, unit_objective("channel", "relu3", range(32)), data.all_inputs())
    >>> vis.evidence.fraction_reached()   # share of channels whose picture beats the data
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from mechscope.capture import capture, select_output
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.outputs import OutputSpec
from mechscope.capture.units import layer_unit_axes
from mechscope.data.finite import check_finite
from mechscope.errors import ConfigError
from mechscope.featurevis.evidence import Evidence, evidence
from mechscope.featurevis.objectives import Objective, Units, channel, layer, logit, neuron, prob
from mechscope.featurevis.param import InputSpace
from mechscope.featurevis.render import RenderConfig, RenderResult, render
from mechscope.featurevis.transforms import Transform, standard_transforms
from mechscope.serialize import to_json

__all__ = ["ObjectiveKind", "TransformPreset", "Visualization", "count_units", "unit_objective", "visualize"]

ObjectiveKind = Literal["channel", "neuron", "layer", "logit", "prob"]

TransformPreset = Literal["none", "standard"]
"""Transforms named by a word: "none" (render the clean image) or "standard" (`standard_transforms`)."""


@dataclass(frozen=True)
class Visualization:
    """Rendered images of an objective and the evidence that they are real."""

    result: RenderResult  # images, objective trace, final activations
    evidence: Evidence  # activation reached vs the dataset max, per unit

    def __json__(self) -> dict[str, Any]:
        """The evidence per unit with the run's steps and time (no pixels)."""
        return {
            **to_json(self.evidence),
            "description": self.result.description,
            "steps": self.result.steps,
            "seconds": self.result.seconds,
        }


def unit_objective(
    kind: ObjectiveKind, layer_name: str | None, units: Units, *, output: OutputSpec = None
) -> Objective:
    """Build a standard objective by name.

    Args:
        kind: "channel", "neuron" (centre position), "layer" (mean of the layer, units
            ignored), "logit" or "prob".
        layer_name: Layer to read; may be None for "logit" and "prob" (the model output).
        units: Unit indices, one per rendered row.
        output: For "logit" and "prob" on the model output: which of its outputs holds the
            logits (see `mechscope.capture.select_output`).

    Raises:
        ConfigError: unknown kind, or no layer for a kind that needs one.
    """
    if kind not in get_args(ObjectiveKind):
        raise ConfigError(f"objective must be one of {get_args(ObjectiveKind)!r}, got {kind!r}.")
    if kind == "logit":
        return logit(units, layer=layer_name, output=output)
    if kind == "prob":
        return prob(units, layer=layer_name, output=output)
    if layer_name is None:
        raise ConfigError(f"A {kind} objective needs a layer name, e.g. 'relu2'.")
    if kind == "channel":
        return channel(layer_name, units)
    if kind == "neuron":
        return neuron(layer_name, units)
    return layer(layer_name)


def count_units(model: nn.Module, layer_name: str | None, example: Tensor, *, output: OutputSpec = None) -> int:
    """Units of a layer's output along its unit axis, read from one forward pass on `example`.

    Channels of a conv map, features of a sequence (batch, pos, d_model), neurons of a dense
    layer; for the model output, its axis 1.

    Args:
        model: The model.
        layer_name: Dotted layer name, or None for the model's output.
        example: A small input batch, (batch, ...).
        output: With `layer_name` None, which of the model's outputs to count (see
            `mechscope.capture.select_output`).
    """
    example = example.to(model_device(model))
    with eval_mode(model), torch.no_grad():
        if layer_name is None:
            act = select_output(model(example), output)
        else:
            with capture(model, [layer_name]) as store:
                model(example)
            act = store.act(layer_name)
    if act.dim() < 2:
        raise ConfigError(f"Output of {layer_name or 'the model'!r} has shape {tuple(act.shape)}: no unit axis.")
    if layer_name is None:
        return int(act.shape[1])
    return layer_unit_axes(model, layer_name, act.shape).n_units(act.shape)


def visualize(
    model: nn.Module,
    objective: Objective,
    data: Tensor,
    *,
    space: InputSpace | None = None,
    config: RenderConfig | None = None,
    transforms: Transform | TransformPreset | None = None,
    progress: bool = True,
    batch_size: int = 512,
) -> Visualization:
    """Render every unit of `objective` in one batch and compare each with the dataset.

    Args:
        model: Image model.
        objective: A per-unit objective (no diversity term).
        data: Dataset images (batch, channel, height, width) in their natural range.
        space: Input shape, range and normalisation; default `InputSpace.from_data(data)`.
        config: Render settings; default `RenderConfig(restarts=2)`: the better of two starts
            per unit (they share one batch).
        transforms: None or "none" (default: no transforms), "standard" (`standard_transforms` for
            the image size, padded with the data's lowest value) or any Transform. Transforms give smoother
            pictures but lower the activation the clean image reaches: on the digit CNNs some
            texture-like conv1 channels rendered black and stayed below their dataset maximum.
        progress: Show a progress bar while rendering.
        batch_size: Dataset images per forward pass when the renders are compared with `data`.

    Returns:
        Visualization with the render result and its evidence.

    Raises:
        DataError: `data` holds NaN/inf (checked before rendering starts).
    """
    check_finite(data, "data")
    space = InputSpace.from_data(data) if space is None else space
    config = RenderConfig(restarts=2) if config is None else config
    if transforms == "none":
        transforms = None
    elif transforms == "standard":
        low = space.low if isinstance(space.low, float) else min(space.low)
        transforms = standard_transforms(min(space.shape[1:]), background=low)
    elif transforms is not None and not isinstance(transforms, Transform):
        raise ConfigError(f"transforms must be 'none', 'standard', a Transform or None, got {transforms!r}.")
    result = render(model, objective, space, config=config, transforms=transforms, progress=progress)
    return Visualization(result, evidence(model, objective, result.images, data, space=space, batch_size=batch_size))
