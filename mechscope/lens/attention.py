"""Attention patterns per head, from our transformer, `nn.MultiheadAttention` or a Hugging Face model.

- A module that declares itself the pattern (`head_axis` and a (batch, head, query, key)
  output, e.g. the GrokkingTransformer's `blocks.i.attn.pattern`) is captured.
- `nn.MultiheadAttention` modules are asked for per-head weights (`need_weights=True,
  average_attn_weights=False`) for this one forward pass; their outputs are unchanged.
- A Hugging Face model is run with `output_attentions=True` (its attention must be the
  eager implementation, which returns them).

Example:
    >>> patterns = attention_patterns(model, x)
    >>> patterns["blocks.0.attn.pattern"].shape     # (batch, head, query, key)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture import capture, hooks
from mechscope.capture.modes import eval_mode, model_device
from mechscope.errors import UnsupportedModelError

__all__ = ["attention_patterns", "pattern_layers"]


def pattern_layers(model: nn.Module) -> list[str]:
    """Names of the modules whose output is an attention pattern (declared `head_axis` and named "pattern")."""
    return [name for name, module in model.named_modules()
            if name.rsplit(".", 1)[-1] == "pattern" and isinstance(getattr(module, "head_axis", None), int)]


def attention_patterns(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Every attention layer's pattern (batch, head, query, key) for inputs `x`, by layer name.

    Raises:
        UnsupportedModelError: the model has no attention this can read; the message says what
            it looked for.
    """
    device = model_device(model)
    with eval_mode(model), torch.no_grad():
        own = pattern_layers(model)
        if own:
            with capture(model, own) as store:
                model(x.to(device))
            return {name: store.act(name).cpu() for name in own}
        mha = [name for name, module in model.named_modules() if isinstance(module, nn.MultiheadAttention)]
        if mha:
            return _multihead(model, x.to(device), mha)
        if hasattr(getattr(model, "config", None), "output_attentions"):
            return _hugging_face(model, x.to(device))
    raise UnsupportedModelError(
        f"{type(model).__name__} has no attention pattern module, nn.MultiheadAttention or Hugging Face "
        "output_attentions; capture the layer that computes the softmax instead."
    )


def _multihead(model: nn.Module, x: Tensor, names: list[str]) -> dict[str, Tensor]:
    found: dict[str, Tensor] = {}

    def ask(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keep(name: str) -> Any:
        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            found[name] = output[1].detach().cpu()
        return hook

    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_pre_hook(ask, with_kwargs=True) for name in names]
    try:
        with hooks(model, {name: keep(name) for name in names}):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return found


def _hugging_face(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    out = model(x, output_attentions=True)
    attentions = out.get("attentions") if isinstance(out, Mapping) else getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise UnsupportedModelError(
            f"{type(model).__name__} returned no attentions; load it with attn_implementation='eager'."
        )
    return {f"attentions.{i}": a.detach().cpu() for i, a in enumerate(attentions)}
