"""Feature visualisation: synthesise the input a neuron, channel, layer or class wants.

Objectives say what to maximise, parameterisations how images are built, transforms make
the pictures robust, `render` optimises many units in one batch and `evidence` checks
each picture against the best dataset example.
"""

from mechscope.featurevis.evidence import Evidence, evidence
from mechscope.featurevis.objectives import (
    Activations,
    LayerReader,
    Objective,
    Units,
    channel,
    direction,
    diversity,
    layer,
    logit,
    neuron,
    prob,
)
from mechscope.featurevis.param import (
    ImageFn,
    InputSpace,
    ParamFactory,
    channel_correlation_sqrt,
    fft_image,
    pixel_image,
)
from mechscope.featurevis.render import RenderConfig, RenderResult, render, row_seeds
from mechscope.featurevis.transforms import (
    Transform,
    compose,
    crop,
    jitter,
    pad,
    random_rotate,
    random_scale,
    standard_transforms,
)
from mechscope.featurevis.visualize import (
    ObjectiveKind,
    TransformPreset,
    Visualization,
    count_units,
    unit_objective,
    visualize,
)

__all__ = [
    "Activations",
    "Evidence",
    "ImageFn",
    "InputSpace",
    "LayerReader",
    "Objective",
    "ObjectiveKind",
    "TransformPreset",
    "ParamFactory",
    "RenderConfig",
    "RenderResult",
    "Transform",
    "Units",
    "Visualization",
    "channel",
    "channel_correlation_sqrt",
    "compose",
    "count_units",
    "crop",
    "direction",
    "diversity",
    "evidence",
    "fft_image",
    "jitter",
    "layer",
    "logit",
    "neuron",
    "pad",
    "pixel_image",
    "prob",
    "random_rotate",
    "random_scale",
    "render",
    "row_seeds",
    "standard_transforms",
    "unit_objective",
    "visualize",
]
