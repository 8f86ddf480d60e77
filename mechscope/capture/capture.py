"""Capture layer outputs, inputs and gradients of any nn.Module during a forward pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from mechscope.capture.hooks import first_tensor, hooks
from mechscope.capture.names import LayerSpec, resolve_layers
from mechscope.capture.store import ActivationStore

__all__ = ["capture"]


@contextmanager
def capture(
    model: nn.Module,
    layers: LayerSpec,
    *,
    inputs: bool = False,
    grads: bool = False,
    detach: bool = True,
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

    Yields:
        ActivationStore with `act(name)`, `input(name)`, `grad(name)`.

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

    with hooks(model, {name: make(name) for name in names}):
        yield store

