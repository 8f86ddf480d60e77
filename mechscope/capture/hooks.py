"""Register forward hooks through one context manager that always removes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from mechscope.capture.calls import CallCounter, Registration, check_calls, registered
from mechscope.capture.names import resolve_calls
from mechscope.errors import LayerNameError, MechscopeError

__all__ = ["HookPoint", "HookFn", "hooks", "patch", "first_tensor", "replace_first_tensor"]


@dataclass(frozen=True)
class HookPoint:
    """Where a hook fired: the layer name it was registered for and its module."""

    name: str
    module: nn.Module


HookFn = Callable[..., Tensor | None]
"""`fn(tensor, *, hook: HookPoint) -> Tensor | None`; a returned tensor replaces the layer output."""

ForwardHook = Callable[[nn.Module, tuple[Any, ...], Any], Any]
"""A raw `register_forward_hook` function: `fn(module, args, output)`."""

PreHook = Callable[[nn.Module, tuple[Any, ...]], Any]
"""A raw `register_forward_pre_hook` function: `fn(module, args)`."""


def first_tensor(value: Any, name: str) -> Tensor:
    """Return `value` if it is a tensor, else the first tensor of a tuple/list or mapping output.

    A mapping is a dict or a Hugging Face `ModelOutput` (its set fields, in order).

    Raises:
        MechscopeError: `value` holds no tensor at its first level.
    """
    found = _find_first(value)
    if found is None:
        raise MechscopeError(
            f"Layer {name!r} returned {type(value).__name__}, not a tensor; capture a submodule that returns a tensor."
        )
    return found[1]


@contextmanager
def hooks(
    model: nn.Module,
    forward: Mapping[str, ForwardHook],
    *,
    pre: Mapping[str, PreHook] | None = None,
) -> Iterator[None]:
    """Attach raw `register_forward_hook` (and `register_forward_pre_hook`) functions by module name.

    All names are validated before any hook is registered, and handles are removed in
    `finally`, so an exception in the forward pass never leaves a hook behind. A raw hook
    fires at every call of its module, so the names are plain module names, not `name:k`
    (`capture` and `patch` understand calls).

    Raises:
        LayerNameError: a name is unknown or names one call (`name:k`).
    """
    pre = pre or {}
    modules = _plain_modules(model, [*forward, *pre])
    with registered(
        [_register_forward(modules[name], fn) for name, fn in forward.items()]
        + [_register_pre(modules[name], fn) for name, fn in pre.items()]
    ):
        yield


@contextmanager
def patch(model: nn.Module, fns: Mapping[str, HookFn]) -> Iterator[None]:
    """Run `fn(output, hook=HookPoint)` on each named layer's output; a returned tensor replaces it.

    A plain module name patches every call of the module; `name:k` patches call k of each
    forward pass of `model` only (`name:0` the first), and a forward pass without that call
    raises LayerNameError. Outputs that are tuples, lists or mappings (a Hugging Face
    `ModelOutput`) have their first tensor passed and replaced.

    Example:
        >>> with patch(model, {"relu1": lambda t, hook: t * 0}):
        ...     ablated_logits = model(x)
        >>> with patch(resnet, {"layer1.0.relu:1": lambda t, hook: t * 0}):  # the block output only
        ...     ablated_logits = resnet(x)
    """
    plan: dict[str, list[tuple[int | None, str, HookFn]]] = {}
    numbered: list[tuple[str, str, int]] = []  # the `name:k` entries: checked at the end of each forward pass
    for name, (module_name, index) in (resolve_calls(model, list(fns)) if fns else {}).items():
        plan.setdefault(module_name, []).append((None if module_name == name else index, name, fns[name]))
        if module_name != name:
            numbered.append((name, module_name, index))
    counter = CallCounter()

    def make(module_name: str, entries: list[tuple[int | None, str, HookFn]]) -> ForwardHook:
        def forward_hook(module: nn.Module, _inputs: tuple[Any, ...], output: Any) -> Any:
            index = (counter.next_index(module_name) or 0) if numbered else 0
            result, changed = output, False
            for call, name, fn in entries:
                if call is not None and call != index:
                    continue
                new = fn(first_tensor(result, name), hook=HookPoint(name, module))
                if new is not None:
                    result, changed = replace_first_tensor(result, new), True
            return result if changed else None

        return forward_hook

    modules = dict(model.named_modules())
    registrations = [_register_forward(modules[name], make(name, entries)) for name, entries in plan.items()]
    def end(_args: tuple[Any, ...], _kwargs: dict[str, Any], _output: Any) -> None:
        check_calls(model, numbered, counter.counts)

    with registered((counter.registrations(model, on_end=end) if numbered else []) + registrations):
        yield


def _find_first(value: Any) -> tuple[Any, Tensor] | None:
    """(position or key, tensor) of the first tensor in `value` or its first level; None if there is none."""
    if isinstance(value, Tensor):
        return None, value
    if isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            if isinstance(item, Tensor):
                return i, item
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Tensor):
                return key, item
    return None


def replace_first_tensor(value: Any, new: Tensor) -> Any:
    """`value` with its first tensor (itself, or the first in a tuple/list/mapping) replaced by `new`."""
    found = _find_first(value)
    if found is None or isinstance(value, Tensor):
        return new
    where = found[0]
    if isinstance(value, MutableMapping):
        value[where] = new  # the module built this mapping for this call; a ModelOutput keeps its attribute in step
        return value
    if isinstance(value, Mapping):
        return {**value, where: new}
    items = list(value)
    items[where] = new
    if isinstance(value, list):
        return items
    if hasattr(value, "_fields"):  # a named tuple takes its fields one by one
        return type(value)(*items)
    return type(value)(items)


def _plain_modules(model: nn.Module, names: list[str]) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    for name, (module_name, _) in (resolve_calls(model, names) if names else {}).items():
        if module_name != name:
            raise LayerNameError(
                f"hooks() attaches to modules, and {name!r} names one call of {module_name!r}; pass {module_name!r}, "
                "or use capture()/patch(), which understand calls."
            )
    return {name: modules[name] for name in names}


def _register_forward(module: nn.Module, fn: ForwardHook) -> Registration:
    return lambda: module.register_forward_hook(fn)


def _register_pre(module: nn.Module, fn: PreHook) -> Registration:
    return lambda: module.register_forward_pre_hook(fn)
