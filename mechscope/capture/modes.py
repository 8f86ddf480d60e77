"""Put a model in eval mode for a block and restore its train/eval flag afterwards; find its device."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

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


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a parameter-free model)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")
