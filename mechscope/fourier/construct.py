"""Gromov's analytic solution of modular addition, built into mechscope models.

Gromov (2023, "Grokking modular arithmetic") writes down the weights a one-hidden-layer
network reaches after grokking: neuron j reads a and b through cosines of one frequency
k_j with random phases, and writes back the matching cosine of the output class:

    W1[j, n]     = cos(w n + phi_j)         (a block)     w = 2 pi k_j / p
    W1[j, p + n] = cos(w n + psi_j)         (b block)
    W2[c, j]     = cos(-w c - phi_j - psi_j)

Averaged over the random phases, the logits are proportional to sum_j cos(w_j (a + b - c)),
which peaks at c = (a + b) mod p; the leftover terms shrink like 1/sqrt(width), so a wide
enough layer is 100% accurate. Gromov squares the pre-activations; a ReLU keeps the
cos(w (a + b) + phi + psi) term too (with a smaller weight), which is what these builders use.

Example:
    >>> model = gromov_modular_mlp(31, [3, 7, 12], width=1024)
    >>> frequency_spectrum(model.hidden[0].linear.weight, axis=1, modulus=31).key_frequencies(0.999)
    [3, 7, 12]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mechscope.errors import ConfigError, UnsupportedModelError
from mechscope.fourier.basis import check_frequencies
from mechscope.models.grokking_mlp import GrokkingMLP, GrokkingMLPConfig
from mechscope.models.modular_mlp import ModularMLP, ModularMLPConfig

__all__ = ["gromov_weights", "gromov_modular_mlp", "gromov_grokking_mlp"]


def gromov_weights(
    modulus: int, frequencies: Sequence[int], width: int, *, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Return Gromov's first- and second-layer weights and each neuron's frequency.

    Args:
        modulus: p.
        frequencies: Planted frequencies; neuron j gets `frequencies[j % len(frequencies)]`.
        width: Number of hidden neurons.
        seed: Seed of the random phases (the global RNG is untouched).

    Returns:
        (W1 (width, 2p), W2 (p, width), neuron_frequency (width,) int64), float32.
    """
    freqs = check_frequencies(frequencies, modulus)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ConfigError(f"width must be a positive integer, got {width!r}.")
    if len(freqs) != len(list(frequencies)):
        raise ConfigError(f"frequencies must be distinct in 1..{modulus // 2}, got {list(frequencies)!r}.")
    generator = torch.Generator().manual_seed(seed)
    phases = torch.rand(2, width, generator=generator, dtype=torch.float64) * 2.0 * math.pi  # (2, unit)
    neuron_freq = torch.tensor([freqs[j % len(freqs)] for j in range(width)], dtype=torch.int64)
    omega = 2.0 * math.pi * neuron_freq.double() / modulus  # (unit,)
    n = torch.arange(modulus, dtype=torch.float64)
    w1a = torch.cos(omega[:, None] * n[None, :] + phases[0][:, None])  # (unit, p)
    w1b = torch.cos(omega[:, None] * n[None, :] + phases[1][:, None])  # (unit, p)
    w2 = torch.cos(-omega[None, :] * n[:, None] - (phases[0] + phases[1])[None, :])  # (p, unit)
    return torch.cat([w1a, w1b], dim=1).float(), w2.float(), neuron_freq


def gromov_modular_mlp(modulus: int, frequencies: Sequence[int], width: int, *, seed: int = 0) -> ModularMLP:
    """Return a one-hidden-layer ReLU ModularMLP (one-hot inputs) holding Gromov's weights."""
    w1, w2, _ = gromov_weights(modulus, frequencies, width, seed=seed)
    model = ModularMLP(ModularMLPConfig(modulus=modulus, n_layers=3, hidden=width, activation="relu"))
    first = model.get_submodule("hidden.0.linear")
    if not isinstance(first, nn.Linear):  # ModularMLP's documented layout
        raise UnsupportedModelError(f"ModularMLP's 'hidden.0.linear' is a {type(first).__name__}, not nn.Linear.")
    with torch.no_grad():
        first.weight.copy_(w1)
        first.bias.zero_()
        model.output.weight.copy_(w2)
        model.output.bias.zero_()
    return model.eval()


def gromov_grokking_mlp(modulus: int, frequencies: Sequence[int], width: int, *, seed: int = 0) -> GrokkingMLP:
    """Return a GrokkingMLP (integer pairs) holding Gromov's weights.

    The embedding carries the cosines: row n is `[cos(w_j n + phi_j)]_j` followed by
    `[cos(w_j n + psi_j)]_j` (d_embed = 2 * width), and `hidden` routes the first half of
    a's embedding and the second half of b's embedding to neuron j, so its pre-activation
    is exactly W1[j, a] + W1[j, p + b].
    """
    w1, w2, _ = gromov_weights(modulus, frequencies, width, seed=seed)
    config = GrokkingMLPConfig(modulus=modulus, d_embed=2 * width, width=width, combine="concat")
    model = GrokkingMLP(config)
    eye = torch.eye(width)
    zeros = torch.zeros(width, width)
    with torch.no_grad():
        model.embed.weight.copy_(torch.cat([w1[:, :modulus].T, w1[:, modulus:].T], dim=1))  # (p, 2 * unit)
        model.hidden.weight.copy_(torch.cat([eye, zeros, zeros, eye], dim=1))  # a: first half, b: second half
        model.hidden.bias.zero_()
        model.unembed.weight.copy_(w2)
        model.unembed.bias.zero_()
    return model.eval()
