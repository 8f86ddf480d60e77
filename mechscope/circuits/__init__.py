"""Features and circuits: activation maps, kernels, dataset examples, polysemantic units, class circuits, ablations.

Here are the analyses and the results of the end-to-end ones. The rest lives in the
submodules: `activations`, `filters`, `examples` (streaming top-k, `LayerExamples`),
`polysemantic`, `contributions`, `connections`, `dataflow` (which layer feeds which),
`ablation` (unit ablations, `AblationEffect`, `CausalCheck`), `circuit` and `layers` (conv layers,
activation layers and receptive fields).
"""

from mechscope.circuits.ablation import ablate, ablation_effect, causal_check
from mechscope.circuits.activations import DepthStatistics, activation_maps, depth_statistics
from mechscope.circuits.circuit import ClassCircuits, class_circuits
from mechscope.circuits.connections import conv_connections
from mechscope.circuits.contributions import class_contributions
from mechscope.circuits.examples import DatasetExamples, dataset_examples
from mechscope.circuits.filters import conv_kernels
from mechscope.circuits.polysemantic import polysemanticity

__all__ = [
    "ClassCircuits",
    "DatasetExamples",
    "DepthStatistics",
    "ablate",
    "ablation_effect",
    "activation_maps",
    "causal_check",
    "class_circuits",
    "class_contributions",
    "conv_connections",
    "conv_kernels",
    "dataset_examples",
    "depth_statistics",
    "polysemanticity",
]
