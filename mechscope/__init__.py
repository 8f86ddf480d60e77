"""mechscope: train or load a network, record what happens inside it, and explain it."""

from mechscope._version import __version__
from mechscope.capture import ActivationStore, capture, describe_layers, get_layer, layer_names, patch, record
from mechscope.data import DataBundle, digits_data, function_data, load_data, modular_data
from mechscope.errors import MechscopeError
from mechscope.models import DigitCNN, ModularMLP, TinyReLU, TrainConfig, evaluate, train
from mechscope.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

__all__ = [
    "__version__",
    "ActivationStore",
    "Checkpoint",
    "DataBundle",
    "DigitCNN",
    "MechscopeError",
    "ModularMLP",
    "TinyReLU",
    "TrainConfig",
    "capture",
    "describe_layers",
    "digits_data",
    "evaluate",
    "function_data",
    "get_layer",
    "layer_names",
    "load_checkpoint",
    "load_data",
    "modular_data",
    "patch",
    "record",
    "save_checkpoint",
    "train",
]
