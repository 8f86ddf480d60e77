from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.capture import UnitAxes, capture, unit_axes
from mechscope.capture.units import layer_unit_axes
from mechscope.errors import ConfigError
from tests.zoo import TinyResNet, TokenGRU, tiny_gpt2, tiny_vit

CONV = UnitAxes(1, (2, 3), "conv")
CONV1D = UnitAxes(1, (2,), "conv")
SEQUENCE = UnitAxes(2, (1,), "sequence")
VECTOR = UnitAxes(1, (), "vector")


@pytest.mark.parametrize(
    ("module", "shape", "expected"),
    [
        (nn.Conv2d(3, 4, 3), (2, 4, 5, 5), CONV),
        (nn.Conv1d(3, 4, 3), (2, 4, 7), CONV1D),
        (nn.BatchNorm1d(4), (2, 4, 7), CONV1D),
        (nn.GRU(4, 6, batch_first=True), (2, 5, 6), SEQUENCE),
        (nn.LSTM(4, 6, batch_first=True), (2, 5, 6), SEQUENCE),
        (nn.TransformerEncoderLayer(8, 2, batch_first=True), (2, 5, 8), SEQUENCE),
        (nn.Linear(4, 6), (2, 5, 6), SEQUENCE),
        (nn.Linear(4, 6), (2, 6), VECTOR),
        (nn.Embedding(10, 6), (2, 5, 6), SEQUENCE),
        (nn.ReLU(), (2, 5, 6), SEQUENCE),  # no layout of its own: 3-D reads as a sequence
        (nn.ReLU(), (2, 4, 5, 5), CONV),
        (None, (2, 5, 6), SEQUENCE),
    ],
)
def test_unit_axes_inferred_from_module_and_shape(module, shape, expected):
    assert unit_axes(module, shape) == expected


def test_unit_axes_overrides_by_kind_index_and_value():
    assert unit_axes(nn.GRU(4, 6), (2, 6, 5), "conv") == CONV1D
    assert unit_axes(nn.Conv1d(3, 4, 3), (2, 5, 4), "sequence") == SEQUENCE
    assert unit_axes(None, (2, 5, 6), -1) == SEQUENCE
    assert unit_axes(None, (2, 5, 6, 7), 2) == UnitAxes(2, (1, 3), "conv")
    assert unit_axes(None, (2, 5, 6), CONV1D) == CONV1D


def test_layer_unit_axes_reads_elementwise_layers_from_what_feeds_them():
    conv1d = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU())
    dense = nn.Sequential(nn.Linear(2, 3), nn.GELU())
    assert layer_unit_axes(conv1d, "1", (4, 3, 10)) == CONV1D
    assert layer_unit_axes(dense, "1", (4, 10, 3)) == SEQUENCE
    assert layer_unit_axes(conv1d, "1", (4, 3, 10), axes={"1": "sequence"}) == UnitAxes(2, (1,), "sequence")
    assert layer_unit_axes(conv1d, "1", (4, 3, 10), axes={"0": "sequence"}) == CONV1D  # other layers' entries


def test_layer_unit_axes_on_zoo_models():
    assert layer_unit_axes(TokenGRU(), "gru", (2, 5, 8)) == SEQUENCE
    assert layer_unit_axes(TinyResNet(), "layer1.0", (2, 8, 16, 16)) == CONV
    assert layer_unit_axes(TinyResNet(), "layer1.0.relu", (2, 8, 16, 16)) == CONV
    gpt2 = tiny_gpt2()
    block = next(name for name, m in gpt2.named_modules() if name.endswith("h.0") or name.endswith("layers.0"))
    assert layer_unit_axes(gpt2, block, (2, 5, 16)) == SEQUENCE
    vit = tiny_vit()
    # The patch embedding holds a Conv2d, but its 3-D output is a sequence of patch tokens.
    assert layer_unit_axes(vit, "vit.embeddings", (2, 5, 16)) == SEQUENCE


def test_units_first_is_a_writable_view():
    x = torch.arange(24.0).reshape(2, 3, 4)  # (batch, pos, d_model)
    view = SEQUENCE.units_first(x)
    assert view.shape == (2, 4, 3)
    view[:, 1] = 0
    assert bool((x[:, :, 1] == 0).all()) and bool((x[:, :, 0] != 0).any())
    assert SEQUENCE.n_units(x.shape) == 4 and SEQUENCE.positions(x.shape) == (3,)


def test_unit_axes_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"shape \(5,\) has no unit axis"):
        unit_axes(None, (5,))
    with pytest.raises(ConfigError, match="'vector' layer has outputs \\(batch, unit\\)"):
        unit_axes(None, (2, 3, 4), "vector")
    with pytest.raises(ConfigError, match="unit axis 3 is not an axis after the batch"):
        unit_axes(None, (2, 3, 4), 3)
    with pytest.raises(ConfigError, match="axes must be a UnitAxes"):
        unit_axes(None, (2, 3, 4), "channels")
    with pytest.raises(ConfigError, match="cover axes 1..n once each"):
        UnitAxes(1, (1,), "conv")
    with pytest.raises(ConfigError, match="describe 4-D outputs"):
        unit_axes(None, (2, 3, 4), CONV)


def test_captured_gru_output_is_the_sequence():
    model = TokenGRU()
    tokens = torch.randint(0, 11, (3, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), capture(model, "gru") as store:
        model(tokens)
    act = store.act("gru")
    assert layer_unit_axes(model, "gru", act.shape).n_units(act.shape) == 8


def test_a_later_call_of_a_module_has_the_module_layout():
    from tests.zoo import TinyResNet

    model = TinyResNet()
    for name in ("layer1.0.relu", "layer1.0.relu:1"):  # a ReLU after a conv/bn: channels on axis 1
        axes = layer_unit_axes(model, name, (2, 8, 16, 16))
        assert (axes.unit, axes.kind, axes.n_units((2, 8, 16, 16))) == (1, "conv", 8)
