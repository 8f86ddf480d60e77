"""Clock or pizza? Gradient symmetricity and distance irrelevance (Zhong et al. 2023).

Both algorithms embed residues on circles, but they combine the two operands differently:

* Clock: rotates angles, so the logit of the correct answer does not depend on the
  distance (a - b) between the operands — distance irrelevance q is high (paper: 0.85;
  typically 0.4..1) — and the two operands' gradients differ (symmetricity ~0.33).
* Pizza: averages the two embeddings, so the correct logit scales with |cos(w (a - b) / 2)|
  — q is low (paper: 0.17; typically 0..0.4) — and the gradients with respect to E_a and
  E_b nearly coincide (symmetricity ~0.99).

Definitions, with L[a, b] the logit of the correct class (a + b) mod p:

    q   = mean_d std_i L[i, i - d]  /  std_{a,b} L[a, b]
    s_g = mean over random (a, b, c) of cos(dQ_abc / dE_a, dQ_abc / dE_b)

A model that sums the two embeddings before anything else has s_g = 1 by construction,
so s_g only discriminates for architectures that can treat the operands differently.

Example:
    >>> to_json(clock_or_pizza(gromov_modular_mlp(31, [3, 7, 12], width=768)))
    {'gradient_symmetricity': -0.0559..., 'distance_irrelevance': 0.9742..., 'algorithm': 'clock'}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mechscope.capture import capture, get_layer
from mechscope.capture.modes import eval_mode, model_device
from mechscope.errors import ConfigError, DataError, UnsupportedModelError
from mechscope.fourier.losses import addition_labels
from mechscope.fourier.tables import InputEncoding, encode_pairs, infer_encoding, infer_modulus, logit_table

__all__ = [
    "ClockPizza",
    "clock_or_pizza",
    "correct_logit_table",
    "distance_irrelevance",
    "gradient_symmetricity",
    "cosine_symmetricity",
    "PIZZA_MAX_DISTANCE_IRRELEVANCE",
]

PIZZA_MAX_DISTANCE_IRRELEVANCE = 0.4
"""Zhong et al. find pizzas at q in [0, 0.4] and clocks at q in [0.4, 1]."""


@dataclass(frozen=True)
class ClockPizza:
    """Both diagnostics and the algorithm they point to ("clock" or "pizza", by q)."""

    json_extra: ClassVar[tuple[str, ...]] = ("algorithm",)

    gradient_symmetricity: float
    distance_irrelevance: float

    @property
    def algorithm(self) -> str:
        """ "pizza" when q < 0.4, else "clock" (the ranges Zhong et al. report)."""
        return "pizza" if self.distance_irrelevance < PIZZA_MAX_DISTANCE_IRRELEVANCE else "clock"


def correct_logit_table(logits: Tensor, labels: Tensor | None = None) -> Tensor:
    """Return L[a, b] = logits[a, b, correct class], shape (p, p).

    Args:
        logits: (p, p, n_classes) logit table.
        labels: (p, p) correct classes; defaults to (a + b) mod p.
    """
    if logits.dim() != 3 or logits.shape[0] != logits.shape[1]:
        raise DataError(f"expected a logit table (p, p, n_classes), got {tuple(logits.shape)}.")
    p = logits.shape[0]
    target = addition_labels(p) if labels is None else labels.long()
    return logits.detach().gather(2, target.to(logits.device).unsqueeze(-1)).squeeze(-1)


def distance_irrelevance(table: Tensor) -> float:
    """Return q: how little the correct logit depends on the distance a - b (1 = not at all).

    Args:
        table: A logit table (p, p, n_classes) or the correct logits L (p, p).

    Returns:
        mean over d of the std of L along the pairs (i, i - d), divided by the std of all of L.
        0 when L is a function of a - b only; 1 when L is a function of a + b only (odd p).

    Raises:
        DataError: If the shape is wrong or L is constant (q undefined).
    """
    L = correct_logit_table(table) if table.dim() == 3 else table.detach()
    if L.dim() != 2 or L.shape[0] != L.shape[1]:
        raise DataError(f"expected correct logits (p, p) or a logit table (p, p, n_classes), got {tuple(table.shape)}.")
    L = L.to(torch.float64)
    p = L.shape[0]
    total = L.std(unbiased=False)
    if float(total) <= 1e-12 * max(float(L.abs().max()), 1.0):
        raise DataError("the correct logits are constant, so distance irrelevance is undefined.")
    i = torch.arange(p, device=L.device)
    d = torch.arange(p, device=L.device)
    by_distance = L[i[None, :], (i[None, :] - d[:, None]) % p]  # (distance, i)
    return float(by_distance.std(dim=1, unbiased=False).mean() / total)


def cosine_symmetricity(grad_a: Tensor, grad_b: Tensor, *, eps: float = 1e-12) -> float:
    """Mean cosine similarity of paired gradients (batch, ...) — the core of gradient symmetricity.

    A pair where either gradient vanishes counts as 0.
    """
    ga, gb = grad_a.flatten(1).double(), grad_b.flatten(1).double()
    return float(F.cosine_similarity(ga, gb, dim=1, eps=eps).mean())


def gradient_symmetricity(
    model: nn.Module,
    *,
    modulus: int | None = None,
    layer: str | None = None,
    encoding: InputEncoding | None = None,
    n_triplets: int = 100,
    seed: int = 0,
) -> float:
    """Mean cosine similarity between dQ_abc/dE_a and dQ_abc/dE_b over random (a, b, c).

    Args:
        model: Maps (batch, 2) int pairs or (batch, 2p) one-hots to logits.
        modulus: p; defaults to `model.config.modulus`.
        layer: Layer whose output holds both operand embeddings, shaped (batch, 2, ...);
            defaults to "embed" if the model has it. Ignored for one-hot models, whose
            gradients are taken with respect to the one-hot inputs themselves.
        encoding: Input encoding; defaults to the model's.
        n_triplets: Number of random (a, b, c) triplets (Zhong et al. use 100).
        seed: Seed of the triplet sampler (the global RNG is untouched).

    Returns:
        s_g in [-1, 1].

    Raises:
        UnsupportedModelError: If no embedding layer is found for a pairs model.
    """
    if isinstance(n_triplets, bool) or not isinstance(n_triplets, int) or n_triplets < 1:
        raise ConfigError(f"n_triplets must be a positive integer, got {n_triplets!r}.")
    p = infer_modulus(model, modulus)
    enc = infer_encoding(model, encoding)
    param = next(model.parameters(), None)
    generator = torch.Generator().manual_seed(seed)  # CPU draws: the same triplets on every device
    triplets = torch.randint(0, p, (n_triplets, 3), generator=generator, device="cpu").to(model_device(model))
    pairs, c = triplets[:, :2], triplets[:, 2]
    with eval_mode(model):
        if enc == "one_hot":
            x = encode_pairs(pairs, p, "one_hot", param.dtype if param is not None else torch.float32)
            x.requires_grad_(True)
            out = model(x)
            (grad,) = torch.autograd.grad(out.gather(1, c[:, None]).sum(), x)
            grads = grad.reshape(n_triplets, 2, p)
        else:
            name = _embedding_layer(model, layer)
            with capture(model, [name], grads=True) as store:
                out = model(pairs)
                out.gather(1, c[:, None]).sum().backward()
            grads = store.grad(name)
            model.zero_grad(set_to_none=True)
            if grads.dim() < 2 or grads.shape[1] != 2:
                raise UnsupportedModelError(
                    f"layer {name!r} outputs {tuple(grads.shape)}; gradient symmetricity needs one embedding per "
                    "operand, shaped (batch, 2, ...). Name the embedding layer with layer=."
                )
    return cosine_symmetricity(grads[:, 0], grads[:, 1])


def clock_or_pizza(
    model: nn.Module,
    *,
    modulus: int | None = None,
    layer: str | None = None,
    n_triplets: int = 100,
    seed: int = 0,
) -> ClockPizza:
    """Measure gradient symmetricity and distance irrelevance of a modular-addition model."""
    s_g = gradient_symmetricity(model, modulus=modulus, layer=layer, n_triplets=n_triplets, seed=seed)
    q = distance_irrelevance(logit_table(model, modulus))
    return ClockPizza(gradient_symmetricity=s_g, distance_irrelevance=q)


def _embedding_layer(model: nn.Module, layer: str | None) -> str:
    if layer is not None:
        get_layer(model, layer)  # raises LayerNameError with close matches
        return layer
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Embedding)]
    if names:
        return names[0]
    raise UnsupportedModelError(
        f"{type(model).__name__} has no nn.Embedding; pass layer= the module whose output holds the "
        "two operand embeddings (batch, 2, ...)."
    )
