"""Find the device a model runs on: analyses follow it rather than picking one themselves."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["model_device"]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither).

    Example:
        >>> model_device(nn.Linear(2, 3))
        device(type='cpu')
    """
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")
