"""Number the calls of each module within one forward pass of the root model.

A module that runs k times in one call of the root model makes k calls, named `name`,
`name:1`, ..., `name:{k-1}` (the syntax is documented in `mechscope.capture.names`). The
count restarts at every call of the root model (a forward pre-hook on it); a submodule run
directly, outside a call of the root model, is not numbered: each of its calls is call 0.

Every hook here is registered through `registered`, which removes the handles on exit, also
after an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from mechscope.capture.modes import eval_mode, model_device
from mechscope.errors import LayerNameError

__all__ = [
    "CALL_SEP",
    "CallCounter",
    "Registration",
    "RootHook",
    "call_name",
    "check_calls",
    "count_calls",
    "registered",
    "split_call",
    "trace_calls",
]

CALL_SEP = ":"
"""Separates a module name from its call index: `layer1.0.relu:1` is the second call."""

Registration = Callable[[], RemovableHandle]
"""A thunk that registers one hook and returns its handle."""

RootHook = Callable[[tuple[Any, ...], dict[str, Any], Any], None]
"""`fn(args, kwargs, output)`, run when a call of the root model returns."""


def call_name(module_name: str, index: int) -> str:
    """The name of call `index` of a module: `name` for call 0, `name:{index}` after it."""
    return module_name if index == 0 else f"{module_name}{CALL_SEP}{index}"


def split_call(name: str, modules: Collection[str]) -> tuple[str, int] | None:
    """Split a layer name into (module name, call index); None when it names no module.

    An exact module name wins (a module whose own name holds ':' stays reachable). The
    index is a plain non-negative integer: `relu:1`, not `relu:01` or `relu:-1`.
    """
    if name in modules:
        return name, 0
    base, sep, index = name.rpartition(CALL_SEP)
    if sep and base in modules and index.isascii() and index.isdigit() and str(int(index)) == index:
        return base, int(index)
    return None


def check_calls(model: nn.Module, wanted: Iterable[tuple[str, str, int]], counts: Mapping[str, int]) -> None:
    """Raise LayerNameError for a requested call that a forward pass did not make.

    Args:
        model: The root model (for the message).
        wanted: (layer name, module name, call index) of each requested call.
        counts: Calls of each module in the forward pass (`CallCounter.counts`).

    Raises:
        LayerNameError: `name:k` with k >= 1 and fewer than k + 1 calls of the module; the
            message says how many calls there were and names them.
    """
    for name, module_name, index in wanted:
        ran = counts.get(module_name, 0)
        if 0 < index and ran <= index:
            made = ", ".join(repr(call_name(module_name, k)) for k in range(ran)) or "none"
            raise LayerNameError(
                f"Layer {name!r} is call {index} of {module_name!r}, but {module_name!r} ran {ran} "
                f"time{'' if ran == 1 else 's'} in this forward pass of {type(model).__name__} (calls: {made}). "
                "Calls are numbered from 0 within each forward pass; list them with "
                "mechscope.layer_names(model, example)."
            )


@contextmanager
def registered(registrations: Iterable[Registration]) -> Iterator[None]:
    """Run each registration; remove every handle on exit, also after an exception."""
    handles: list[RemovableHandle] = []
    try:
        for register in registrations:
            handles.append(register())
        yield
    finally:
        for handle in handles:
            handle.remove()


class CallCounter:
    """Counts each module's calls during the current call of the root model.

    `registrations` gives the two root hooks: a pre-hook that restarts the count (and runs
    `on_start`), and a forward hook that runs `on_end(args, kwargs, output)` when the root
    call returns normally. The latter is registered with `always_call=True`, so the count
    also closes when the forward pass raises (then `on_end` is skipped).
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}  # module name -> calls so far in this root call
        self.depth = 0  # nesting of root calls; 0 outside any

    def next_index(self, module_name: str) -> int | None:
        """Number one call of `module_name`: 0, 1, ... in this root call; None outside one."""
        if not self.depth:
            return None
        index = self.counts.get(module_name, 0)
        self.counts[module_name] = index + 1
        return index

    def peek(self, module_name: str) -> int | None:
        """The index the next call of `module_name` will get (for pre-hooks); None outside a root call."""
        return self.counts.get(module_name, 0) if self.depth else None

    def registrations(
        self,
        model: nn.Module,
        *,
        on_start: Callable[[], None] | None = None,
        on_end: RootHook | None = None,
    ) -> list[Registration]:
        """The root pre-hook and forward hook that keep the count, for `registered`."""

        def start(_module: nn.Module, _args: tuple[Any, ...]) -> None:
            if self.depth == 0:
                self.counts = {}
                if on_start is not None:
                    on_start()
            self.depth += 1

        def end(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            self.depth = max(0, self.depth - 1)
            # On the exception path torch passes output=None: the pass did not complete.
            if self.depth == 0 and on_end is not None and output is not None:
                on_end(args, kwargs, output)

        return [
            lambda: model.register_forward_pre_hook(start, prepend=True),
            lambda: model.register_forward_hook(end, with_kwargs=True, always_call=True),
        ]


def trace_calls(model: nn.Module, example: Tensor, summarize: Callable[[Any], Any]) -> dict[str, list[Any]]:
    """Run one forward pass (eval mode, no autograd) and summarize every module call.

    Args:
        model: Any module.
        example: A valid input batch, shape (batch, ...).
        summarize: Maps what a call returned to what is kept of it (e.g. its shape); it
            runs inside the hook, so nothing of the output needs to outlive the call.

    Returns:
        Module name -> one summary per call, in call order; modules that did not run are absent.
    """
    modules = {name: module for name, module in model.named_modules() if name}
    counter = CallCounter()
    seen: dict[str, list[Any]] = {}

    def make(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            counter.next_index(name)
            seen.setdefault(name, []).append(summarize(output))

        return hook

    hooks = [_forward_hook(module, make(name)) for name, module in modules.items()]
    with eval_mode(model), torch.no_grad(), registered([*counter.registrations(model), *hooks]):
        model(example.to(model_device(model)))
    return seen


def count_calls(model: nn.Module, example: Tensor) -> dict[str, int]:
    """How many times each module runs in one forward pass of `example` (modules that did not run: absent)."""
    return {name: len(calls) for name, calls in trace_calls(model, example, lambda _output: None).items()}


def _forward_hook(module: nn.Module, fn: Callable[[nn.Module, tuple[Any, ...], Any], Any]) -> Registration:
    return lambda: module.register_forward_hook(fn)
