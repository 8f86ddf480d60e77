"""Target classes of an attribution: one class index per image, the predicted class by default."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mechscope.capture.outputs import OutputSpec, select_output
from mechscope.errors import DataError, UnsupportedModelError

__all__ = ["Target", "resolve_target", "target_scores"]

Target = int | Sequence[int] | Tensor | np.ndarray | None
"""A class index for every image (int), one per image (sequence, array or tensor of shape
(batch,)), or None for the class the model predicts."""


def resolve_target(target: Target, outputs: Any, *, output: OutputSpec = None) -> Tensor:
    """Turn `target` into class indices (batch,) on the logits' device and check their range.

    Args:
        target: See `Target`; None picks `logits.argmax(dim=1)`.
        outputs: What the model returned: logits (batch, n_classes), or a dict, tuple or
            `ModelOutput` holding them.
        output: Which of `outputs` holds the logits (`mechscope.capture.select_output`):
            None (auto: a tensor, or the "logits" entry), a key, an index or a callable.

    Returns:
        Long tensor (batch,).

    Raises:
        UnsupportedModelError: The explained output is ambiguous or not (batch, n_classes).
        DataError: A target is not an integer, has the wrong length, or is out of range.

    Example:
        >>> resolve_target(None, torch.tensor([[0.1, 2.0], [3.0, 0.0]]))
        tensor([1, 0])
    """
    logits = select_output(outputs, output)
    if logits.dim() != 2:
        raise UnsupportedModelError(
            f"Attribution needs logits of shape (batch, n_classes), one row of class scores per input; the explained "
            f"output has shape {tuple(logits.shape)}. Pass output= choosing them, e.g. "
            "output=lambda out: out.logits[:, -1] for the last position of a sequence model."
        )
    batch, n_classes = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1)
    if isinstance(target, bool):
        raise DataError(f"target must be a class index or one index per image; got the bool {target!r}.")
    if isinstance(target, (int, np.integer)):
        index = torch.full((batch,), int(target), dtype=torch.long, device=logits.device)
    else:
        index = _as_index_tensor(target, batch).to(logits.device)
    bad = (index < 0) | (index >= n_classes)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise DataError(
            f"target class {int(index[first])} (image {first}) is out of range for a model with {n_classes} "
            f"classes; use class indices 0..{n_classes - 1}, or target=None for the predicted class."
        )
    return index


def target_scores(outputs: Any, target: Target, *, output: OutputSpec = None) -> tuple[Tensor, Tensor]:
    """Pick each image's target logit.

    Args:
        outputs: What the model returned, with its autograd graph (see `resolve_target`).
        target: See `Target`.
        output: Which of `outputs` holds the logits (see `resolve_target`).

    Returns:
        (scores (batch,), class indices (batch,)); the scores keep the graph for backward.
    """
    logits = select_output(outputs, output)
    index = resolve_target(target, logits)
    return logits.gather(1, index[:, None]).squeeze(1), index


def _as_index_tensor(target: Sequence[int] | Tensor | np.ndarray, batch: int) -> Tensor:
    try:
        index = target if isinstance(target, Tensor) else torch.as_tensor(np.asarray(target), device="cpu")
    except (TypeError, ValueError) as err:
        raise DataError(f"target must be class indices; could not read {target!r} ({err}).") from err
    if index.dim() == 0:
        index = index.expand(batch)
    if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
        raise DataError(f"target must hold integer class indices; got dtype {index.dtype} ({target!r}).")
    if tuple(index.shape) != (batch,):
        raise DataError(
            f"target must give one class index per image, shape ({batch},); got shape {tuple(index.shape)}."
        )
    return index.long()
