"""Find the Fourier algorithm inside modular-arithmetic networks.

Tools that work on any tensor indexed by residues of Z_p (embeddings, unembeddings,
logit tables) and on any model mapping (a, b) to logits: energy per frequency and key
frequencies, per-neuron frequency clusters, the 2D Fourier transform of the logits,
restricted / excluded loss (Nanda et al. 2023), accuracy after ablating frequencies,
clock-vs-pizza diagnostics (Zhong et al. 2023), and Gromov's (2023) analytic solution.
"""

from mechscope.fourier.ablation import ablate_frequencies, accuracy_after_ablation
from mechscope.fourier.analysis import FourierAnalysis, analyze_modular, default_neuron_layer
from mechscope.fourier.basis import (
    basis_frequencies,
    basis_labels,
    check_frequencies,
    fourier_basis,
    frequency_projector,
    n_frequencies,
)
from mechscope.fourier.clock_pizza import (
    ClockPizza,
    clock_or_pizza,
    correct_logit_table,
    cosine_symmetricity,
    distance_irrelevance,
    gradient_symmetricity,
)
from mechscope.fourier.construct import gromov_grokking_mlp, gromov_modular_mlp, gromov_weights
from mechscope.fourier.energy import (
    FrequencySpectrum,
    LogitSpectrum2D,
    frequency_spectrum,
    key_frequencies,
    logit_spectrum_2d,
)
from mechscope.fourier.losses import (
    excluded_logits,
    excluded_loss,
    restricted_logits,
    restricted_loss,
    sum_directions,
    table_accuracy,
    table_loss,
)
from mechscope.fourier.neurons import PUBLISHED_THRESHOLD, NeuronFrequencies, neuron_frequencies
from mechscope.fourier.progress import progress_measures
from mechscope.fourier.tables import all_pairs, embedding_matrix, embedding_parameter, logit_table, neuron_table

__all__ = [
    "ClockPizza",
    "FourierAnalysis",
    "FrequencySpectrum",
    "LogitSpectrum2D",
    "NeuronFrequencies",
    "PUBLISHED_THRESHOLD",
    "ablate_frequencies",
    "accuracy_after_ablation",
    "all_pairs",
    "analyze_modular",
    "basis_frequencies",
    "basis_labels",
    "check_frequencies",
    "clock_or_pizza",
    "correct_logit_table",
    "cosine_symmetricity",
    "default_neuron_layer",
    "distance_irrelevance",
    "embedding_matrix",
    "embedding_parameter",
    "excluded_logits",
    "excluded_loss",
    "fourier_basis",
    "frequency_projector",
    "frequency_spectrum",
    "gradient_symmetricity",
    "gromov_grokking_mlp",
    "gromov_modular_mlp",
    "gromov_weights",
    "key_frequencies",
    "logit_spectrum_2d",
    "logit_table",
    "n_frequencies",
    "neuron_frequencies",
    "neuron_table",
    "progress_measures",
    "restricted_logits",
    "restricted_loss",
    "sum_directions",
    "table_accuracy",
    "table_loss",
]
