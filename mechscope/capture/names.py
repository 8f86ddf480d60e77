"""Resolve dotted layer names (`named_modules()` paths) to modules, with helpful errors."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from mechscope.errors import LayerNameError, close_matches

__all__ = ["layer_names", "get_layer", "resolve_layers", "LayerSpec"]

LayerSpec = str | Sequence[str]
"""One layer name or several."""

_HOW_TO_LIST = "List all names with mechscope.layer_names(model) or `mechscope layers CHECKPOINT`."


def layer_names(model: nn.Module) -> list[str]:
    """Return the dotted path of every submodule, in registration order (the root is left out).

    Example:
        >>> layer_names(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
        ['0', '1']
    """
    return [name for name, _ in model.named_modules() if name]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the submodule called `name`.

    Raises:
        LayerNameError: `name` is not a submodule path; the message lists close matches.
    """
    if not isinstance(name, str):
        raise LayerNameError(f"Layer names are strings such as 'conv1' or 'features.3'; got {name!r}. {_HOW_TO_LIST}")
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    names = [n for n in modules if n]
    hint = close_matches(name, names)
    did_you_mean = f" Did you mean {', '.join(repr(h) for h in hint)}?" if hint else ""
    preview = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    raise LayerNameError(
        f"Unknown layer {name!r} in {type(model).__name__} (layers: {preview}).{did_you_mean} {_HOW_TO_LIST}"
    )


def resolve_layers(model: nn.Module, layers: LayerSpec) -> list[str]:
    """Validate one or several layer names and return them as a list without duplicates.

    Raises:
        LayerNameError: a name is unknown, or no name was given.
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise LayerNameError(f"No layer given. {_HOW_TO_LIST}")
    for name in names:
        get_layer(model, name)
    return list(dict.fromkeys(names))
