"""The readout of a residual-stream model: its final norm and unembedding, applied to any layer."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from mechscope.capture import get_layer
from mechscope.capture.layers import block_layers
from mechscope.errors import UnsupportedModelError

__all__ = ["Readout", "readout", "find_readout", "residual_layers", "stream_components"]


@dataclass(frozen=True)
class Readout:
    """The final norm (or None) and the unembedding of a model, by name and module."""

    unembed_name: str
    unembed: nn.Module
    norm_name: str | None
    norm: nn.Module | None

    def __call__(self, resid: Tensor) -> Tensor:
        """Logits (..., vocab) of residual vectors (..., d_model)."""
        return self.unembed(resid if self.norm is None else self.norm(resid))

    @property
    def weight(self) -> Tensor:
        """Unembedding matrix (vocab, d_model)."""
        weight = getattr(self.unembed, "weight", None)
        if not isinstance(weight, Tensor) or weight.dim() != 2:
            raise UnsupportedModelError(
                f"{self.unembed_name!r} ({type(self.unembed).__name__}) has no (vocab, d_model) weight; a direct "
                "logit attribution needs a linear unembedding."
            )
        return weight

    @property
    def bias(self) -> Tensor | None:
        """Unembedding bias (vocab,), if any."""
        bias = getattr(self.unembed, "bias", None)
        return bias if isinstance(bias, Tensor) else None


def readout(model: nn.Module, unembed: str, final_norm: str | None = None) -> Readout:
    """Look up the unembedding and final norm by layer name (e.g. "lm_head", "transformer.ln_f").

    Raises:
        LayerNameError: a name is unknown.
        UnsupportedModelError: the final norm is not LayerNorm-like (an nn.LayerNorm, RMSNorm or
            Identity) — its scale could not be read for an attribution.
    """
    norm = None if final_norm is None else get_layer(model, final_norm)
    if isinstance(norm, nn.Identity):
        norm = None
    return Readout(unembed, get_layer(model, unembed), final_norm, norm)


def find_readout(model: nn.Module) -> Readout:
    """Guess the unembedding and final norm: the GrokkingTransformer's `unembed`/`ln_final`, a Hugging Face
    model's output embeddings and the last norm module registered before them.

    Raises:
        UnsupportedModelError: no unembedding is found; name it (`unembed=`, `--unembed`).
    """
    names = {id(module): name for name, module in model.named_modules()}
    get_output = getattr(model, "get_output_embeddings", None)
    head = get_output() if callable(get_output) else None
    unembed = names.get(id(head)) if isinstance(head, nn.Module) else ("unembed" if "unembed" in dict(
        model.named_modules()) else None)
    if unembed is None:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no recognisable unembedding; name it (--unembed NAME, and --final-norm NAME)."
        )
    order = [name for name, _ in model.named_modules()]
    norms = [name for name, module in model.named_modules()
             if order.index(name) < order.index(unembed) and _is_norm(name, module)
             and not any(part.isdigit() for part in name.split("."))]  # not a norm inside a block
    return readout(model, unembed, norms[-1] if norms else None)


def residual_layers(model: nn.Module) -> list[str]:
    """The residual stream between blocks: `blocks.0.resid_pre` and every `blocks.i.resid_post` of our
    transformer, else the outputs of the blocks of the longest ModuleList of same-class modules."""
    names = [name for name, _ in model.named_modules()]
    ours = [n for n in names if n.endswith(".resid_post")]
    if ours:
        first = [n for n in names if n.endswith(".resid_pre")][:1]
        return first + ours
    blocks = block_layers(model)
    if not blocks:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no list of blocks; name the residual-stream layers (--layer)."
        )
    return blocks


def stream_components(model: nn.Module) -> list[str]:
    """What writes into the residual stream of a GrokkingTransformer-style model: the embeddings
    (`blocks.0.resid_pre`), every block's `attn.heads` and `mlp`; [] for other models.

    Together they cover the stream, so a direct logit attribution over them sums to the logit.
    """
    names = [name for name, _ in model.named_modules()]
    parts = [n for n in names if n.endswith(".attn.heads") or (n.startswith("blocks.") and n.endswith(".mlp"))]
    first = [n for n in names if n.endswith(".resid_pre")][:1]
    return first + parts if parts and first else []


def _is_norm(name: str, module: nn.Module) -> bool:
    leaf = name.rsplit(".", 1)[-1].lower()
    return isinstance(module, (nn.LayerNorm, nn.RMSNorm)) or (
        "norm" in type(module).__name__.lower() and ("ln" in leaf or "norm" in leaf))
