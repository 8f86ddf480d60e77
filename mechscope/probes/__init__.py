"""Probes: decode what a network's activations say about its inputs and outputs.

A probe family with one scikit-learn-style interface (`LinearProbe`, `MLPProbe`,
`ConvProbe`), label groups (several categorical heads and continuous values),
activation images, the controls a probing claim needs (majority baseline, control task,
selectivity, untrained copy, seeds), and one probing pipeline over a model's layers: layer
by layer through a features hook (`probe_by_layer`), or several layers stacked as one
activation image (`probe_activation_image`, `probe_modular_mlp`).
"""

from mechscope.probes.activation_image import ActivationImage, activation_image, stack_activations
from mechscope.probes.base import HeadSpec, NetworkProbe, Probe, all_heads_accuracy, clone, head_scores
from mechscope.probes.by_layer import (
    Features,
    LayerProbeTable,
    LayerScore,
    ProbeRun,
    flat_features,
    probe_activation_image,
    probe_by_layer,
    representative_cases,
    unit_means,
)
from mechscope.probes.control import Baseline, control_task, input_types, majority_baseline, selectivity, untrained_copy
from mechscope.probes.conv import ConvProbe
from mechscope.probes.linear import LinearProbe
from mechscope.probes.mlp import MLPProbe
from mechscope.probes.modular import hidden_layers, modular_labels, probe_modular_mlp
from mechscope.probes.rigor import ProbeReport, SeedRun, Split, evaluate_probe, split_indices
from mechscope.probes.labels import LabelGroup, Labels, LabelsLike, as_labels, categorical, continuous

__all__ = [
    "ActivationImage",
    "Baseline",
    "ConvProbe",
    "Features",
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
    "LabelGroup",
    "Labels",
    "LabelsLike",
    "activation_image",
    "all_heads_accuracy",
    "as_labels",
    "categorical",
    "clone",
    "continuous",
    "control_task",
    "evaluate_probe",
    "flat_features",
    "head_scores",
    "hidden_layers",
    "input_types",
    "majority_baseline",
    "modular_labels",
    "probe_activation_image",
    "probe_by_layer",
    "probe_modular_mlp",
    "representative_cases",
    "selectivity",
    "split_indices",
    "stack_activations",
    "unit_means",
    "untrained_copy",
]
