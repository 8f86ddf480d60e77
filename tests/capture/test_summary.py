from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import nn

from mechscope.capture import describe_layers, layer_names
from mechscope.capture.summary import activation_bytes
from tests.capture.oracles import TwoResolutions
from tests.zoo import TinyResNet, tiny_gpt2, tiny_vit


def test_describe_layers_shapes_and_params(small_conv_net):
    rows = {row.name: row for row in describe_layers(small_conv_net, torch.rand(2, 1, 8, 8))}
    assert rows["features.0"].output_shape == (4, 8, 8)
    assert rows["features.0"].n_params == 4 * 9 + 4
    assert rows["pool"].output_shape == (6, 1, 1)
    assert rows["fc"].type == "Linear"
    assert rows["fc"].as_dict()["output_shape"] == [3]


def test_describe_layers_lists_every_call_of_a_repeated_module():
    model = TinyResNet()
    rows = describe_layers(model, torch.rand(2, 1, 16, 16))
    names = [row.name for row in rows]
    i = names.index("layer1.0.relu")
    assert names[i + 1] == "layer1.0.relu:1"
    second = rows[i + 1]
    assert second.type == "ReLU" and second.output_shape == (8, 16, 16) and second.output_type == "Tensor"
    assert [n for n in names if ":" not in n] == layer_names(model)
    shared = {row.name: row.output_shape for row in describe_layers(TwoResolutions(), torch.rand(2, 1, 8, 8))}
    assert shared == {"conv": (2, 8, 8), "conv:1": (2, 4, 4), "pool": (1, 4, 4)}


def test_describe_layers_reads_gpt2_model_outputs_and_tuples():
    rows = {row.name: row for row in describe_layers(tiny_gpt2(), torch.randint(0, 23, (2, 5)))}
    assert rows["transformer"].output_shape == (5, 16)
    assert rows["transformer"].output_type == "BaseModelOutputWithPastAndCrossAttentions"  # a ModelOutput
    assert rows["transformer.h.0.attn"].output_type == "tuple" and rows["transformer.h.0.attn"].output_shape == (5, 16)
    assert rows["transformer.h"].output_shape is None  # a ModuleList does not run
    assert rows["lm_head"].output_shape == (5, 23)
    assert rows["transformer"].as_dict()["output_type"] == rows["transformer"].output_type


def test_describe_layers_reads_vit_and_its_repeated_dropout():
    rows = {row.name: row for row in describe_layers(tiny_vit(), torch.rand(2, 3, 8, 8))}
    assert rows["vit"].output_shape == (5, 16) and rows["vit"].output_type == "BaseModelOutputWithPooling"
    assert rows["vit.layers.0.dropout:1"].output_shape == (5, 16)
    assert rows["classifier"].output_shape == (3,)


class _Odd(nn.Module):
    """Submodules returning a dict, a named tuple and no tensor at all."""

    class Pair(NamedTuple):
        a: torch.Tensor
        b: torch.Tensor

    class Note(nn.Module):
        def forward(self, x: torch.Tensor) -> str:
            return "no tensor here"

    class Dict(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, object]:
            return {"count": 3, "features": x * 2}

    class Tuple(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return _Odd.Pair(x[:, :1], x)

    def __init__(self) -> None:
        super().__init__()
        self.note, self.dict, self.tuple = self.Note(), self.Dict(), self.Tuple()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.note(x)
        return self.tuple(self.dict(x)["features"])[1]


def test_describe_layers_never_fails_on_odd_outputs():
    rows = {row.name: row for row in describe_layers(_Odd(), torch.rand(2, 3))}
    assert rows["note"].output_shape is None and rows["note"].output_type == "str"
    assert rows["dict"].output_shape == (3,) and rows["dict"].output_type == "dict"
    assert rows["tuple"].output_shape == (1,) and rows["tuple"].output_type == "Pair"
    assert rows["note"].itemsize is None and activation_bytes(rows.values()) == (3 + 1) * 4  # no tensor counts 0


def test_describe_layers_and_layer_names_remove_their_hooks_after_an_error():
    model = TinyResNet()
    with pytest.raises(RuntimeError):
        describe_layers(model, torch.rand(2, 3, 16, 16))  # wrong channel count
    with pytest.raises(RuntimeError):
        layer_names(model, torch.rand(2, 3, 16, 16))
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0
    assert model.training  # the mode is restored too


def test_activation_bytes_adds_every_layer_output_for_one_input():
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    rows = describe_layers(model, torch.rand(4, 3))
    assert [row.itemsize for row in rows] == [4, 4, 4]
    assert activation_bytes(rows) == (5 + 5 + 2) * 4  # per input, whatever the example's batch
    wide = describe_layers(model.to(torch.float64), torch.rand(4, 3, dtype=torch.float64))
    assert activation_bytes(wide) == (5 + 5 + 2) * 8
    assert activation_bytes([row for row in rows if row.name != "1"]) == (5 + 2) * 4
