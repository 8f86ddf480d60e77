"""Attribution maps (saliency, CAM, Grad-CAM, ...) with sanity and faithfulness checks."""

from mechscope.attribution.base import Attribution, InputAttribution, LayerAttribution, LayerPass
from mechscope.attribution.cam import CAM, GradCAM, GradCAMPlusPlus, GuidedGradCAM
from mechscope.attribution.gradients import GradientXInput, GuidedBackprop, IntegratedGradients, Saliency, guided_relus
from mechscope.attribution.faithfulness import (
    RANDOM,
    FaithfulnessResult,
    area_under_curve,
    faithfulness,
    perturbation_curves,
)
from mechscope.attribution.registry import METHODS, build_method
from mechscope.attribution.sanity import SanityResult, cascading_randomization, randomization_order, spearman
from mechscope.attribution.targets import Target, resolve_target

__all__ = [
    "Attribution",
    "InputAttribution",
    "LayerAttribution",
    "LayerPass",
    "Saliency",
    "GradientXInput",
    "IntegratedGradients",
    "GuidedBackprop",
    "CAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "GuidedGradCAM",
    "METHODS",
    "build_method",
    "guided_relus",
    "SanityResult",
    "cascading_randomization",
    "randomization_order",
    "spearman",
    "FaithfulnessResult",
    "faithfulness",
    "perturbation_curves",
    "area_under_curve",
    "RANDOM",
    "Target",
    "resolve_target",
]
