"""Resolve dotted layer names (`named_modules()` paths) to modules, with helpful errors.

A layer name is a module's dotted path from `named_modules()` (`features.3`, `fc2`),
optionally followed by `:k` to name one call of a module that runs several times in one
forward pass of the model (torchvision's BasicBlock calls its `relu` twice): `name` is the
first call, `name:1` the second, `name:2` the third, and so on; calls are counted afresh at
every call of the model. `capture`, `record` and `describe_layers` give each call its own
name and rows, never one tensor with the calls' rows stacked; `layer_names(model, example)`
lists the calls (`layer1.0.relu`, then `layer1.0.relu:1`). `patch` applies a plain name to
every call of the module (an edit of the module) and `name:k` to call k only. Asking for a
call that did not happen (`name:5` of a module called twice) raises `LayerNameError` saying
how many calls there were. A submodule run directly, outside a call of the model, is not
numbered: all its calls are call 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from mechscope.capture.calls import CALL_SEP, call_name, count_calls, split_call
from mechscope.errors import LayerNameError, close_matches

__all__ = ["layer_names", "get_layer", "resolve_layers", "resolve_calls", "split_layer", "LayerSpec"]

LayerSpec = str | Sequence[str]
"""One layer name or several."""

_HOW_TO_LIST = "List all names with mechscope.layer_names(model) or `mechscope layers CHECKPOINT`."


def layer_names(model: nn.Module, example: Tensor | None = None) -> list[str]:
    """Return the dotted path of every submodule, in registration order (the root is left out).

    Args:
        model: Any module.
        example: A valid input batch. When given, one forward pass (eval mode, no autograd)
            counts the calls, and a module that ran k times is followed by `name:1` ...
            `name:{k-1}` in call order.

    Example:
        >>> layer_names(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
        ['0', '1']
        >>> [n for n in layer_names(resnet, x) if n.startswith("layer1.0.relu")]  # one ReLU, two calls
        ['layer1.0.relu', 'layer1.0.relu:1']
    """
    names = [name for name, _ in model.named_modules() if name]
    if example is None:
        return names
    counts = count_calls(model, example)
    return [call_name(name, k) for name in names for k in range(max(1, counts.get(name, 0)))]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the submodule called `name` (for `name:k`, the module `name`).

    Raises:
        LayerNameError: `name` is not a submodule path (with an optional `:k` call index);
            the message lists close matches.
    """
    modules = _modules(model)
    return modules[_split(model, modules, name)[0]]


def split_layer(model: nn.Module, name: str) -> tuple[str, int]:
    """Split a layer name into (module name, call index): `'layer1.0.relu:1'` -> `('layer1.0.relu', 1)`.

    Raises:
        LayerNameError: `name` names no submodule; the message lists close matches.
    """
    return _split(model, _modules(model), name)


def resolve_layers(model: nn.Module, layers: LayerSpec) -> list[str]:
    """Validate one or several layer names (`name` or `name:k`) and return them as a list without duplicates.

    Raises:
        LayerNameError: a name is unknown, or no name was given.
    """
    return list(resolve_calls(model, layers))


def resolve_calls(model: nn.Module, layers: LayerSpec) -> dict[str, tuple[str, int]]:
    """Validate layer names and split each: name -> (module name, call index), without duplicates.

    Raises:
        LayerNameError: a name is unknown, or no name was given.
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise LayerNameError(f"No layer given. {_HOW_TO_LIST}")
    modules = _modules(model)
    return dict([(name, _split(model, modules, name)) for name in names])


def _modules(model: nn.Module) -> dict[str, nn.Module]:
    return {name: module for name, module in model.named_modules() if name}


def _split(model: nn.Module, modules: dict[str, nn.Module], name: str) -> tuple[str, int]:
    if not isinstance(name, str):
        raise LayerNameError(f"Layer names are strings such as 'conv1' or 'features.3'; got {name!r}. {_HOW_TO_LIST}")
    found = split_call(name, modules) if name else None
    if found is not None:
        return found
    base, sep, index = name.rpartition(CALL_SEP)
    if sep and base in modules:
        raise LayerNameError(
            f"Layer {name!r}: after {CALL_SEP!r} comes a call index, a whole number such as {base + ':1'!r} for "
            f"the second call of {base!r}; got {index!r}."
        )
    names = [n for n in modules if n]
    hint = close_matches(name, names)
    did_you_mean = f" Did you mean {', '.join(repr(h) for h in hint)}?" if hint else ""
    preview = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    raise LayerNameError(
        f"Unknown layer {name!r} in {type(model).__name__} (layers: {preview}).{did_you_mean} {_HOW_TO_LIST}"
    )

