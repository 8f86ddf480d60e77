from __future__ import annotations

import pytest

from mechscope.capture import get_layer, layer_names, resolve_layers
from mechscope.errors import LayerNameError


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
