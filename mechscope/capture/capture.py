"""Capture layer outputs, inputs and gradients of any nn.Module during a forward pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from mechscope.capture.hooks import first_tensor, hooks
from mechscope.capture.names import LayerSpec, resolve_layers
from mechscope.capture.store import ActivationStore
from mechscope.data.dtypes import dtype_error
from mechscope.data.finite import check_finite as check_tensor_finite

__all__ = ["capture"]


@contextmanager
def capture(
    model: nn.Module,
    layers: LayerSpec,
    *,
    inputs: bool = False,
    grads: bool = False,
    detach: bool = True,
    check_finite: bool = True,
) -> Iterator[ActivationStore]:
    """Record what the named layers see and produce while the block runs.

    Every forward call of a layer appends one tensor; `store.act(name)` concatenates them
    along the batch dimension, so running several batches inside the block works.

    Args:
        model: Any module; layers are its dotted `named_modules()` paths.
        layers: One name or a list of names.
        inputs: Also record each layer's first positional input.
        grads: Also record the gradient of the loss at each layer output (call
            `.backward()` inside the block).
        detach: Store detached tensors (default). With False, the stored outputs keep their
            autograd graph so they can be optimised (feature visualisation).
        check_finite: Check the tensors passed to `model(...)` itself (not to a submodule
            called directly) for NaN/inf before each forward pass: one `isfinite` per
            call. False lets them through.

    Yields:
        ActivationStore with `act(name)`, `input(name)`, `grad(name)`.

    Raises:
        DataError: (from the forward pass inside the block) an input of `model` holds
            NaN/inf, or its dtype differs from the model's parameters and torch refused it
            (e.g. float64 inputs to a float32 model).

    Example:
        >>> with capture(model, ["conv1", "fc"]) as store:
        ...     logits = model(x)
        >>> store.act("conv1").shape
    """
    names = resolve_layers(model, layers)
    store = ActivationStore()

    def make(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def forward_hook(_module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            out = first_tensor(output, name)
            store._append("act", name, out.detach() if detach else out)
            if inputs and args:
                x = first_tensor(args[0], name)
                store._append("input", name, x.detach() if detach else x)
            if grads and out.requires_grad:
                index = store._reserve_grad(name)

                def grad_hook(grad: Tensor) -> None:
                    store._set_grad(name, index, grad.detach())

                out.register_hook(grad_hook)

        return forward_hook

    seen: list[Tensor] = []  # the latest input of model(...), to explain a dtype error

    def watch_inputs(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        named = _top_level_tensors(args, kwargs)
        if named:
            seen[:] = [named[0][1]]
        if check_finite:
            for label, tensor in named:
                check_tensor_finite(tensor, label, skip_with="check_finite=False to capture()")

    with hooks(model, {name: make(name) for name in names}), _root_pre_hook(model, watch_inputs):
        try:
            yield store
        except (RuntimeError, TypeError, ValueError) as err:
            clear = dtype_error(err, model, seen[0]) if seen else None
            if clear is None:
                raise
            raise clear from err


@contextmanager
def _root_pre_hook(
    model: nn.Module, fn: Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], None]
) -> Iterator[None]:
    """Run `fn(model, args, kwargs)` before every call of `model` itself; removed on exit."""
    handle = model.register_forward_pre_hook(fn, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _top_level_tensors(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Tensor]]:
    """The tensors passed to a forward call, positional first, each with the name a message uses."""
    named = [("inputs" if i == 0 else f"positional input {i}", a) for i, a in enumerate(args) if isinstance(a, Tensor)]
    named += [(f"input {key!r}", v) for key, v in kwargs.items() if isinstance(v, Tensor)]
    return named

