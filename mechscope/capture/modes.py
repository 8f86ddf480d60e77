"""Put a model in eval mode for a block and restore its train/eval flag afterwards; find its device.

`model_device` is defined beside the training loop (`mechscope.models.device`), which sits
below this layer, and is re-exported here for the analyses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from mechscope.models.device import model_device

__all__ = ["eval_mode", "model_device"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the block with `model.eval()`; the previous mode comes back even after an exception."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
