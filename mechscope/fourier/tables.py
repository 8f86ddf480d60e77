"""Run a modular-arithmetic model on every pair (a, b) and find its embedding.

These adapters let the Fourier tools read any model that maps two residues to logits:
models taking integer pairs (batch, 2) — like GrokkingMLP — and models taking the
two one-hot vectors side by side (batch, 2p) — like ModularMLP. For a one-hot model the
first layer's weight plays the embedding: its columns for `a` and for `b` are two
blocks of p residues.

Example:
    >>> logits = logit_table(model)                  # (p, p, n_classes), logits[a, b]
    >>> acts = neuron_table(model, "act")            # (p, p, unit)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mechscope.capture import capture
from mechscope.capture.modes import eval_mode, model_device
from mechscope.errors import ConfigError, DataError, UnsupportedModelError

__all__ = [
    "InputEncoding",
    "EmbeddingParameter",
    "all_pairs",
    "encode_pairs",
    "infer_modulus",
    "infer_encoding",
    "logit_table",
    "neuron_table",
    "embedding_parameter",
    "embedding_matrix",
]

InputEncoding = Literal["pairs", "one_hot"]


@dataclass(frozen=True)
class EmbeddingParameter:
    """Where a model keeps its embedding of residues.

    Attributes:
        name: Parameter name from `named_parameters()`, e.g. "embed.weight".
        axis: The parameter's residue axis.
        modulus: p; the axis holds `length // p` blocks (2 for a one-hot first layer).
    """

    name: str
    axis: int
    modulus: int


def all_pairs(modulus: int, *, device: torch.device | None = None) -> Tensor:
    """Return every pair (a, b), shape (p * p, 2) int64, a-major: row `a * p + b` is (a, b)."""
    if isinstance(modulus, bool) or not isinstance(modulus, int) or modulus < 2:
        raise ConfigError(f"modulus must be an integer >= 2, got {modulus!r}.")
    r = torch.arange(modulus, device=device)
    return torch.cartesian_prod(r, r)


def encode_pairs(pairs: Tensor, modulus: int, encoding: InputEncoding, dtype: torch.dtype = torch.float32) -> Tensor:
    """Return model inputs for integer pairs: the pairs themselves or two one-hots (batch, 2p)."""
    if encoding == "pairs":
        return pairs
    if encoding == "one_hot":
        return torch.cat([F.one_hot(pairs[:, 0], modulus), F.one_hot(pairs[:, 1], modulus)], dim=1).to(dtype)
    raise ConfigError(f"encoding must be 'pairs' or 'one_hot', got {encoding!r}.")


def infer_modulus(model: nn.Module, modulus: int | None = None) -> int:
    """Return `modulus`, else `model.config.modulus`.

    Raises:
        ConfigError: If neither is available.
    """
    if modulus is not None:
        return int(modulus)
    value = getattr(getattr(model, "config", None), "modulus", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"cannot tell the modulus of {type(model).__name__}; pass modulus=p.")


def infer_encoding(model: nn.Module, encoding: InputEncoding | None = None) -> InputEncoding:
    """Return `encoding`, else `model.config.encoding` when it is known, else "pairs"."""
    if encoding is not None:
        if encoding not in ("pairs", "one_hot"):
            raise ConfigError(f"encoding must be 'pairs' or 'one_hot', got {encoding!r}.")
        return encoding
    value = getattr(getattr(model, "config", None), "encoding", None)
    return "one_hot" if value == "one_hot" else "pairs"


def logit_table(
    model: nn.Module,
    modulus: int | None = None,
    *,
    encoding: InputEncoding | None = None,
    batch_size: int = 16384,
) -> Tensor:
    """Return the model's logits on every pair, shape (p, p, n_classes), `[a, b, c]`.

    Args:
        model: Maps inputs (batch, 2) int pairs or (batch, 2p) one-hots to logits (batch, n_classes).
        modulus: p; defaults to `model.config.modulus`.
        encoding: "pairs" or "one_hot"; defaults to `model.config.encoding`, else "pairs".
        batch_size: Pairs per forward pass.

    Returns:
        Detached float tensor on the CPU. The model's train/eval mode is restored.

    Raises:
        DataError: If the model does not return (batch, n_classes) logits.
    """
    p = infer_modulus(model, modulus)
    enc = infer_encoding(model, encoding)
    pairs = all_pairs(p, device=model_device(model))
    outs = []
    with eval_mode(model), torch.no_grad():
        for first in range(0, pairs.shape[0], batch_size):
            out = model(encode_pairs(pairs[first : first + batch_size], p, enc, _dtype_of(model)))
            if not isinstance(out, Tensor) or out.dim() != 2:
                raise DataError(
                    f"{type(model).__name__} returned {getattr(out, 'shape', type(out).__name__)}; the Fourier tools "
                    "need logits of shape (batch, n_classes)."
                )
            outs.append(out.detach().float().cpu())
    logits = torch.cat(outs)
    return logits.reshape(p, p, logits.shape[-1])


def neuron_table(
    model: nn.Module,
    layer: str,
    modulus: int | None = None,
    *,
    encoding: InputEncoding | None = None,
) -> Tensor:
    """Return a layer's output on every pair, shape (p, p, unit).

    A sequence layer (batch, pos, unit), such as a transformer's MLP neurons, is read at the
    last position, where the answer is predicted; other trailing dims are flattened.

    Args:
        model: As for `logit_table`.
        layer: Dotted layer name, e.g. "act" (GrokkingMLP) or "hidden.0" (ModularMLP).
        modulus: p; defaults to `model.config.modulus`.
        encoding: Input encoding; see `logit_table`.

    Raises:
        LayerNameError: If `layer` is not a module of the model (with close matches).
    """
    p = infer_modulus(model, modulus)
    enc = infer_encoding(model, encoding)
    x = encode_pairs(all_pairs(p, device=model_device(model)), p, enc, _dtype_of(model))
    with eval_mode(model), torch.no_grad(), capture(model, [layer]) as store:
        model(x)
    acts = store.act(layer).float().cpu()
    if acts.dim() == 3:
        acts = acts[:, -1]
    return acts.reshape(p, p, -1)


def embedding_parameter(model: nn.Module, modulus: int | None = None) -> EmbeddingParameter:
    """Find the parameter that embeds residues.

    The first nn.Embedding with p rows wins; failing that, the first nn.Linear whose input
    is 2p wide (one-hot a and b side by side) — its weight's columns are two blocks of p.

    Raises:
        UnsupportedModelError: If no such layer exists; name one with `parameter=`.
    """
    p = infer_modulus(model, modulus)
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) and module.num_embeddings == p:
            return EmbeddingParameter(f"{name}.weight" if name else "weight", 0, p)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.in_features == 2 * p:
            return EmbeddingParameter(f"{name}.weight" if name else "weight", 1, p)
    raise UnsupportedModelError(
        f"{type(model).__name__} has no nn.Embedding with {p} rows and no nn.Linear reading {2 * p} one-hot inputs; "
        "pass the embedding tensor itself to frequency_spectrum, or parameter='name' with axis= its residue axis."
    )


def embedding_matrix(model: nn.Module, modulus: int | None = None) -> Tensor:
    """Return the model's embedding as (p, d): one row per residue (a- and b-blocks side by side)."""
    where = embedding_parameter(model, modulus)
    weight = dict(model.named_parameters())[where.name].detach().float().cpu()
    moved = weight.movedim(where.axis, -1)  # (..., n_blocks * p)
    blocks = moved.reshape(-1, moved.shape[-1] // where.modulus, where.modulus)  # (rest, n_blocks, p)
    return blocks.permute(2, 1, 0).reshape(where.modulus, -1)


def _dtype_of(model: nn.Module) -> torch.dtype:
    for param in model.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32

