"""Target models (ModularMLP, TinyReLU, DigitCNN), their registry, models built by user code, weight files and the training loop."""

from __future__ import annotations

from mechscope.models.digit_cnn import DigitCNN, DigitCNNConfig
from mechscope.models.factory import ModelFactory, code_trusted, parse_model_args
from mechscope.models.grokking_mlp import GrokkingMLP, GrokkingMLPConfig
from mechscope.models.modular_mlp import ModularMLP, ModularMLPConfig
from mechscope.models.registry import (
    MODEL_REGISTRY,
    build_model,
    build_seeded,
    config_from_dict,
    model_spec,
    register_model,
)
from mechscope.models.tiny_relu import TinyReLU, TinyReLUConfig
from mechscope.models.train import TrainConfig, TrainResult, default_train_config, evaluate, random_shift, train
from mechscope.models.weights import load_weights

__all__ = [
    "DigitCNN",
    "DigitCNNConfig",
    "GrokkingMLP",
    "GrokkingMLPConfig",
    "ModularMLP",
    "ModularMLPConfig",
    "TinyReLU",
    "TinyReLUConfig",
    "MODEL_REGISTRY",
    "build_model",
    "build_seeded",
    "config_from_dict",
    "model_spec",
    "register_model",
    "ModelFactory",
    "code_trusted",
    "parse_model_args",
    "load_weights",
    "TrainConfig",
    "TrainResult",
    "default_train_config",
    "evaluate",
    "random_shift",
    "train",
]
