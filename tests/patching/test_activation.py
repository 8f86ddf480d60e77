"""Activation patching against models whose answer is known by construction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from mechscope.errors import ConfigError, DataError
from mechscope.patching.activation import activation_patching
from mechscope.patching.metrics import logit_diff, probability
from tests.zoo import DictNet, TinyResNet, TokenGRU, tiny_gpt2


class CopyFirst(nn.Module):
    """Reads only position 0 of its sequence: logits = W x[:, 0]."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Identity()
        self.head = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:  # (batch, pos, 4)
        return self.head(self.mix(x)[:, 0])


def _pair(n: int = 5, pos: int = 4) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, pos, 4, generator=g), torch.randn(n, pos, 4, generator=g)


def test_position_zero_recovers_everything_and_others_nothing() -> None:
    torch.manual_seed(0)
    model, (clean, corrupt) = CopyFirst(), _pair()
    result = activation_patching(model, clean, corrupt, "mix", logit_diff(0, 1), along="pos")
    assert result.values.shape == (1, 4)
    assert torch.allclose(result.values[0], torch.tensor([1.0, 0, 0, 0], dtype=torch.float64), atol=1e-6)
    noised = activation_patching(model, clean, corrupt, "mix", logit_diff(0, 1), along="pos", direction="noise")
    assert torch.allclose(noised.values[0], torch.tensor([0.0, 1, 1, 1], dtype=torch.float64), atol=1e-6)


def test_clean_into_clean_changes_nothing() -> None:
    torch.manual_seed(0)
    model, (clean, _) = CopyFirst(), _pair()
    metric = logit_diff(0, 1)
    with pytest.raises(DataError, match="nothing to recover"):
        activation_patching(model, clean, clean, "mix", metric)
    from mechscope.patching.activation import _sweep_at_once, _sweep_layer, run_pair

    runs = run_pair(model, clean, clean, ["mix"], metric)
    assert runs.clean_metric == runs.corrupt_metric
    source = runs.clean["mix"]
    for values in (_sweep_layer(model, clean, "mix", 1, source, metric, None, 2),
                   _sweep_at_once(model, clean, ["mix"], [1], [source], metric, None)):
        assert torch.allclose(values, torch.full((4,), runs.clean_metric, dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("max_batch", [1, 3, 7, 1000])
def test_any_batch_size_gives_the_same_result(max_batch: int) -> None:
    torch.manual_seed(0)
    model = TinyResNet().eval()
    g = torch.Generator().manual_seed(1)
    clean, corrupt = torch.randn(3, 1, 16, 16, generator=g), torch.randn(3, 1, 16, 16, generator=g)
    reference = activation_patching(model, clean, corrupt, ["layer1.0.relu:1", "layer2.0.conv1"], probability(2),
                                    along="unit", max_batch=1000)
    result = activation_patching(model, clean, corrupt, ["layer1.0.relu:1", "layer2.0.conv1"], probability(2),
                                 along="unit", max_batch=max_batch)
    assert torch.allclose(result.values, reference.values, atol=1e-6, equal_nan=True)


def test_each_cell_equals_one_forward_with_a_manual_patch() -> None:
    """Oracle: a hand-written hook patching one channel of the in-place ReLU's second call."""
    torch.manual_seed(0)
    model = TinyResNet().eval()
    g = torch.Generator().manual_seed(2)
    clean, corrupt = torch.randn(2, 1, 16, 16, generator=g), torch.randn(2, 1, 16, 16, generator=g)
    layer = "layer1.0.relu:1"
    result = activation_patching(model, clean, corrupt, layer, probability(1), along="unit")
    calls: list[Tensor] = []
    handle = model.layer1[0].relu.register_forward_hook(lambda m, i, o: calls.append(o.clone()))
    with torch.no_grad():
        model(clean)
    handle.remove()
    clean_act = calls[1]
    for channel in (0, 3):
        count = [0]

        def hook(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor, channel: int = channel) -> Tensor | None:
            count[0] += 1
            if count[0] == 2:
                out = out.clone()
                out[:, channel] = clean_act[:, channel]
                return out
            return None

        handle = model.layer1[0].relu.register_forward_hook(hook)
        with torch.no_grad():
            p = model(corrupt).softmax(dim=1)[:, 1].double().mean()
        handle.remove()
        assert float(result.metric_values[0, channel]) == pytest.approx(float(p), abs=1e-6)


def test_bad_inputs_are_one_line_errors() -> None:
    model, (clean, corrupt) = CopyFirst(), _pair()
    with pytest.raises(DataError, match="same shape"):
        activation_patching(model, clean, corrupt[:2], "mix", logit_diff(0, 1))
    with pytest.raises(ConfigError, match="direction"):
        activation_patching(model, clean, corrupt, "mix", logit_diff(0, 1), direction="both")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="head axis"):
        activation_patching(model, clean, corrupt, "mix", logit_diff(0, 1), along="head")


def _manual_cell(model: nn.Module, module: nn.Module, base: Tensor, source: Tensor, axis: int, cell: int,
                 read: Callable[[Any], Tensor]) -> Tensor:
    """Oracle: one forward with a raw hook that writes one cell of the module's (first) output."""

    def hook(_m: nn.Module, _i: tuple[Any, ...], out: Any) -> Any:
        first = out[0] if isinstance(out, tuple) else out
        patched = first.clone()
        index = [slice(None)] * patched.dim()
        index[axis] = cell
        patched[tuple(index)] = source[tuple(index)]
        return (patched, *out[1:]) if isinstance(out, tuple) else patched

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return read(model(base))
    finally:
        handle.remove()


@pytest.mark.parametrize("case", ["dict", "gpt2", "gru"])
def test_models_not_designed_for_match_a_manual_patch(case: str) -> None:
    g = torch.Generator().manual_seed(4)
    if case == "dict":
        model, layer, along, axis = DictNet().eval(), "act", "unit", 1
        clean, corrupt = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
        output: Any = "logits"
        read: Callable[[Any], Tensor] = lambda out: out["logits"]
    elif case == "gpt2":
        model, layer, along, axis = tiny_gpt2(), "transformer.h.0", "pos", 1
        clean, corrupt = torch.randint(0, 23, (2, 5), generator=g), torch.randint(0, 23, (2, 5), generator=g)
        output, read = None, lambda out: out.logits[:, -1]
    else:
        model, layer, along, axis = TokenGRU().eval(), "embed", "pos", 1
        clean, corrupt = torch.randint(0, 11, (2, 6), generator=g), torch.randint(0, 11, (2, 6), generator=g)
        output, read = None, lambda out: out
    metric = logit_diff(1, 2)
    result = activation_patching(model, clean, corrupt, layer, metric, along=along, output=output)
    module = model.get_submodule(layer)
    source: list[Tensor] = []
    handle = module.register_forward_hook(lambda m, i, o: source.append((o[0] if isinstance(o, tuple) else o).clone()))
    with torch.no_grad():
        model(clean)
    handle.remove()
    for cell in range(result.n_cells[0]):
        logits = _manual_cell(model, module, corrupt, source[0], axis, cell, read)
        expected = float((logits[:, 1] - logits[:, 2]).double().mean())
        assert float(result.metric_values[0, cell]) == pytest.approx(expected, abs=1e-5)
