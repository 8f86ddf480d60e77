"""GrokkingTransformer: the one-layer transformer of modular-addition grokking.

The input is the sequence `a b =`; the logits of `(a + b) mod p` are read at the `=`
position. Residues have learned token embeddings (`embed`, p rows, so the Fourier tools find
them as they find the MLP's), `=` has its own learned vector, positions have learned
embeddings. Each block is attention (causal, `n_heads` heads) then a ReLU MLP, both adding
into the residual stream; LayerNorm is off by default, as in Nanda et al. (2023).
`attention_rate` r mixes the attention pattern with uniform attention over the positions a
query may see, as in Zhong et al. (2023): r = 1 is standard attention, r = 0 constant.

Named hook points (module paths; capture, patch and ablate read them like any layer):
    embed                    residue embeddings of a and b              (batch, 2, d_model)
    pos_embed                position embeddings of a b =               (batch, pos, d_model)
    blocks.i.resid_pre       residual stream before block i             (batch, pos, d_model)
    blocks.i.attn.scores     attention scores per head                  (batch, head, pos, pos)
    blocks.i.attn.pattern    attention pattern per head (after mixing)  (batch, head, pos, pos)
    blocks.i.attn.z          value mix per head                         (batch, pos, head, d_head)
    blocks.i.attn.heads      each head's output in the residual stream  (batch, pos, head, d_model)
    blocks.i.attn            the attention output (sum of heads + bias) (batch, pos, d_model)
    blocks.i.resid_mid       residual stream between attention and MLP  (batch, pos, d_model)
    blocks.i.mlp.hidden      MLP pre-activations                        (batch, pos, d_mlp)
    blocks.i.mlp.act         MLP neurons (ReLU)                         (batch, pos, d_mlp)
    blocks.i.mlp             the MLP output                             (batch, pos, d_model)
    blocks.i.resid_post      residual stream after block i              (batch, pos, d_model)
    ln_final                 final LayerNorm (Identity when off)        (batch, pos, d_model)
    unembed                  logits at every position                   (batch, pos, p)
The model returns the `=` position's logits, (batch, p).

References:
    Nanda et al. 2023, "Progress measures for grokking via mechanistic interpretability".
    Zhong et al. 2023, "The Clock and the Pizza: Two Stories in Mechanistic Explanation of
    Neural Networks".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mechscope.errors import ConfigError
from mechscope.limits import MAX_LAYERS, MAX_MODULUS, MAX_WIDTH, check_limit
from mechscope.models.grokking_mlp import check_pairs
from mechscope.models.registry import register_model

__all__ = ["GrokkingTransformer", "GrokkingTransformerConfig", "HeadPoint"]

N_CTX = 3  # a, b, =


@dataclass(frozen=True)
class GrokkingTransformerConfig:
    """Shape of a GrokkingTransformer.

    Example:
        >>> GrokkingTransformerConfig(modulus=59).d_head
        32
    """

    modulus: int = 59  # p: residues 0..p-1, p logits out
    d_model: int = 128  # width of the residual stream
    n_heads: int = 4  # attention heads per block
    d_mlp: int = 512  # MLP neurons per block
    n_layers: int = 1  # attention + MLP blocks
    attention_rate: float = 1.0  # 1 = softmax attention, 0 = uniform attention (Zhong et al.)
    layer_norm: bool = False  # LayerNorm before attention, MLP and unembed (off in the papers)

    def __post_init__(self) -> None:
        limits = {"modulus": (2, MAX_MODULUS), "d_model": (1, MAX_WIDTH), "n_heads": (1, MAX_WIDTH),
                  "d_mlp": (1, MAX_WIDTH), "n_layers": (1, MAX_LAYERS)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}.")
            check_limit(name, value, high)
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads}); e.g. d_model=128, n_heads=4."
            )
        rate = self.attention_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ConfigError(f"attention_rate must be a number in [0, 1], got {rate!r}; 1 = softmax, 0 = uniform.")
        if not isinstance(self.layer_norm, bool):
            raise ConfigError(f"layer_norm must be true or false, got {self.layer_norm!r}.")

    @property
    def d_head(self) -> int:
        """Width of one head's queries, keys and values."""
        return self.d_model // self.n_heads


class HeadPoint(nn.Identity):
    """An identity module to hook whose output has a head axis and a (query) position axis.

    Patching (`along="head"`/`"pos"`), attention plots and direct logit attribution read the axes.
    """

    def __init__(self, *, head_axis: int, pos_axis: int) -> None:
        super().__init__()
        self.head_axis, self.pos_axis = head_axis, pos_axis


class Attention(nn.Module):
    """Causal multi-head attention whose pattern is mixed with uniform attention.

    Hook points: `scores`, `pattern`, `z`, `heads` (see the module docstring).
    """

    def __init__(self, config: GrokkingTransformerConfig) -> None:
        super().__init__()
        self.n_heads, self.d_head, self.rate = config.n_heads, config.d_head, float(config.attention_rate)
        d = config.d_model
        self.query = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.output = nn.Parameter(torch.empty(config.n_heads, config.d_head, d))  # W_O per head
        nn.init.normal_(self.output, std=1.0 / math.sqrt(d))
        self.scores, self.pattern = HeadPoint(head_axis=1, pos_axis=2), HeadPoint(head_axis=1, pos_axis=2)
        self.z, self.heads = HeadPoint(head_axis=2, pos_axis=1), HeadPoint(head_axis=2, pos_axis=1)
        mask = torch.ones(N_CTX, N_CTX, dtype=torch.bool).tril()
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("uniform", mask / mask.sum(dim=1, keepdim=True), persistent=False)
        self.mask: Tensor
        self.uniform: Tensor

    def forward(self, x: Tensor) -> Tensor:  # (batch, pos, d_model)
        batch, pos, _ = x.shape
        shape = (batch, pos, self.n_heads, self.d_head)
        q, k, v = (proj(x).view(shape) for proj in (self.query, self.key, self.value))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(self.d_head)
        scores = self.scores(scores.masked_fill(~self.mask[:pos, :pos], torch.finfo(scores.dtype).min))
        pattern = self.rate * scores.softmax(dim=-1) + (1.0 - self.rate) * self.uniform[:pos, :pos]
        pattern = self.pattern(pattern)  # (batch, head, pos, pos)
        z = self.z(torch.einsum("bhqk,bkhd->bqhd", pattern, v))  # (batch, pos, head, d_head)
        heads = self.heads(torch.einsum("bqhd,hdm->bqhm", z, self.output))  # (batch, pos, head, d_model)
        return heads.sum(dim=2)


class MLP(nn.Module):
    """ReLU MLP: `hidden` -> `act` -> `out`."""

    def __init__(self, config: GrokkingTransformerConfig) -> None:
        super().__init__()
        self.hidden = nn.Linear(config.d_model, config.d_mlp)
        self.act = nn.ReLU()
        self.out = nn.Linear(config.d_mlp, config.d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.act(self.hidden(x)))


class Block(nn.Module):
    """Attention then MLP, each read from (optionally normalised) and added to the residual stream."""

    def __init__(self, config: GrokkingTransformerConfig) -> None:
        super().__init__()
        norm = (lambda: nn.LayerNorm(config.d_model)) if config.layer_norm else nn.Identity
        self.resid_pre, self.resid_mid, self.resid_post = nn.Identity(), nn.Identity(), nn.Identity()
        self.ln_attn, self.ln_mlp = norm(), norm()
        self.attn = Attention(config)
        self.mlp = MLP(config)

    def forward(self, x: Tensor) -> Tensor:
        x = self.resid_pre(x)
        x = self.resid_mid(x + self.attn(self.ln_attn(x)))
        return self.resid_post(x + self.mlp(self.ln_mlp(x)))


class PositionEmbedding(nn.Module):
    """Learned position embeddings (pos, d_model), returned for every sequence in the batch."""

    def __init__(self, config: GrokkingTransformerConfig) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(N_CTX, config.d_model) / math.sqrt(config.d_model))

    def forward(self, tokens: Tensor) -> Tensor:  # (batch, pos, d_model)
        return self.weight[: tokens.shape[1]].expand(tokens.shape[0], -1, -1)


class GrokkingTransformer(nn.Module):
    """Transformer on `a b =` predicting `(a + b) mod p`; input integer pairs (batch, 2).

    Args:
        config: Architecture; see `GrokkingTransformerConfig`.

    Example:
        >>> model = GrokkingTransformer(GrokkingTransformerConfig(modulus=7, d_model=16, n_heads=2, d_mlp=32))
        >>> model(torch.tensor([[3, 5]])).shape
        torch.Size([1, 7])
    """

    def __init__(self, config: GrokkingTransformerConfig) -> None:
        super().__init__()
        if not isinstance(config, GrokkingTransformerConfig):
            raise ConfigError(
                f"GrokkingTransformer needs a GrokkingTransformerConfig, got {type(config).__name__}; "
                "build one with GrokkingTransformerConfig(modulus=...)."
            )
        self.config = config
        d = config.d_model
        self.embed = nn.Embedding(config.modulus, d)
        nn.init.normal_(self.embed.weight, std=1.0 / math.sqrt(d))
        self.equals = nn.Parameter(torch.randn(d) / math.sqrt(d))  # the "=" token's embedding
        self.pos_embed = PositionEmbedding(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_final = nn.LayerNorm(d) if config.layer_norm else nn.Identity()
        self.unembed = nn.Linear(d, config.modulus, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Return the logits (batch, p) at the `=` position for integer pairs x (batch, 2).

        Raises:
            DataError: If `x` is not (batch, 2) integers in 0..modulus-1.
        """
        check_pairs(x, self.config.modulus, type(self).__name__)
        return self.forward_embeddings(self.embed(x))

    def forward_embeddings(self, embeddings: Tensor) -> Tensor:
        """Return the `=` position's logits (batch, p) from operand embeddings (batch, 2, d_model)."""
        equals = self.equals.expand(embeddings.shape[0], 1, -1)
        tokens = torch.cat([embeddings, equals], dim=1)  # (batch, pos, d_model)
        resid = tokens + self.pos_embed(tokens)
        for block in self.blocks:
            resid = block(resid)
        return self.unembed(self.ln_final(resid))[:, -1]


register_model(GrokkingTransformer, GrokkingTransformerConfig)
