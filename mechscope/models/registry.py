"""Model registry: class name -> (model class, config class), and seeded construction.

A checkpoint stores `model_spec(model)`, i.e. the class name plus
`dataclasses.asdict(model.config)`; `build_model(name, config_dict)` rebuilds the
model from it. JSON turns tuples into lists, so list values are turned back into
tuples wherever the config field is declared as a tuple.

Example:
    >>> name, cfg = model_spec(DigitCNN(DigitCNNConfig(gap=True)))
    >>> rebuilt = build_model(name, json.loads(json.dumps(cfg)))
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import torch
from torch import nn

from mechscope.errors import ConfigError, UnsupportedModelError, close_matches
from mechscope.limits import check_memory
from mechscope.models.digit_cnn import DigitCNN, DigitCNNConfig
from mechscope.models.modular_mlp import ModularMLP, ModularMLPConfig
from mechscope.models.tiny_relu import TinyReLU, TinyReLUConfig

__all__ = [
    "MODEL_REGISTRY",
    "register_model",
    "build_model",
    "build_seeded",
    "config_from_dict",
    "model_spec",
    "weights_bytes",
]

ModelT = TypeVar("ModelT", bound=nn.Module)
ConfigT = TypeVar("ConfigT")

MODEL_REGISTRY: dict[str, tuple[type[nn.Module], type[Any]]] = {}


def register_model(model_cls: type[nn.Module], config_cls: type[Any], *, name: str | None = None) -> str:
    """Make `model_cls` buildable by name from a config dict.

    Args:
        model_cls: An nn.Module whose constructor takes one `config_cls` instance.
        config_cls: A dataclass holding the architecture.
        name: Registry key; defaults to `model_cls.__name__`.

    Returns:
        The key it was registered under.

    Raises:
        ConfigError: If `config_cls` is not a dataclass or the name is taken by another class.
    """
    if not dataclasses.is_dataclass(config_cls) or not isinstance(config_cls, type):
        raise ConfigError(f"config_cls must be a dataclass type, got {config_cls!r}; decorate it with @dataclass.")
    key = model_cls.__name__ if name is None else name
    existing = MODEL_REGISTRY.get(key)
    if existing is not None and existing != (model_cls, config_cls):
        raise ConfigError(
            f"model name {key!r} is already registered for {existing[0].__module__}.{existing[0].__qualname__}; "
            "pass name=... to register under another name."
        )
    MODEL_REGISTRY[key] = (model_cls, config_cls)
    return key


def build_model(class_name: str, config_dict: Mapping[str, Any], *, seed: int | None = None) -> nn.Module:
    """Construct a registered model from its class name and config fields.

    Args:
        class_name: A key of MODEL_REGISTRY, e.g. "DigitCNN".
        config_dict: Config fields, e.g. from `dataclasses.asdict(config)` after a JSON round trip.
        seed: If given, initial weights are drawn under `torch.manual_seed(seed)` (see `build_seeded`).

    Returns:
        The new model, in training mode.

    Raises:
        ConfigError: If the name is unknown (the message lists the known names) or the
            dict has unknown fields or invalid values.
    """
    if class_name not in MODEL_REGISTRY:
        known = sorted(MODEL_REGISTRY)
        hint = close_matches(class_name, known)
        did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(
            f"unknown model class {class_name!r}.{did_you_mean} Known models: {', '.join(known)}; "
            "add others with mechscope.models.register_model(model_cls, config_cls)."
        )
    model_cls, config_cls = MODEL_REGISTRY[class_name]
    config = config_from_dict(config_cls, config_dict)
    if seed is None:
        check_memory(weights_bytes(model_cls, config), f"the weights of {model_cls.__name__}")
        return model_cls(config)
    return build_seeded(model_cls, config, seed)


def build_seeded(model_cls: type[ModelT], config: Any, seed: int) -> ModelT:
    """Construct `model_cls(config)` with initial weights drawn under `torch.manual_seed(seed)`.

    The global RNG state is saved and restored, so the call has no side effects:
    the same seed gives identical initial weights wherever it is called.

    Args:
        model_cls: Model class; its constructor takes `config`.
        config: The model's config instance.
        seed: Seed for the initial weights.

    Returns:
        The new model.

    Raises:
        LimitError: the weights would need more memory than the budget (checked first).
    """
    check_memory(weights_bytes(model_cls, config), f"the weights of {model_cls.__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_cls(config)


def weights_bytes(model_cls: type[nn.Module], config: Any) -> int:
    """Bytes of the parameters and buffers `model_cls(config)` would allocate, found without allocating.

    The model is built on PyTorch's meta device (shapes only); a model whose constructor
    cannot run there counts as 0 (it is then built, and checked, as usual).
    """
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            shell = model_cls(config)
    except Exception:  # noqa: BLE001 - any constructor that needs real tensors: no estimate
        return 0
    tensors = list(shell.parameters()) + list(shell.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def config_from_dict(config_cls: type[ConfigT], config_dict: Mapping[str, Any]) -> ConfigT:
    """Build `config_cls` from a dict, turning JSON lists back into tuples where a field is a tuple.

    Raises:
        ConfigError: If the dict has fields `config_cls` does not declare, or values its
            `__post_init__` rejects.
    """
    if not isinstance(config_dict, Mapping):
        raise ConfigError(f"config must be a dict of field values, got {type(config_dict).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(config_cls)}  # type: ignore[arg-type]
    unknown = sorted(set(config_dict) - set(fields))
    if unknown:
        raise ConfigError(
            f"{config_cls.__name__} has no field(s) {', '.join(map(repr, unknown))}; "
            f"valid fields: {', '.join(fields)}."
        )
    hints = typing.get_type_hints(config_cls)
    values = {
        key: tuple(value) if isinstance(value, list) and _is_tuple_type(hints.get(key)) else value
        for key, value in config_dict.items()
    }
    try:
        return config_cls(**values)
    except TypeError as exc:  # e.g. a field given a value of an unusable type
        raise ConfigError(f"cannot build {config_cls.__name__} from {dict(config_dict)!r}: {exc}") from exc


def model_spec(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """Return `(class_name, config_dict)` such that `build_model(*model_spec(m))` rebuilds `m`.

    Raises:
        UnsupportedModelError: If the model's class is not registered or has no dataclass `config`.
    """
    for name, (model_cls, config_cls) in MODEL_REGISTRY.items():
        if type(model) is model_cls:
            config = getattr(model, "config", None)
            if not isinstance(config, config_cls):
                raise UnsupportedModelError(
                    f"{name} instance has no {config_cls.__name__} in `.config` (got {type(config).__name__})."
                )
            return name, dataclasses.asdict(config)
    raise UnsupportedModelError(
        f"{type(model).__name__} is not registered; known models: {', '.join(sorted(MODEL_REGISTRY))}. "
        "Register it with mechscope.models.register_model(model_cls, config_cls)."
    )


def _is_tuple_type(hint: Any) -> bool:
    if hint is tuple or typing.get_origin(hint) is tuple:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_tuple_type(arg) for arg in typing.get_args(hint))
    return False


register_model(ModularMLP, ModularMLPConfig)
register_model(TinyReLU, TinyReLUConfig)
register_model(DigitCNN, DigitCNNConfig)
