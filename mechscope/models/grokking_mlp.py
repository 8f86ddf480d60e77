"""GrokkingMLP: embed two residues, one ReLU layer, unembed — the classic grokking target.

A shared embedding table maps each operand of `(a, b)` to a vector; the two vectors are
concatenated (or summed) and pass through one ReLU hidden layer to `modulus` logits.
Trained full-batch with AdamW and strong weight decay on a fraction of all pairs, the
network first memorises the training pairs and much later generalises ("groks") by
building the Fourier algorithm of Nanda et al. (2023) and Gromov (2023).

Layer names (from `named_modules()`):
    embed     nn.Embedding(modulus, d_embed); output (batch, 2, d_embed), one row per operand
    hidden    Linear from the combined embedding to `width` units
    act       ReLU; its output is the neuron activation the Fourier tools read
    unembed   Linear from the `width` neurons to the `modulus` logits

References:
    Nanda et al. 2023, "Progress measures for grokking via mechanistic interpretability".
    Gromov 2023, "Grokking modular arithmetic".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from torch import Tensor, nn

from mechscope.errors import ConfigError, DataError
from mechscope.limits import MAX_MODULUS, MAX_WIDTH, check_limit
from mechscope.models.registry import register_model

__all__ = ["GrokkingMLP", "GrokkingMLPConfig", "Combine", "check_pairs"]

Combine = Literal["concat", "sum"]


@dataclass(frozen=True)
class GrokkingMLPConfig:
    """Shape of a GrokkingMLP.

    Example:
        >>> GrokkingMLPConfig(modulus=59, width=128).d_combined
        128
    """

    modulus: int = 59  # p: residues 0..p-1 in, p logits out
    d_embed: int = 64  # length of each operand's embedding vector
    width: int = 128  # ReLU units in the hidden layer
    combine: Combine = "concat"  # "concat" [E_a; E_b] (2*d_embed wide) or "sum" E_a + E_b (d_embed wide)

    def __post_init__(self) -> None:
        for name in ("modulus", "d_embed", "width"):
            value = getattr(self, name)
            low = 2 if name == "modulus" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}; e.g. {name}=59.")
            check_limit(name, value, MAX_MODULUS if name == "modulus" else MAX_WIDTH)
        if self.combine not in get_args(Combine):
            raise ConfigError(f"combine must be one of {get_args(Combine)!r}, got {self.combine!r}.")

    @property
    def d_combined(self) -> int:
        """Width of the combined embedding that feeds `hidden`."""
        return 2 * self.d_embed if self.combine == "concat" else self.d_embed


class GrokkingMLP(nn.Module):
    """Embed-combine-ReLU-unembed network for `(a op b) mod p` on integer pairs.

    The embedding is drawn from N(0, 1/d_embed), as in Nanda et al. (2023) (W_E = randn / sqrt(d));
    `hidden` and `unembed` use PyTorch's default Linear initialisation.

    Args:
        config: Architecture; see `GrokkingMLPConfig`.

    Example:
        >>> model = GrokkingMLP(GrokkingMLPConfig(modulus=7))
        >>> model(torch.tensor([[3, 5]])).shape
        torch.Size([1, 7])
    """

    def __init__(self, config: GrokkingMLPConfig) -> None:
        super().__init__()
        if not isinstance(config, GrokkingMLPConfig):
            raise ConfigError(
                f"GrokkingMLP needs a GrokkingMLPConfig, got {type(config).__name__}; "
                "build one with GrokkingMLPConfig(modulus=..., width=...)."
            )
        self.config = config
        self.embed = nn.Embedding(config.modulus, config.d_embed)
        self.hidden = nn.Linear(config.d_combined, config.width)
        self.act = nn.ReLU()
        self.unembed = nn.Linear(config.width, config.modulus)
        # Embedding rows ~ N(0, 1/d_embed), as Nanda et al. (2023) draw W_E = randn / sqrt(d_model),
        # instead of nn.Embedding's N(0, 1). Drawn last so `hidden` and `unembed` keep the draws they
        # would get without it. With it the default recipe cleans up to <= 8 key frequencies sooner.
        nn.init.normal_(self.embed.weight, mean=0.0, std=config.d_embed ** -0.5)

    def forward(self, x: Tensor) -> Tensor:
        """Return logits (batch, n_classes) for integer pairs x (batch, 2).

        Raises:
            DataError: If `x` is not (batch, 2) integers in 0..modulus-1.
        """
        check_pairs(x, self.config.modulus, type(self).__name__)
        return self.forward_embeddings(self.embed(x))

    def forward_embeddings(self, embeddings: Tensor) -> Tensor:
        """Return logits (batch, n_classes) from operand embeddings (batch, 2, d_embed).

        Useful for gradients with respect to the embeddings of `a` and `b`.
        """
        if self.config.combine == "concat":
            combined = embeddings.flatten(1)  # (batch, 2 * d_embed)
        else:
            combined = embeddings.sum(dim=1)  # (batch, d_embed)
        return self.unembed(self.act(self.hidden(combined)))


def check_pairs(x: Tensor, modulus: int, model: str) -> None:
    """Check that `x` holds integer pairs (batch, 2) of residues 0..modulus-1.

    Raises:
        DataError: the shape, dtype or range is wrong; the message names `model`.
    """
    if x.dim() != 2 or x.shape[1] != 2 or x.is_floating_point() or x.is_complex():
        raise DataError(
            f"{model} expects integer pairs of shape (batch, 2), got {x.dtype} {tuple(x.shape)}; "
            "build them with modular_data(modulus, encoding='pairs')."
        )
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= modulus):
        raise DataError(f"pair values must lie in 0..{modulus - 1}, got range {int(x.min())}..{int(x.max())}.")


register_model(GrokkingMLP, GrokkingMLPConfig)
