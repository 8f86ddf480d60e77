"""Feature visualisation: synthesise the input a neuron, channel, layer or class wants.

Objectives say what to maximise, `render` optimises many units in one batch from an
`InputSpace`, `evidence` checks each picture against the best dataset example, and `visualize`
does both in one call. The rest lives in the submodules: `objectives` (`direction`, the
objective types), `param` (pixel and Fourier parameterisations), `transforms` (pad, jitter,
scale, rotate, crop), `render`, `evidence` (`Evidence`) and `visualize` (`Visualization`,
objectives by name).
"""

from mechscope.featurevis.evidence import evidence
from mechscope.featurevis.objectives import Objective, channel, diversity, layer, logit, neuron, prob
from mechscope.featurevis.param import InputSpace
from mechscope.featurevis.render import RenderConfig, RenderResult, render
from mechscope.featurevis.transforms import standard_transforms
from mechscope.featurevis.visualize import visualize

__all__ = [
    "InputSpace",
    "Objective",
    "RenderConfig",
    "RenderResult",
    "channel",
    "diversity",
    "evidence",
    "layer",
    "logit",
    "neuron",
    "prob",
    "render",
    "standard_transforms",
    "visualize",
]
