"""Capture layer outputs, inputs and gradients of any nn.Module during a forward pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from mechscope.capture.calls import CallCounter, check_calls, registered
from mechscope.capture.guard import Guard
from mechscope.capture.hooks import ForwardHook, PreHook, first_tensor, hooks, replace_first_tensor
from mechscope.capture.names import LayerSpec, resolve_calls
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

    What is stored is the value the layer returned at that moment: an in-place op later in
    the forward pass (`nn.ReLU(inplace=True)`, `out += identity`) does not change it (see
    `mechscope.capture.guard` for how this stays cheap). A module that runs k times in one
    forward pass makes k calls, `name`, `name:1`, ... (`mechscope.capture.names`); ask for
    each call you want. Every forward pass of `model` appends one tensor per name, and
    `store.act(name)` concatenates them along the batch dimension, so running several
    batches inside the block works.

    Args:
        model: Any module; layers are its dotted `named_modules()` paths.
        layers: One name or a list of names, each `name` or `name:k` (call k).
        inputs: Also record each layer's first positional input, as it was before the
            layer ran.
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
        LayerNameError: (from the forward pass) `name:k` asks for a call the module did not make.
        CaptureOverwrittenError: (from the forward pass or the end of the block) a value kept
            without a copy was changed in place after all; run the forward pass again.

    Example:
        >>> with capture(model, ["conv1", "fc"]) as store:
        ...     logits = model(x)
        >>> store.act("conv1").shape
    """
    requested = [(name, module_name, index) for name, (module_name, index) in resolve_calls(model, layers).items()]
    store = ActivationStore()
    counter = CallCounter()
    guard = Guard(model, store, detach=detach)
    recorder = _Recorder(counter, store, guard, detach=detach, grads=grads)
    calls = _calls_by_module(requested)
    forward = {module: recorder.output_hook(module, wanted) for module, wanted in calls.items()}
    pre = {module: recorder.input_hook(module, wanted) for module, wanted in calls.items()} if inputs else {}

    def end(args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        check_calls(model, requested, counter.counts)
        guard.finish(args, kwargs, output)

    seen: list[Tensor] = []  # the latest input of model(...), to explain a dtype error
    watch_inputs = _input_watcher(seen, check_finite=check_finite)
    root = [
        *counter.registrations(model, on_start=guard.start, on_end=end),
        lambda: model.register_forward_pre_hook(watch_inputs, with_kwargs=True),
    ]
    with hooks(model, forward, pre=pre), registered(root):
        try:
            yield store
        except (RuntimeError, TypeError, ValueError) as err:
            clear = dtype_error(err, model, seen[0]) if seen else None
            if clear is None:
                raise
            raise clear from err
        guard.close()


def _calls_by_module(requested: list[tuple[str, str, int]]) -> dict[str, dict[int, list[str]]]:
    """Group the requested (name, module name, call index) as module name -> call index -> names."""
    calls: dict[str, dict[int, list[str]]] = {}
    for name, module_name, index in requested:
        calls.setdefault(module_name, {}).setdefault(index, []).append(name)
    return calls


@dataclass(frozen=True)
class _Recorder:
    """What the layer hooks of one `capture` block share: the call counter, the store and its guard."""

    counter: CallCounter
    store: ActivationStore
    guard: Guard
    detach: bool
    grads: bool

    def output_hook(self, module_name: str, wanted: dict[int, list[str]]) -> ForwardHook:
        """A forward hook recording the calls of `module_name` in `wanted` (call index -> names)."""

        def forward_hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
            index = self.counter.next_index(module_name)
            targets = wanted.get(index or 0)
            if targets is None:
                return None
            out = first_tensor(output, targets[0])
            if not self.detach:
                self._keep_on_graph(targets, out)
                return replace_first_tensor(output, out.clone())
            self._keep_guarded(targets, out, in_root=index is not None)
            return None

        return forward_hook

    def input_hook(self, module_name: str, wanted: dict[int, list[str]]) -> PreHook:
        """A pre-hook recording the first input of the calls of `module_name` in `wanted`."""

        def pre_hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            index = self.counter.peek(module_name)
            targets = wanted.get(index or 0)
            if targets is None or not args:
                return
            x = first_tensor(args[0], targets[0])
            for name in targets:  # before the module runs: an in-place module (ReLU(inplace=True)) changes it
                self.guard.keep("input", name, x, in_root=index is not None)

        return pre_hook

    def _keep_on_graph(self, targets: list[str], out: Tensor) -> None:
        """Store the layer's own tensor, still on the autograd path (it is optimised or differentiated).

        The caller lets the rest of the forward run on a copy, so an in-place op later
        changes the copy, never what was captured.
        """
        for name in targets:
            self.store._append("act", name, out)
            self._watch_grad(name, out)

    def _keep_guarded(self, targets: list[str], out: Tensor, *, in_root: bool) -> None:
        """Hand the output to the guard, which copies it only if a later op may change it in place."""
        for name in targets:
            self.guard.keep("act", name, out, in_root=in_root)
            self._watch_grad(name, out)

    def _watch_grad(self, name: str, out: Tensor) -> None:
        """Record the gradient at `out` under `name` when gradients are asked for.

        A tensor hook gives the gradient at the value the layer returned, also when a later
        in-place op changes the tensor (it stays with that autograd version).
        """
        if self.grads and out.requires_grad:
            out.register_hook(_grad_setter(self.store, name, self.store._reserve_grad(name)))


def _input_watcher(
    seen: list[Tensor], *, check_finite: bool
) -> Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], None]:
    """A root pre-hook keeping the latest input of `model(...)` in `seen` and checking it for NaN/inf."""

    def watch_inputs(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        named = _top_level_tensors(args, kwargs)
        if named:
            seen[:] = [named[0][1]]
        if check_finite:
            for label, tensor in named:
                check_tensor_finite(tensor, label, skip_with="check_finite=False to capture()")

    return watch_inputs


def _grad_setter(store: ActivationStore, name: str, slot: int) -> Callable[[Tensor], None]:
    def grad_hook(grad: Tensor) -> None:
        store._set_grad(name, slot, grad.detach())

    return grad_hook


def _top_level_tensors(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Tensor]]:
    """The tensors passed to a forward call, positional first, each with the name a message uses."""
    named = [("inputs" if i == 0 else f"positional input {i}", a) for i, a in enumerate(args) if isinstance(a, Tensor)]
    named += [(f"input {key!r}", v) for key, v in kwargs.items() if isinstance(v, Tensor)]
    return named

