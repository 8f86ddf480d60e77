"""Probes: decode what a network's activations say about its inputs and outputs, with the controls a claim needs.

A probe family with one scikit-learn-style interface (`LinearProbe`, `MLPProbe`, `ConvProbe`),
label groups, `evaluate_probe` with its controls over seeds, and the probing pipeline over a
model's layers: layer by layer (`probe_by_layer`), or several layers stacked as one activation
image (`probe_activation_image`, `probe_modular_mlp`). The rest lives in the submodules: `base`
(`NetworkProbe`, heads), `labels` (`categorical`, `continuous`), `control` (baseline, control task,
selectivity), `rigor` (splits, seed runs), `by_layer` (features, `LayerScore`),
`activation_image` and `modular`.
"""

from mechscope.probes.base import Probe
from mechscope.probes.by_layer import LayerProbeTable, ProbeRun, probe_activation_image, probe_by_layer, unit_means
from mechscope.probes.control import untrained_copy
from mechscope.probes.conv import ConvProbe
from mechscope.probes.labels import Labels
from mechscope.probes.linear import LinearProbe
from mechscope.probes.mlp import MLPProbe
from mechscope.probes.modular import probe_modular_mlp
from mechscope.probes.rigor import ProbeReport, evaluate_probe

__all__ = [
    "ConvProbe",
    "Labels",
    "LayerProbeTable",
    "LinearProbe",
    "MLPProbe",
    "Probe",
    "ProbeReport",
    "ProbeRun",
    "evaluate_probe",
    "probe_activation_image",
    "probe_by_layer",
    "probe_modular_mlp",
    "unit_means",
    "untrained_copy",
]
