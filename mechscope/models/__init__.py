"""Target models (ModularMLP, GrokkingMLP, TinyReLU, DigitCNN) with their configs, seeded construction and training.

The rest lives in the submodules: `registry` (model classes by name), `factory` (models built
by user code), `weights` (weight files), `checkpoint` (saving and loading), `train` (`TrainResult`,
augmentation), `grokking_train` (full-batch grokking runs) and `device`.
"""

from mechscope.models.digit_cnn import DigitCNN, DigitCNNConfig
from mechscope.models.grokking_mlp import GrokkingMLP, GrokkingMLPConfig
from mechscope.models.modular_mlp import ModularMLP, ModularMLPConfig
from mechscope.models.registry import build_seeded, register_model
from mechscope.models.tiny_relu import TinyReLU, TinyReLUConfig
from mechscope.models.train import TrainConfig, default_train_config, evaluate, train

__all__ = [
    "DigitCNN",
    "DigitCNNConfig",
    "GrokkingMLP",
    "GrokkingMLPConfig",
    "ModularMLP",
    "ModularMLPConfig",
    "TinyReLU",
    "TinyReLUConfig",
    "TrainConfig",
    "build_seeded",
    "default_train_config",
    "evaluate",
    "register_model",
    "train",
]
