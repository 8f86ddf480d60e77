"""What a patching experiment measures: a number per example from the model's output.

A metric maps the explained output (`mechscope.capture.select_output`: logits
(batch, n_classes), or (batch, pos, vocab) of a language model, read at `position`) and the
index of the example each row belongs to, to one value per row. Rows are examples repeated
for many patched cells in one forward pass, so per-example answers are looked up by that
index.

Example:
    >>> metric = logit_diff(answer=torch.tensor([3]), wrong=torch.tensor([5]))
    >>> metric(torch.tensor([[0.0, 0, 0, 2.0, 0, 0.5]]), torch.tensor([0]))
    tensor([1.5000])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from mechscope.errors import ConfigError, DataError

__all__ = ["Metric", "MetricName", "logit_diff", "probability", "loss"]

MetricName = Literal["logit-diff", "prob", "loss"]
"""The built-in metrics by name (the CLI's `--metric`)."""

MetricFn = Callable[[Tensor, Tensor], Tensor]
"""`fn(logits (rows, n_classes), example (rows,)) -> (rows,)`."""


@dataclass(frozen=True)
class Metric:
    """A named per-example measure of the logits; `Metric("name", fn)` makes a custom one.

    Attributes:
        name: Shown in results and figures, e.g. "logit diff 3 - 5".
        fn: `fn(logits, example) -> values`, logits (rows, n_classes), example (rows,) indices
            of the examples the rows belong to.
        position: Sequence position read when the output is (batch, pos, vocab).
    """

    name: str
    fn: MetricFn = field(repr=False)
    position: int = -1

    def __call__(self, output: Tensor, example: Tensor) -> Tensor:
        """Values (rows,) of the output (rows, n_classes) or (rows, pos, vocab)."""
        if output.dim() == 3:
            output = output[:, self.position]
        if output.dim() != 2:
            raise DataError(
                f"metric {self.name!r} reads logits (batch, n_classes) or (batch, pos, vocab), got "
                f"{tuple(output.shape)}; select the logits with output=."
            )
        values = self.fn(output, example)
        if values.shape != (output.shape[0],):
            raise ConfigError(
                f"metric {self.name!r} must return one value per row ({output.shape[0]},), got {tuple(values.shape)}."
            )
        return values


def logit_diff(answer: Tensor | Sequence[int] | int, wrong: Tensor | Sequence[int] | int, *,
               position: int = -1) -> Metric:
    """Logit of the right answer minus the logit of a wrong one, per example."""
    right, other = _indices(answer, "answer"), _indices(wrong, "wrong")
    return Metric(f"logit diff {_label(right, 'answer')} - {_label(other, 'wrong')}",
                  lambda logits, ex: _pick(logits, right, ex) - _pick(logits, other, ex), position)


def probability(answer: Tensor | Sequence[int] | int, *, position: int = -1) -> Metric:
    """Softmax probability of the answer, per example."""
    right = _indices(answer, "answer")
    return Metric(f"p({_label(right, 'answer')})", lambda logits, ex: _pick(logits.float().softmax(dim=1), right, ex), position)


def loss(labels: Tensor | Sequence[int] | int, *, position: int = -1) -> Metric:
    """Cross-entropy of the labels, per example (lower is better)."""
    right = _indices(labels, "labels")
    return Metric("loss", lambda logits, ex: F.cross_entropy(
        logits.float(), right.to(logits.device)[_rows(right, ex)], reduction="none"), position)


def _indices(value: Tensor | Sequence[int] | int, what: str) -> Tensor:
    out = torch.as_tensor(value).long().reshape(-1)
    if out.numel() == 0:
        raise ConfigError(f"{what} needs at least one class index.")
    return out


def _rows(index: Tensor, example: Tensor) -> Tensor:
    return (example.to(index.device) if index.numel() > 1 else torch.zeros_like(example, device=index.device))


def _pick(table: Tensor, index: Tensor, example: Tensor) -> Tensor:
    chosen = index.to(table.device)[_rows(index, example).to(table.device)]
    if int(chosen.max()) >= table.shape[1] or int(chosen.min()) < 0:
        raise DataError(f"class index {int(chosen.max())} is out of range for {table.shape[1]} logits.")
    return table.gather(1, chosen[:, None])[:, 0]


def _label(index: Tensor, many: str) -> str:
    return str(int(index[0])) if index.numel() == 1 else many
