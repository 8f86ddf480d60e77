from __future__ import annotations

import pytest
import torch

from mechscope.capture import get_layer, layer_names
from mechscope.capture.names import resolve_layers, split_layer
from mechscope.errors import LayerNameError
from tests.capture.oracles import TwoResolutions
from tests.zoo import TinyResNet


def test_layer_names_are_dotted_paths(small_conv_net):
    assert layer_names(small_conv_net) == ["features", "features.0", "features.1", "features.2", "features.3", "pool", "fc"]


def test_get_layer_returns_module(small_conv_net):
    assert get_layer(small_conv_net, "features.2") is small_conv_net.features[2]


def test_get_layer_unknown_suggests(small_conv_net):
    with pytest.raises(LayerNameError, match=r"Did you mean 'fc'") as info:
        get_layer(small_conv_net, "fc1")
    assert isinstance(info.value, KeyError)


def test_get_layer_rejects_non_string(small_conv_net):
    with pytest.raises(LayerNameError, match="strings"):
        get_layer(small_conv_net, 3)  # type: ignore[arg-type]


def test_resolve_layers_deduplicates_and_rejects_empty(small_conv_net):
    assert resolve_layers(small_conv_net, ["fc", "pool", "fc"]) == ["fc", "pool"]
    with pytest.raises(LayerNameError, match="No layer given"):
        resolve_layers(small_conv_net, [])


def test_get_layer_accepts_a_call_index():
    model = TinyResNet()
    assert get_layer(model, "layer1.0.relu:1") is model.layer1[0].relu
    assert split_layer(model, "layer1.0.relu:1") == ("layer1.0.relu", 1)
    assert split_layer(model, "layer1.0.relu") == ("layer1.0.relu", 0)
    assert resolve_layers(model, ["layer1.0.relu", "layer1.0.relu:1", "layer1.0.relu"]) == [
        "layer1.0.relu", "layer1.0.relu:1"]


def test_get_layer_rejects_a_bad_call_index():
    model = TinyResNet()
    with pytest.raises(LayerNameError, match=r"after ':' comes a call index, a whole number such as "
                       r"'layer1\.0\.relu:1'.*got 'x'"):
        get_layer(model, "layer1.0.relu:x")
    with pytest.raises(LayerNameError, match=r"got '-1'"):
        resolve_layers(model, ["layer1.0.relu:-1"])
    with pytest.raises(LayerNameError, match=r"Unknown layer 'layer9\.relu:1'"):
        get_layer(model, "layer9.relu:1")


def test_layer_names_with_an_example_lists_repeated_calls_in_order():
    model = TinyResNet()
    names = layer_names(model, torch.rand(2, 1, 16, 16))
    plain = layer_names(model)
    assert [n for n in names if ":" not in n] == plain
    i = names.index("layer1.0.relu")
    assert names[i + 1] == "layer1.0.relu:1" and "layer2.1.relu:1" in names
    assert sum(":" in n for n in names) == 4  # one ReLU called twice in each of the four blocks
    assert layer_names(TwoResolutions(), torch.rand(1, 1, 8, 8)) == ["conv", "conv:1", "pool"]
