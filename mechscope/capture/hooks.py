"""Register forward hooks through one context manager that always removes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from mechscope.capture.names import get_layer
from mechscope.errors import MechscopeError

__all__ = ["HookPoint", "HookFn", "hooks", "patch", "first_tensor"]


@dataclass(frozen=True)
class HookPoint:
    """Where a hook fired: the layer's dotted name and its module."""

    name: str
    module: nn.Module


HookFn = Callable[..., Tensor | None]
"""`fn(tensor, *, hook: HookPoint) -> Tensor | None`; a returned tensor replaces the layer output."""


def first_tensor(value: Any, name: str) -> Tensor:
    """Return `value` if it is a tensor, else the first tensor of a tuple/list output."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, Tensor):
                return item
    raise MechscopeError(
        f"Layer {name!r} returned {type(value).__name__}, not a tensor; capture a submodule that returns a tensor."
    )


def _replace_first_tensor(value: Any, new: Tensor) -> Any:
    if isinstance(value, Tensor):
        return new
    items = list(value)
    for i, item in enumerate(items):
        if isinstance(item, Tensor):
            items[i] = new
            break
    return type(value)(items) if isinstance(value, tuple) else items


@contextmanager
def hooks(
    model: nn.Module,
    forward: Mapping[str, Callable[[nn.Module, tuple[Any, ...], Any], Any]],
) -> Iterator[None]:
    """Attach raw `module.register_forward_hook` functions by layer name; remove them on exit.

    All names are validated before any hook is registered, and handles are removed in
    `finally`, so an exception in the forward pass never leaves a hook behind.
    """
    modules = {name: get_layer(model, name) for name in forward}
    handles = []
    try:
        for name, fn in forward.items():
            handles.append(modules[name].register_forward_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def patch(model: nn.Module, fns: Mapping[str, HookFn]) -> Iterator[None]:
    """Run `fn(output, hook=HookPoint)` on each named layer's output; a returned tensor replaces it.

    Example:
        >>> with patch(model, {"relu1": lambda t, hook: t * 0}):
        ...     ablated_logits = model(x)
    """

    def make(name: str, fn: HookFn) -> Callable[[nn.Module, tuple[Any, ...], Any], Any]:
        def forward_hook(module: nn.Module, _inputs: tuple[Any, ...], output: Any) -> Any:
            new = fn(first_tensor(output, name), hook=HookPoint(name, module))
            if new is None:
                return None
            return _replace_first_tensor(output, new)

        return forward_hook

    with hooks(model, {name: make(name, fn) for name, fn in fns.items()}):
        yield
