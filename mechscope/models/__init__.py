"""Target models (ModularMLP, GrokkingMLP, GrokkingTransformer, TinyReLU, DigitCNN) with their configs, seeded construction and training.

The rest lives in the submodules: `registry` (model classes by name), `factory` (models built
by user code), `weights` (weight files), `checkpoint` (saving and loading), `train` (`TrainResult`,
`evaluate`, `default_train_config`, augmentation), `grokking_train` (full-batch grokking runs) and `device`.
"""

from mechscope.models.digit_cnn import DigitCNN, DigitCNNConfig
from mechscope.models.grokking_mlp import GrokkingMLP, GrokkingMLPConfig
from mechscope.models.grokking_transformer import GrokkingTransformer, GrokkingTransformerConfig
from mechscope.models.modular_mlp import ModularMLP, ModularMLPConfig
from mechscope.models.registry import build_seeded, register_model
from mechscope.models.tiny_relu import TinyReLU, TinyReLUConfig
from mechscope.models.train import TrainConfig, train

__all__ = [
    "DigitCNN",
    "DigitCNNConfig",
    "GrokkingMLP",
    "GrokkingMLPConfig",
    "GrokkingTransformer",
    "GrokkingTransformerConfig",
    "ModularMLP",
    "ModularMLPConfig",
    "TinyReLU",
    "TinyReLUConfig",
    "TrainConfig",
    "build_seeded",
    "register_model",
    "train",
]
