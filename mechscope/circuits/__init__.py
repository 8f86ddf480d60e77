"""Features and circuits: activation maps, kernels, dataflow, dataset examples, polysemantic units, class circuits, ablations."""

from mechscope.circuits.ablation import (
    AblationEffect,
    CausalCheck,
    Mode,
    UnitAblation,
    ablate,
    ablation_effect,
    causal_check,
    channel_means,
    unit_ablation,
    unit_ablation_effect,
)
from mechscope.circuits.activations import (
    ActivationMaps,
    DepthStatistics,
    LayerStatistics,
    activation_maps,
    depth_statistics,
)
from mechscope.circuits.circuit import ClassCircuits, class_circuits
from mechscope.circuits.connections import (
    Connection,
    ConvConnections,
    UnitConnections,
    connection_strengths,
    connections_into,
    conv_connections,
    unit_connections,
)
from mechscope.circuits.dataflow import Feed, LayerGraph, layer_graph
from mechscope.circuits.contributions import (
    ClassContributions,
    Method,
    class_contributions,
    class_mean_maps,
    find_gap_head,
)
from mechscope.circuits.examples import (
    DatasetExamples,
    LayerExamples,
    RankedExamples,
    Reduce,
    StreamingTopK,
    dataset_examples,
    unit_scores,
)
from mechscope.circuits.filters import Kernels, conv_kernels
from mechscope.circuits.polysemantic import Polysemanticity, classes_covering, label_entropy, polysemanticity
from mechscope.circuits._modules import ReceptiveField, conv_layers, depth_layers

__all__ = [
    "AblationEffect",
    "ActivationMaps",
    "CausalCheck",
    "ClassCircuits",
    "ClassContributions",
    "Connection",
    "ConvConnections",
    "DatasetExamples",
    "DepthStatistics",
    "Feed",
    "Kernels",
    "LayerExamples",
    "LayerGraph",
    "LayerStatistics",
    "Method",
    "Mode",
    "Polysemanticity",
    "RankedExamples",
    "ReceptiveField",
    "Reduce",
    "StreamingTopK",
    "UnitAblation",
    "UnitConnections",
    "ablate",
    "ablation_effect",
    "activation_maps",
    "causal_check",
    "channel_means",
    "class_circuits",
    "class_contributions",
    "class_mean_maps",
    "classes_covering",
    "connection_strengths",
    "connections_into",
    "conv_connections",
    "conv_kernels",
    "conv_layers",
    "dataset_examples",
    "depth_layers",
    "depth_statistics",
    "find_gap_head",
    "label_entropy",
    "layer_graph",
    "polysemanticity",
    "unit_ablation",
    "unit_ablation_effect",
    "unit_connections",
    "unit_scores",
]
