"""Direct logit attribution: a logit split into what each component wrote into the residual stream.

In a residual-stream model the final residual is the sum of the embeddings and of every
attention head's and MLP's output. Through the unembedding (and a final LayerNorm, linear
once its measured scale is fixed) each term adds its own share to the answer's logit, or to
the difference of two logits. The shares of the named components, plus the norm's and
unembedding's biases, sum to the model's logit exactly when the components cover the
whole stream (the remainder is reported so one can check).

Example:
    >>> dla = direct_logit_attribution(model, x, ["blocks.0.resid_pre", "blocks.0.attn.heads", "blocks.0.mlp"],
    ...                                unembed="unembed", answer=labels)
    >>> dla.labels              # ['blocks.0.resid_pre', 'blocks.0.attn.heads.0', ..., 'blocks.0.mlp', 'bias']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mechscope.capture import capture, get_layer
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.names import resolve_layers, split_layer
from mechscope.errors import DataError, UnsupportedModelError
from mechscope.lens.unembed import Readout, readout

__all__ = ["LogitAttribution", "direct_logit_attribution"]


@dataclass(frozen=True)
class LogitAttribution:
    """Per-example shares of a logit (difference) by component."""

    labels: list[str]  # component names; heads as "layer.h", and "bias" for the norm/unembedding biases
    contributions: Tensor  # (batch, component)
    logit: Tensor  # (batch,) the model's logit (difference) at the position
    remainder: Tensor  # (batch,) logit - sum of contributions: 0 when the components cover the stream

    @property
    def mean(self) -> dict[str, float]:
        """Mean share of each component over the examples."""
        return dict(zip(self.labels, self.contributions.double().mean(dim=0).tolist(), strict=True))


def direct_logit_attribution(
    model: nn.Module,
    x: Tensor,
    components: str | Sequence[str],
    *,
    unembed: str,
    answer: Tensor | int,
    wrong: Tensor | int | None = None,
    final_norm: str | None = None,
    position: int = -1,
) -> LogitAttribution:
    """Split the answer's logit (minus the wrong token's) at `position` among `components`.

    Args:
        model: A residual-stream model.
        x: Inputs (batch, ...).
        components: Layers whose outputs add into the residual stream, each (batch, pos,
            d_model), or (batch, pos, head, d_model) for per-head outputs (a module that
            declares `head_axis`, such as the GrokkingTransformer's `attn.heads`).
        unembed: Name of the linear unembedding.
        answer: Token per example (batch,) or one for all.
        wrong: Token subtracted (a logit difference), or None for the answer's logit alone.
        final_norm: Name of a final LayerNorm, whose scale is measured on this input.
        position: Sequence position read.

    Returns:
        LogitAttribution.

    Raises:
        UnsupportedModelError: the unembedding is not linear, or the final norm is not a LayerNorm.
    """
    names = resolve_layers(model, components)
    out = readout(model, unembed, final_norm)
    norm_input = [final_norm] if out.norm is not None and final_norm is not None else []
    with eval_mode(model), torch.no_grad():
        with capture(model, names) as store, capture(model, [unembed, *norm_input], inputs=True) as final:
            model(x.to(model_device(model)))
        direction = _direction(out, answer, wrong, x.shape[0])
        resid_final = final.input(norm_input[0] if norm_input else unembed)[:, position]
        scale, gain = _norm_scale(out, resid_final)
        labels, shares = [], []
        for name in names:
            act = _at_position(store.act(name), position, name)
            for label, part in _split_heads(model, name, act):
                centred = part - part.mean(dim=-1, keepdim=True) if out.norm is not None else part
                shares.append(((centred / scale) * gain * direction).sum(dim=-1))
                labels.append(label)
        logits = out(resid_final)
        bias = _bias_share(out, direction)
        if out.bias is not None:
            bias = bias + _logit(out.bias.expand(x.shape[0], -1), answer, wrong)
        labels.append("bias")
        shares.append(bias.expand(x.shape[0]))
    contributions = torch.stack(shares, dim=1).cpu()
    logit = _logit(logits, answer, wrong).cpu()
    return LogitAttribution(labels=labels, contributions=contributions, logit=logit,
                            remainder=logit - contributions.sum(dim=1))


def _direction(out: Readout, answer: Tensor | int, wrong: Tensor | int | None, batch: int) -> Tensor:
    weight = out.weight
    right = torch.as_tensor(answer, device=weight.device).long().reshape(-1).expand(batch)
    direction = weight[right]
    if wrong is not None:
        direction = direction - weight[torch.as_tensor(wrong, device=weight.device).long().reshape(-1).expand(batch)]
    return direction  # (batch, d_model)


def _norm_scale(out: Readout, resid: Tensor) -> tuple[Tensor, Tensor | float]:
    if out.norm is None:
        return torch.ones(resid.shape[0], 1, device=resid.device, dtype=resid.dtype), 1.0
    if not isinstance(out.norm, nn.LayerNorm):
        raise UnsupportedModelError(
            f"final norm {out.norm_name!r} is a {type(out.norm).__name__}; the direct attribution folds an nn.LayerNorm only."
        )
    var = resid.var(dim=-1, keepdim=True, unbiased=False)
    gain = out.norm.weight if out.norm.weight is not None else 1.0
    return (var + out.norm.eps).sqrt(), gain


def _bias_share(out: Readout, direction: Tensor) -> Tensor:
    share = torch.zeros(direction.shape[0], device=direction.device, dtype=direction.dtype)
    norm_bias = getattr(out.norm, "bias", None)
    if isinstance(norm_bias, Tensor):
        share = share + (norm_bias * direction).sum(dim=-1)
    return share


def _logit(logits: Tensor, answer: Tensor | int, wrong: Tensor | int | None) -> Tensor:
    batch = logits.shape[0]
    right = torch.as_tensor(answer, device=logits.device).long().reshape(-1).expand(batch)
    value = logits.gather(1, right[:, None])[:, 0]
    if wrong is not None:
        other = torch.as_tensor(wrong, device=logits.device).long().reshape(-1).expand(batch)
        value = value - logits.gather(1, other[:, None])[:, 0]
    return value


def _at_position(act: Tensor, position: int, name: str) -> Tensor:
    if act.dim() < 3:
        raise DataError(f"{name!r} outputs {tuple(act.shape)}; components must be (batch, pos, ..., d_model).")
    return act[:, position]


def _split_heads(model: nn.Module, name: str, act: Tensor) -> list[tuple[str, Tensor]]:
    head_axis = getattr(get_layer(model, split_layer(model, name)[0]), "head_axis", None)
    if act.dim() == 2:
        return [(name, act)]
    if act.dim() == 3 and isinstance(head_axis, int):
        return [(f"{name}.{h}", act[:, h]) for h in range(act.shape[1])]
    raise DataError(f"{name!r} outputs (batch, pos, {', '.join(map(str, act.shape[1:]))}); expected (batch, pos, d_model).")
