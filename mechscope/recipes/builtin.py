"""The built-in models of the seed articles: build data and model, train, and save a checkpoint.

Each `train_*` function is what `mechscope train <model>` and `mechscope tour` run.

Example:
    >>> result = train_modular_mlp(out="runs/modular-mlp", modulus=2)
    >>> result.metrics["test_accuracy"]
    1.0
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mechscope.data import DataBundle, digits_data, function_data, modular_data
from mechscope.data.functions import FunctionName
from mechscope.data.modular import Operation
from mechscope.models import (
    DigitCNN,
    DigitCNNConfig,
    ModularMLP,
    ModularMLPConfig,
    TinyReLU,
    TinyReLUConfig,
    build_seeded,
    train,
)
from mechscope.models.train import default_train_config
from mechscope.devices import resolve_device
from mechscope.models.checkpoint import check_checkpoint_out, save_checkpoint
from mechscope.models.modular_mlp import Activation
from mechscope.models.train import TrainConfig

__all__ = ["TrainedModel", "train_modular_mlp", "train_tiny_relu", "train_digit_cnn", "fit_and_save"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class TrainedModel:
    """A trained built-in model and where its checkpoint lies."""

    name: str  # built-in model name, e.g. "modular-mlp"
    checkpoint: Path  # checkpoint folder
    metrics: dict[str, float]  # final train/test scores
    epochs_run: int  # epochs until the stop
    seconds: float  # wall time of the optimisation

    def __json__(self) -> dict[str, Any]:
        """The `mechscope model train` summary: metrics flattened beside `checkpoint`, the name under "target"."""
        return {"target": self.name, "checkpoint": self.checkpoint, **self.metrics,
                "epochs_run": self.epochs_run, "seconds": self.seconds}


def fit_and_save(
    name: str,
    model: nn.Module,
    data: DataBundle,
    out: PathLike,
    *,
    config: TrainConfig | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> TrainedModel:
    """Train `model` on `device` on `data` with the documented defaults and write its checkpoint to `out`."""
    check_checkpoint_out(out)  # before any work: never train only to find `out` unwritable
    config = default_train_config(model, data) if config is None else config
    result = train(model.to(resolve_device(device)), data, config, progress=progress)
    path = save_checkpoint(
        out,
        model,
        data_spec=data.spec,
        metrics=result.metrics,
        history=result.history,
        extra={"target": name, "train_config": asdict(config), "seconds": result.seconds},
    )
    return TrainedModel(name, path, result.metrics, result.epochs_run, result.seconds)


def train_modular_mlp(
    out: PathLike,
    *,
    modulus: int = 2,
    operation: Operation = "+",
    n_layers: int = 7,
    hidden: int = 5,
    activation: Activation = "tanh",
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> TrainedModel:
    """Seed 000's binary-operation learner on 10,000 random training and 10,000 test pairs."""
    check_checkpoint_out(out)
    config = ModularMLPConfig(modulus=modulus, n_layers=n_layers, hidden=hidden, activation=activation)
    data = modular_data(modulus, operation, n_train=10_000, n_test=10_000, seed=seed)
    model = build_seeded(ModularMLP, config, seed)
    return fit_and_save("modular-mlp", model, data, out, progress=progress, device=device)


def train_tiny_relu(
    out: PathLike,
    *,
    function: FunctionName = "sum",
    n_inputs: int = 5,
    hidden: int = 1,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> TrainedModel:
    """Seed 002's Dense(k, relu) -> Dense(1) on sum, weighted sum + constant, or product (in logs)."""
    check_checkpoint_out(out)
    data = function_data(function, n_inputs=n_inputs, seed=seed)
    model = build_seeded(TinyReLU, TinyReLUConfig(n_inputs=n_inputs, hidden=hidden), seed)
    return fit_and_save("tiny-relu", model, data, out, progress=progress, device=device)


def train_digit_cnn(
    out: PathLike,
    *,
    data: str = "mnist5k",
    gap: bool = False,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> TrainedModel:
    """A small CNN on digits: "digits" (8x8), "mnist5k" (28x28) or "idx:PATH" (full MNIST files)."""
    check_checkpoint_out(out)
    bundle = digits_data(data, seed=seed)
    config = DigitCNNConfig(in_channels=bundle.input_shape[0], image_size=bundle.input_shape[-1], gap=gap)
    model = build_seeded(DigitCNN, config, seed)
    return fit_and_save("digit-cnn", model, bundle, out, progress=progress, device=device)
