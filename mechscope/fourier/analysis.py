"""One call that reads the Fourier algorithm out of a modular-addition model.

`analyze_modular` runs the whole toolbox on a model: the embedding's spectrum and key
frequencies, the logits' spectra, per-neuron frequency clusters, restricted / excluded
loss, accuracy after ablating frequencies from the embedding, and the clock-vs-pizza
diagnostics. `mechscope fourier CHECKPOINT` prints its JSON form (`mechscope.serialize.to_json`).

Example:
    >>> ckpt = load_checkpoint("runs/grokking-mlp")
    >>> result = analyze_modular(ckpt.model, data=ckpt.data())
    >>> result.key_frequencies, result.restricted_loss, result.excluded_loss
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from mechscope.capture import layer_names
from mechscope.data.bundle import DataBundle
from mechscope.errors import ConfigError, DataError, UnsupportedModelError
from mechscope.fourier.ablation import accuracy_after_ablation
from mechscope.fourier.clock_pizza import ClockPizza, distance_irrelevance, gradient_symmetricity
from mechscope.fourier.energy import FrequencySpectrum, LogitSpectrum2D, frequency_spectrum, logit_spectrum_2d
from mechscope.fourier.losses import excluded_loss, restricted_loss, table_accuracy, table_loss
from mechscope.fourier.neurons import PUBLISHED_THRESHOLD, NeuronFrequencies, neuron_frequencies
from mechscope.fourier.progress import split_pairs
from mechscope.fourier.tables import embedding_matrix, infer_modulus, logit_table, neuron_table
from mechscope.serialize import to_json

__all__ = ["FourierAnalysis", "analyze_modular", "default_neuron_layer"]


@dataclass(frozen=True)
class FourierAnalysis:
    """Everything `analyze_modular` measured.

    Attributes:
        modulus: p.
        key_frequencies: Smallest set of frequencies holding `share` of the embedding's energy.
        share: The energy share used to pick them.
        embedding: Spectrum of the embedding (rows = residues; a one-hot first layer's a- and b-blocks).
        output: Spectrum of the logit table along the output-class axis (the unembedding's view).
        logits_2d: 2D Fourier transform of the logit table over (a, b).
        neurons: Frequency clusters of the hidden layer's activations, or None if no layer was found.
        train_loss: Cross-entropy on the training pairs (all pairs if no split was given).
        test_loss: Cross-entropy on the held-out pairs (all pairs if no split was given).
        test_accuracy: Accuracy on the held-out pairs.
        restricted_loss: Loss on the held-out pairs with only the key frequencies kept.
        excluded_loss: Loss on the training pairs with the key frequencies removed.
        ablation: Accuracy on all pairs: "none", "key_removed", "others_removed" and one
            "remove_<k>" entry per key frequency.
        clock_pizza: Gradient symmetricity and distance irrelevance, or None where undefined.
    """

    modulus: int
    key_frequencies: list[int]
    share: float
    embedding: FrequencySpectrum
    output: FrequencySpectrum
    logits_2d: LogitSpectrum2D
    neurons: NeuronFrequencies | None
    train_loss: float
    test_loss: float
    test_accuracy: float
    restricted_loss: float
    excluded_loss: float
    ablation: dict[str, float]
    clock_pizza: ClockPizza | None

    def __json__(self) -> dict[str, Any]:
        """A flat summary: the embedding's shares at the top, the other spectra by their shares only."""
        return {
            "modulus": self.modulus,
            "key_frequencies": self.key_frequencies,
            "share": self.share,
            "energy_share": self.embedding.share,
            "top_k_energy": self.embedding.top_k_energy(),
            "constant_share": self.embedding.constant_share,
            "output_energy_share": self.output.share,
            "logit_diagonal_share": self.logits_2d.diagonal_share,
            "restricted_loss": self.restricted_loss,
            "excluded_loss": self.excluded_loss,
            "test_loss": self.test_loss,
            "train_loss": self.train_loss,
            "test_accuracy": self.test_accuracy,
            "accuracy_after_ablation": self.ablation,
            "neuron_clusters": None if self.neurons is None else _neuron_summary(self.neurons),
            "clock_pizza": self.clock_pizza,
        }


def analyze_modular(
    model: nn.Module,
    *,
    data: DataBundle | None = None,
    modulus: int | None = None,
    share: float = 0.9,
    threshold: float = PUBLISHED_THRESHOLD,
    layer: str | None = None,
) -> FourierAnalysis:
    """Run the Fourier toolbox on a model of (a + b) mod p.

    Args:
        model: Maps integer pairs (batch, 2) or one-hots (batch, 2p) to logits (batch, p).
        data: The modular split it was trained on; losses then use its train/test pairs.
        modulus: p; defaults to `model.config.modulus` or `data.n_classes`.
        share: Energy share the key frequencies must hold.
        threshold: Neuron cluster threshold (0.85 as published).
        layer: Hidden layer for neuron clusters; `default_neuron_layer(model)` if None.

    Returns:
        FourierAnalysis.

    Raises:
        ConfigError: If the modulus cannot be told, or `data` is not of addition.
    """
    if data is not None and "modulus" not in data.extras:
        raise ConfigError(
            f"the Fourier analysis needs modular-arithmetic data, got {data.spec.get('kind', 'unknown')!r} data; "
            "use a checkpoint trained on mechscope.data.modular_data (e.g. `mechscope train grokking-mlp`)."
        )
    if modulus is None and data is not None:
        modulus = int(data.extras["modulus"])
    p = infer_modulus(model, modulus)
    if data is not None and data.extras.get("operation", "+") != "+":
        raise ConfigError(
            f"the Fourier analysis reads (a + b) mod p, but the data is of {data.extras.get('operation')!r}; "
            "train on operation='+'."
        )
    logits = logit_table(model, p)
    embedding = frequency_spectrum(embedding_matrix(model, p))
    keys = embedding.key_frequencies(share)
    train_pairs: Tensor | None = None
    test_pairs: Tensor | None = None
    if data is not None:
        train_pairs, test_pairs = split_pairs(data)
    neuron_layer = layer if layer is not None else default_neuron_layer(model)
    neurons = None
    if neuron_layer is not None:
        neurons = neuron_frequencies(neuron_table(model, neuron_layer, p), threshold=threshold)
    return FourierAnalysis(
        modulus=p,
        key_frequencies=keys,
        share=float(share),
        embedding=embedding,
        output=frequency_spectrum(logits, axis=2),
        logits_2d=logit_spectrum_2d(logits),
        neurons=neurons,
        train_loss=table_loss(logits, pairs=train_pairs),
        test_loss=table_loss(logits, pairs=test_pairs),
        test_accuracy=table_accuracy(logits, pairs=test_pairs),
        restricted_loss=restricted_loss(logits, keys, pairs=test_pairs) if keys else float("nan"),
        excluded_loss=excluded_loss(logits, keys, pairs=train_pairs) if keys else float("nan"),
        ablation=_ablation(model, keys, p, logits),
        clock_pizza=_clock_pizza(model, logits, p),
    )


def default_neuron_layer(model: nn.Module) -> str | None:
    """Return the hidden layer whose neurons to cluster, else None.

    "act" (GrokkingMLP), "hidden.0" (ModularMLP), the last block's "blocks.i.mlp.act" (GrokkingTransformer).
    """
    names = set(layer_names(model))
    blocks = sorted((n for n in names if n.startswith("blocks.") and n.endswith(".mlp.act")),
                    key=lambda n: int(n.split(".")[1]) if n.split(".")[1].isdigit() else -1)
    for candidate in ("act", "hidden.0", *blocks[-1:]):
        if candidate in names:
            return candidate
    return None


def _ablation(model: nn.Module, keys: list[int], p: int, logits: Tensor) -> dict[str, float]:
    out = {"none": table_accuracy(logits)}
    if not keys:
        return out
    out["key_removed"] = accuracy_after_ablation(model, keys, modulus=p)
    out["others_removed"] = accuracy_after_ablation(model, keys, keep=True, modulus=p)
    for k in keys:
        out[f"remove_{k}"] = accuracy_after_ablation(model, [k], modulus=p)
    return out


def _clock_pizza(model: nn.Module, logits: Tensor, p: int) -> ClockPizza | None:
    try:
        q = distance_irrelevance(logits)
        s_g = gradient_symmetricity(model, modulus=p)
    except (DataError, UnsupportedModelError):
        return None  # constant correct logits or no embedding layer: the diagnostics are undefined
    return ClockPizza(gradient_symmetricity=s_g, distance_irrelevance=q)


def _neuron_summary(neurons: NeuronFrequencies) -> dict[str, Any]:
    summary = to_json(neurons)
    return {key: summary[key] for key in ("kind", "threshold", "cluster_sizes", "clustered_fraction")}
