"""Find the Fourier algorithm inside modular-arithmetic networks.

Tools that work on any tensor indexed by residues of Z_p (embeddings, unembeddings, logit tables)
and on any model mapping (a, b) to logits: energy per frequency, neuron frequency clusters, the 2D
spectrum of the logits, restricted / excluded loss (Nanda et al. 2023), accuracy after ablating
frequencies, clock vs pizza (Zhong et al. 2023), Gromov's (2023) analytic solution, and
`analyze_modular`, which runs them all. The rest lives in the submodules: `basis`, `tables`
(logit and neuron tables, embeddings), `energy`, `neurons`, `losses`, `ablation`, `clock_pizza`,
`construct`, `progress` and `analysis`.
"""

from mechscope.fourier.ablation import accuracy_after_ablation
from mechscope.fourier.analysis import FourierAnalysis, analyze_modular
from mechscope.fourier.clock_pizza import ClockPizza, clock_or_pizza
from mechscope.fourier.construct import gromov_modular_mlp
from mechscope.fourier.energy import FrequencySpectrum, frequency_spectrum, logit_spectrum_2d
from mechscope.fourier.losses import excluded_loss, restricted_loss
from mechscope.fourier.neurons import NeuronFrequencies, neuron_frequencies
from mechscope.fourier.progress import progress_measures

__all__ = [
    "ClockPizza",
    "FourierAnalysis",
    "FrequencySpectrum",
    "NeuronFrequencies",
    "accuracy_after_ablation",
    "analyze_modular",
    "clock_or_pizza",
    "excluded_loss",
    "frequency_spectrum",
    "gromov_modular_mlp",
    "logit_spectrum_2d",
    "neuron_frequencies",
    "progress_measures",
    "restricted_loss",
]
