"""Causal interventions on any nn.Module: activation, attribution and path patching.

`activation_patching` puts one run's activation into another cell by cell (positions, heads
or units of each layer, batched), `attribution_patching` estimates the same from one
backward pass, `compare` shows where that estimate fails, and `path_patching` isolates the
effect of a sender that travels through chosen receivers.
"""

from mechscope.patching.activation import Direction, PatchingResult, activation_patching
from mechscope.patching.attribution import PatchingComparison, attribution_patching, compare
from mechscope.patching.metrics import Metric, logit_diff, loss, probability
from mechscope.patching.pairs import Pairing, default_pairing, modular_pairing
from mechscope.patching.path import path_patching

__all__ = [
    "Direction",
    "Metric",
    "Pairing",
    "PatchingComparison",
    "PatchingResult",
    "activation_patching",
    "attribution_patching",
    "compare",
    "default_pairing",
    "logit_diff",
    "loss",
    "modular_pairing",
    "path_patching",
    "probability",
]
