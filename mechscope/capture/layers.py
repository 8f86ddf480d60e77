"""The default layer an analysis explains when none is named: one rule for every model.

Attribution (CAM family), class circuits and the report all call `default_layer`, so they
agree on the layer and say which one they used. The rule is read from one forward pass on
an example, not from module types or names:

1. Record every submodule's output in the order the calls finish (a block finishes after
   the modules inside it).
2. Candidates are outputs with spatial or position structure: (batch, channel, height,
   width) with more than one position (a pooled 1x1 map has none), or (batch, pos, ...)
   with more than one position (tokens, sequences, a ViT's patches).
3. Take the last candidate. Skip it when it is the explained output (`select_output`, e.g.
   a language model's (batch, pos, vocab) logits) or when the module that first produced
   that value is a normalisation layer (a final LayerNorm is a read-out, not a layer of
   features); then look at the candidate before it.
4. Several modules return that same value: the innermost that made it (for a
   torchvision BasicBlock, the ReLU after `out += identity`), and each enclosing block
   that passes it on. Modules that ran more than once in the pass (that ReLU runs twice)
   are never chosen. Of the rest, take the outermost that is an element of an
   `nn.Sequential` or `nn.ModuleList` stack (`layer2.1`, not `layer2.1.relu` nor the
   whole stage `layer2`); if none is, the outermost.

So the layer is taken after its nonlinearity, at the block output, outside any residual
branch. Examples: DigitCNN its last block's `relu<i>`, torchvision ResNet `layer4.1`, VGG
`features.30` (the last pooled map), a ViT `vit.layers.11` (tokens, before the final
LayerNorm), GPT-2 `transformer.h.11`. A model with no such output (an MLP) gets its last hidden
nonlinearity (for ModularMLP its last `hidden.<i>` block, whose output that activation
is), by the same steps over (batch, unit) outputs made by an activation module.

Example:
    >>> default_layer(resnet18, images[:1])
    'layer4.1'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture.hooks import hooks
from mechscope.capture.modes import eval_mode
from mechscope.capture.outputs import OutputSpec, select_output
from mechscope.capture.record import model_device
from mechscope.errors import DataError, UnsupportedModelError

__all__ = ["default_layer", "block_layers"]

# Elementwise nonlinearities: the fallback for models without spatial or position outputs.
_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Tanhshrink,
)
_NORMS = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
    nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
)
_STACKS = (nn.Sequential, nn.ModuleList)


@dataclass(frozen=True)
class _Call:
    """One finished forward call of a submodule and the tensor it returned."""

    name: str  # dotted module name
    tensor: Tensor  # first tensor of the output (kept alive, so its memory is not reused)
    value: tuple[Any, ...]  # identity of the value when the call finished (see `_value`)


def default_layer(model: nn.Module, example: Tensor, *, output: OutputSpec = None) -> str:
    """Name the layer an analysis explains by default (see the module docstring for the rule).

    Args:
        model: Any module; it runs once on `example` in eval mode without gradients (its
            train/eval mode is restored).
        example: A valid input batch (batch, ...), e.g. one test image `x[:1]`.
        output: The explained output (see `mechscope.capture.select_output`); it is never
            chosen as the layer.

    Returns:
        A dotted name from `named_modules()`.

    Raises:
        UnsupportedModelError: No submodule returns spatial or position structure, and none
            is a hidden nonlinearity; pass the layer explicitly.
        DataError: `example` is not a non-empty tensor batch.

    Example:
        >>> default_layer(DigitCNN(DigitCNNConfig()), x[:1])     # conv blocks relu1..relu3
        'relu3'
    """
    if not isinstance(example, Tensor) or example.dim() < 1 or example.shape[0] == 0:
        shape = tuple(example.shape) if isinstance(example, Tensor) else type(example).__name__
        raise DataError(f"default_layer needs an example batch (batch, ...) to run the model on; got {shape}.")
    modules = dict(model.named_modules())
    calls: list[_Call] = []

    def make(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def record_call(_module: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
            tensor = _first_tensor(out)
            if tensor is not None:
                calls.append(_Call(name, tensor, _value(tensor)))

        return record_call

    with eval_mode(model), torch.no_grad(), hooks(model, {name: make(name) for name in modules if name}):
        result = model(example.to(model_device(model)))
    explained = [select_output(result, output)]
    if isinstance(result, dict) and isinstance(result.get("logits"), Tensor):
        explained.append(result["logits"])
    batch = example.shape[0]
    runs = Counter(call.name for call in calls)
    found = _pick(calls, modules, runs, explained, lambda t: _is_spatial(t, batch), readout=True)
    if found is None:
        found = _pick(calls, modules, runs, explained, lambda t: t.dim() == 2 and t.shape[0] == batch,
                      readout=False, made_by=_ACTIVATIONS)
    if found is None:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no submodule with spatial or position output (batch, channel, height, "
            "width) or (batch, pos, ...), and no activation module on (batch, unit); pass the layer explicitly "
            "(list names with mechscope.layer_names(model))."
        )
    return found


def block_layers(model: nn.Module) -> list[str]:
    """The blocks of a model's longest `nn.ModuleList` of same-class modules (`transformer.h.0`, ...).

    That is the stack of blocks in a transformer (GPT-2's `transformer.h`, Hugging Face ViT's `vit.layers`);
    [] when the model has no such list.
    """
    lists = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.ModuleList)
             and len(module) > 0 and len({type(m) for m in module}) == 1]
    if not lists:
        return []
    name, blocks = max(lists, key=lambda item: len(item[1]))
    return [f"{name}.{i}" for i in range(len(blocks))]


def _pick(
    calls: list[_Call],
    modules: dict[str, nn.Module],
    runs: Counter[str],
    explained: list[Tensor],
    is_candidate: Callable[[Tensor], bool],
    *,
    readout: bool,
    made_by: tuple[type[nn.Module], ...] | None = None,
) -> str | None:
    """Apply steps 3-4 of the rule to the calls whose tensors pass `is_candidate`, last first."""
    seen: set[tuple[Any, ...]] = set()
    for call in reversed(calls):
        if call.value in seen or not is_candidate(call.tensor):
            continue
        seen.add(call.value)
        same = [c for c in calls if c.value == call.value]  # finishing order: the maker first
        maker = modules[same[0].name]
        if any(_shares_storage(call.tensor, t) for t in explained):
            continue
        if readout and _is_norm(maker):
            continue
        if made_by is not None and not _is_activation(maker, made_by):
            continue
        chain = [same[0].name] + [c.name for c in same[1:] if same[0].name.startswith(c.name + ".")]
        once = [name for name in chain if runs[name] == 1]
        stacked = [name for name in once if isinstance(modules[_parent(name)], _STACKS)]
        if stacked:
            return stacked[-1]
        if once:
            return once[-1]
    return None


def _value(tensor: Tensor) -> tuple[Any, ...]:
    """The same memory, layout and in-place version: the same tensor, or a same-shaped view of it
    (GPT-2 returns `hidden_states.view(shape)`), not modified in place since (`out += identity`)."""
    try:
        where = tensor.untyped_storage().data_ptr()
    except RuntimeError:  # tensors without storage (some subclasses): their identity only
        where = id(tensor)
    return where, tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride()), tensor._version


def _is_spatial(tensor: Tensor, batch: int) -> bool:
    if tensor.dim() not in (3, 4) or tensor.shape[0] != batch:
        return False
    if tensor.dim() == 4:
        return tensor.shape[2] * tensor.shape[3] > 1
    return tensor.shape[1] > 1


def _is_norm(module: nn.Module) -> bool:
    # Norms of other libraries (LlamaRMSNorm, T5LayerNorm) follow the same naming.
    return isinstance(module, _NORMS) or type(module).__name__.endswith("Norm")


def _is_activation(module: nn.Module, kinds: tuple[type[nn.Module], ...]) -> bool:
    # Activation modules of other libraries (transformers' GELUActivation) end in "Activation".
    return isinstance(module, kinds) or type(module).__name__.endswith("Activation")


def _shares_storage(a: Tensor, b: Tensor) -> bool:
    """True when `b` is `a` or a view of the same memory (e.g. `logits[:, -1]`)."""
    if a is b:
        return True
    try:
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() and a.numel() > 0
    except RuntimeError:  # tensors without storage (e.g. some subclasses)
        return False


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _first_tensor(value: Any) -> Tensor | None:
    """The output itself if a tensor, else the first tensor of a tuple, list or mapping (ModelOutput)."""
    if isinstance(value, Tensor):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
    return next((item for item in items if isinstance(item, Tensor)), None)
