"""Probes: decode what a network's activations say about its inputs and outputs.

A probe family with one scikit-learn-style interface (`LinearProbe`, `MLPProbe`,
`ConvProbe`), target groups (several categorical heads and continuous targets),
activation images, the controls a probing claim needs (majority baseline, control task,
selectivity, untrained copy, seeds), probing layer by layer, and the convolutional-probe
article end to end (`reproduce_article`).
"""

from mechscope.probes.activation_image import ActivationImage, activation_image, stack_activations
from mechscope.probes.article import (
    ProbeRun,
    article_hidden,
    hidden_layers,
    modular_targets,
    probe_model,
    probe_modular_mlp,
    representative_cases,
    reproduce_article,
    save_probe_figures,
)
from mechscope.probes.base import HeadSpec, NetworkProbe, Probe, all_heads_accuracy, clone, head_scores
from mechscope.probes.by_layer import LayerProbeTable, LayerScore, probe_by_layer
from mechscope.probes.control import Baseline, control_task, input_types, majority_baseline, selectivity, untrained_copy
from mechscope.probes.conv import ConvProbe
from mechscope.probes.linear import LinearProbe
from mechscope.probes.mlp import MLPProbe
from mechscope.probes.rigor import ProbeReport, SeedRun, Split, evaluate_probe, split_indices
from mechscope.probes.targets import TargetGroup, Targets, TargetsLike, as_targets, categorical, continuous

__all__ = [
    "ActivationImage",
    "Baseline",
    "ConvProbe",
    "HeadSpec",
    "LayerProbeTable",
    "LayerScore",
    "LinearProbe",
    "MLPProbe",
    "NetworkProbe",
    "Probe",
    "ProbeReport",
    "ProbeRun",
    "SeedRun",
    "Split",
    "TargetGroup",
    "Targets",
    "TargetsLike",
    "activation_image",
    "all_heads_accuracy",
    "article_hidden",
    "as_targets",
    "categorical",
    "clone",
    "continuous",
    "control_task",
    "evaluate_probe",
    "head_scores",
    "hidden_layers",
    "input_types",
    "majority_baseline",
    "modular_targets",
    "probe_by_layer",
    "probe_model",
    "probe_modular_mlp",
    "representative_cases",
    "reproduce_article",
    "save_probe_figures",
    "selectivity",
    "split_indices",
    "stack_activations",
    "untrained_copy",
]
