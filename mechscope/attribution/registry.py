"""Attribution methods by command-line name, and construction from a name."""

from __future__ import annotations

from torch import nn

from mechscope.attribution.base import Attribution
from mechscope.capture.outputs import OutputSpec
from mechscope.attribution.cam import CAM, GradCAM, GradCAMPlusPlus, GuidedGradCAM
from mechscope.attribution.gradients import GradientXInput, GuidedBackprop, IntegratedGradients, Saliency
from mechscope.errors import ConfigError, close_matches

__all__ = ["METHODS", "build_method"]

METHODS: dict[str, type[Attribution]] = {
    cls.name: cls
    for cls in (
        Saliency,
        GradientXInput,
        IntegratedGradients,
        GuidedBackprop,
        CAM,
        GradCAM,
        GradCAMPlusPlus,
        GuidedGradCAM,
    )
}
"""Every built-in method, keyed by its `name` (e.g. "grad-cam")."""


def build_method(
    name: str, model: nn.Module, *, layer: str | None = None, output: OutputSpec = None
) -> Attribution:
    """Construct the method called `name` for `model` with default settings.

    Args:
        name: A key of METHODS.
        model: The classifier to explain.
        layer: Conv layer for layer methods (CAM family, guided Grad-CAM); ignored by the
            others; None picks `mechscope.capture.default_layer` on the first call.
        output: Which of the model's outputs holds the logits (see
            `mechscope.capture.select_output`); None takes a tensor or the "logits" entry.

    Raises:
        ConfigError: Unknown name; the message lists the known ones.

    Example:
        >>> build_method("grad-cam", model).attribute(images).shape
    """
    cls = METHODS.get(name)
    if cls is None:
        hint = close_matches(name, METHODS)
        did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(f"Unknown attribution method {name!r}; choose from {', '.join(METHODS)}.{did_you_mean}")
    if cls.uses_layer:
        return cls(model, layer=layer, output=output)  # type: ignore[call-arg]
    return cls(model, output=output)
