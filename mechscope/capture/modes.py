"""Put a model in eval mode for a block and restore its train/eval flag afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the block with `model.eval()`; the previous mode comes back even after an exception."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
