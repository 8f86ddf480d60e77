"""Ablate frequencies from a model's embedding and measure what accuracy survives.

Removing the key frequencies from the embedding of a grokked network should drop it to
chance, while removing every other frequency should leave it (nearly) perfect — the
embedding carries the answer only through the key frequencies. The model itself is
never modified: the ablated weight is swapped in with `torch.func.functional_call`.

Example:
    >>> model = gromov_grokking_mlp(31, [3, 7, 12], width=768)
    >>> accuracy_after_ablation(model, [3, 7, 12])              # remove them: chance is 1/31
    0.0332...
    >>> accuracy_after_ablation(model, [3, 7, 12], keep=True)   # keep only them
    1.0
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from mechscope.capture.modes import eval_mode
from mechscope.errors import ConfigError, LayerNameError, close_matches
from mechscope.fourier.basis import check_frequencies, frequency_projector, residues_last, restore_residues
from mechscope.fourier.losses import addition_labels
from mechscope.fourier.tables import (
    EmbeddingParameter,
    InputEncoding,
    all_pairs,
    embedding_parameter,
    encode_pairs,
    infer_encoding,
    infer_modulus,
)

__all__ = ["ablate_frequencies", "accuracy_after_ablation"]


def ablate_frequencies(
    weight: Tensor,
    frequencies: Iterable[int],
    *,
    axis: int = 0,
    modulus: int | None = None,
    keep: bool = False,
) -> Tensor:
    """Remove (or keep only) chosen frequencies of a tensor along its residue axis.

    Args:
        weight: Any tensor indexed by residues along `axis` (e.g. an embedding (p, d)).
        frequencies: Frequencies in 1..p//2.
        axis: Residue axis.
        modulus: p, when the axis holds several concatenated blocks of p.
        keep: False removes the frequencies; True keeps only them (and the constant term).

    Returns:
        A new tensor of the same shape and dtype.
    """
    blocks = residues_last(weight.detach().to(torch.float64), axis=axis, modulus=modulus)
    p = blocks.shape[-1]
    freqs = check_frequencies(frequencies, p)
    projector = frequency_projector(p, freqs, include_constant=keep, device=blocks.device)
    kept = blocks @ projector if keep else blocks - blocks @ projector
    return restore_residues(kept, weight, axis=axis).to(weight.dtype)


def accuracy_after_ablation(
    model: nn.Module,
    frequencies: Iterable[int],
    *,
    keep: bool = False,
    parameter: str | None = None,
    modulus: int | None = None,
    encoding: InputEncoding | None = None,
    pairs: Tensor | None = None,
) -> float:
    """Accuracy on (a + b) mod p after ablating frequencies from the embedding.

    Args:
        model: A modular-addition model (integer pairs or one-hot inputs).
        frequencies: Frequencies to remove (or, with keep=True, to keep).
        keep: Keep only `frequencies` (plus the constant) instead of removing them.
        parameter: Name of the embedding parameter; found by `embedding_parameter` if None.
            A named parameter's residue axis is the one whose length is p (or 2p).
        modulus: p; defaults to `model.config.modulus`.
        encoding: Input encoding; defaults to the model's.
        pairs: (batch, 2) pairs to score; None scores all p * p pairs.

    Returns:
        Fraction correct.

    Raises:
        LayerNameError: If `parameter` names no parameter of the model.
    """
    p = infer_modulus(model, modulus)
    enc = infer_encoding(model, encoding)
    where = embedding_parameter(model, p) if parameter is None else _named(model, parameter, p)
    params = dict(model.named_parameters())
    weight = params[where.name]
    ablated = ablate_frequencies(weight, frequencies, axis=where.axis, modulus=p, keep=keep)
    device = weight.device
    chosen = all_pairs(p, device=device) if pairs is None else pairs.to(device)
    labels = addition_labels(p).to(device)[chosen[:, 0], chosen[:, 1]]
    with eval_mode(model):
        with torch.no_grad():
            logits = functional_call(model, {where.name: ablated}, (encode_pairs(chosen, p, enc, weight.dtype),))
    return float((logits.argmax(dim=1) == labels).double().mean())


def _named(model: nn.Module, name: str, modulus: int) -> EmbeddingParameter:
    params = dict(model.named_parameters())
    if name not in params:
        hint = close_matches(name, params)
        did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
        raise LayerNameError(
            f"{type(model).__name__} has no parameter {name!r}.{did_you_mean} "
            f"Parameters: {', '.join(params)}."
        )
    shape = params[name].shape
    for axis, length in enumerate(shape):
        if length in (modulus, 2 * modulus):
            return EmbeddingParameter(name, axis, modulus)
    raise ConfigError(
        f"parameter {name!r} has shape {tuple(shape)}; none of its axes has length {modulus} or {2 * modulus}, "
        "so it does not embed residues."
    )
