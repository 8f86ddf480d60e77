"""Logit lens: what the residual stream predicts at each depth (nostalgebraist 2020).

Every named residual-stream layer is read out through the model's final norm and
unembedding, as if the network stopped there: per layer and position, the answer token's
logit, probability and rank (0 = the top prediction).

Example:
    >>> lens = logit_lens(model, x, ["blocks.0.resid_pre", "blocks.0.resid_mid", "blocks.0.resid_post"],
    ...                   unembed="unembed", answer=labels)
    >>> lens.rank[:, 0, -1]         # rank of the answer at the last position, layer by layer
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from mechscope.capture import capture
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.names import resolve_layers
from mechscope.errors import DataError
from mechscope.lens.unembed import readout

__all__ = ["LogitLens", "logit_lens"]


@dataclass(frozen=True)
class LogitLens:
    """Per (layer, example, position): the answer's logit, probability, rank, and the top token."""

    json_extra: ClassVar[tuple[str, ...]] = ("mean_rank", "mean_probability")

    layers: list[str]
    answer: Tensor  # (batch, pos) the token whose rank is read
    logit: Tensor  # (layer, batch, pos)
    probability: Tensor  # (layer, batch, pos)
    rank: Tensor  # (layer, batch, pos), 0 = top prediction
    top: Tensor  # (layer, batch, pos) the top token

    @property
    def mean_rank(self) -> list[list[float]]:
        """(layer, pos) mean rank over the examples."""
        return self.rank.double().mean(dim=1).tolist()

    @property
    def mean_probability(self) -> list[list[float]]:
        """(layer, pos) mean probability of the answer over the examples."""
        return self.probability.double().mean(dim=1).tolist()


def logit_lens(
    model: nn.Module,
    x: Tensor,
    layers: str | Sequence[str],
    *,
    unembed: str,
    final_norm: str | None = None,
    answer: Tensor | None = None,
) -> LogitLens:
    """Read `layers` (each (batch, pos, d_model), or (batch, d_model)) out through the unembedding.

    Args:
        model: A residual-stream model.
        x: Inputs (batch, ...).
        layers: Residual-stream layers, shallow to deep.
        unembed: Name of the unembedding module (e.g. "unembed", "lm_head").
        final_norm: Name of the final norm applied before it, if any (e.g. "transformer.ln_f").
        answer: Token per example (batch,) or per example and position (batch, pos); None
            takes the model's own top prediction read from the last layer.

    Returns:
        LogitLens.

    Raises:
        DataError: a layer's output is not (batch, [pos,] d_model) for the unembedding, or
            `answer` has the wrong shape.
    """
    names = resolve_layers(model, layers)
    out = readout(model, unembed, final_norm)
    with eval_mode(model), torch.no_grad():
        with capture(model, names) as store:
            model(x.to(model_device(model)))
        logits = torch.stack([_read(out, store.act(name), name) for name in names])  # (layer, batch, pos, vocab)
    target = _answer(answer, logits)
    chosen = logits.gather(-1, target.expand(len(names), -1, -1)[..., None])[..., 0]
    probs = logits.double().softmax(dim=-1)
    return LogitLens(
        layers=names,
        answer=target.cpu(),
        logit=chosen.cpu(),
        probability=probs.gather(-1, target.expand(len(names), -1, -1)[..., None])[..., 0].cpu(),
        rank=(logits > chosen[..., None]).sum(dim=-1).cpu(),
        top=logits.argmax(dim=-1).cpu(),
    )


def _read(out: object, act: Tensor, name: str) -> Tensor:
    if act.dim() == 2:
        act = act[:, None]
    if act.dim() != 3:
        raise DataError(f"{name!r} outputs {tuple(act.shape)}; the logit lens reads (batch, pos, d_model) layers.")
    try:
        return out(act)  # type: ignore[operator]
    except RuntimeError as err:
        raise DataError(f"{name!r} outputs {tuple(act.shape)}, which the unembedding cannot read: {err}") from err


def _answer(answer: Tensor | None, logits: Tensor) -> Tensor:
    _, batch, pos, vocab = logits.shape
    if answer is None:
        return logits[-1].argmax(dim=-1)
    target = torch.as_tensor(answer).long().to(logits.device)
    if target.dim() == 1 and target.shape[0] == batch:
        target = target[:, None].expand(batch, pos)
    if target.shape != (batch, pos):
        raise DataError(f"answer must be (batch,) = ({batch},) or (batch, pos) = ({batch}, {pos}), got {tuple(target.shape)}.")
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= vocab):
        raise DataError(f"answer tokens must lie in 0..{vocab - 1}.")
    return target
