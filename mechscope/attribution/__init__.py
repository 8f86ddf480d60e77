"""Attribution maps: which input pixels or tokens a model's decision rests on, with sanity and faithfulness checks.

Here are the eight methods, the two checks with their results, and the target rule. The rest
lives in the submodules: `base` (the `InputAttribution` and `LayerAttribution` templates to
subclass), `gradients` and `cam` (the methods and their helpers), `targets`, `registry` (methods by
command-line name), `sanity`, `faithfulness` (curves and areas), and `embeddings` and `token_grid`
(token-id models and token layers).
"""

from mechscope.attribution.base import Attribution
from mechscope.attribution.cam import CAM, GradCAM, GradCAMPlusPlus, GuidedGradCAM
from mechscope.attribution.faithfulness import FaithfulnessResult, faithfulness
from mechscope.attribution.gradients import GradientXInput, GuidedBackprop, IntegratedGradients, Saliency
from mechscope.attribution.sanity import SanityResult, cascading_randomization
from mechscope.attribution.targets import resolve_target

__all__ = [
    "Attribution",
    "CAM",
    "FaithfulnessResult",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientXInput",
    "GuidedBackprop",
    "GuidedGradCAM",
    "IntegratedGradients",
    "Saliency",
    "SanityResult",
    "cascading_randomization",
    "faithfulness",
    "resolve_target",
]
