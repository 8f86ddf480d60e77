from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.circuits import conv_connections
from mechscope.circuits.connections import connection_strengths, connections_into
from mechscope.circuits.layers import conv_feeding
from mechscope.errors import ConfigError, UnsupportedModelError
from mechscope.serialize import to_json


def test_connection_strengths_hand_set_pair(conv_pair):
    l2, signed = connection_strengths(conv_pair.conv_b)
    torch.testing.assert_close(l2, torch.tensor([[5.0, 0.0], [2.0, 5.0], [2.0, 1.0]]))
    torch.testing.assert_close(signed, torch.tensor([[9.0, 0.0], [0.0, -1.0], [-4.0, 1.0]]))


def test_conv_connections_top_inbound_and_outbound(conv_pair):
    (pair,) = conv_connections(conv_pair, top=2)
    assert (pair.source, pair.target) == ("conv_a", "conv_b")
    assert pair.top_inbound.tolist() == [[0, 1], [1, 0], [0, 1]]
    assert pair.top_outbound.tolist() == [[0, 1], [1, 2]]  # ties (2.0, 2.0) keep channel order
    data = to_json(pair)
    assert data["signed_sum"][2] == [-4.0, 1.0] and data["top_outbound"] == [[0, 1], [1, 2]]
    assert connections_into(conv_pair, "conv_b", top=1).top_inbound.tolist() == [[0], [1], [0]]


def test_grouped_conv_is_spread_into_the_full_matrix():
    conv = nn.Conv2d(4, 2, 1, groups=2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0]], [[2.0]]], [[[3.0]], [[-4.0]]]]))
    l2, signed = connection_strengths(conv)
    torch.testing.assert_close(l2, torch.tensor([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 4.0]]))
    torch.testing.assert_close(signed, torch.tensor([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, -4.0]]))


def test_digit_cnn_pairs_and_mismatch_skipped(gap_cnn):
    pairs = conv_connections(gap_cnn)  # DigitCNN checks its input: run on zeros of its configured shape
    assert [(p.source, p.target, tuple(p.l2.shape)) for p in pairs] == [
        ("conv1", "conv2", (16, 8)), ("conv2", "conv3", (32, 16))
    ]
    assert connections_into(gap_cnn, "relu3").source == "conv2"
    assert connections_into(gap_cnn, "relu1") is None
    read = conv_connections(gap_cnn, example=torch.zeros(2, 1, 8, 8))  # from one forward pass, as without
    assert [to_json(p) for p in read] == [to_json(p) for p in pairs]
    mismatch = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Conv2d(5, 2, 3))
    assert conv_connections(mismatch) == ()  # 3 channels cannot feed 5: no guessed pairing


def test_resnet_connections_follow_the_residual_dataflow():
    from tests.circuits.test_dataflow import RESNET_SOURCES
    from tests.zoo import TinyResNet

    model = TinyResNet()
    pairs = conv_connections(model)
    expected = {(s, t) for t, sources in RESNET_SOURCES.items() if t != "fc" for s in sources}
    assert {(p.source, p.target) for p in pairs} == expected
    assert ("layer2.0.downsample.0", "layer2.0.conv2") not in expected  # it feeds the sum after conv2, not conv2
    assert {p.source for p in pairs if p.target == "layer2.0.downsample.0"} == {"conv1", "layer1.0.conv2",
                                                                                "layer1.1.conv2"}
    l2, signed = connection_strengths(model.layer1[1].conv1)
    for pair in (p for p in pairs if p.target == "layer1.1.conv1"):  # both summands read through all 8 inputs
        assert pair.offset == 0 and torch.equal(pair.l2, l2) and torch.equal(pair.signed_sum, signed)
    assert conv_feeding(model, "layer1.0.relu") == "layer1.0.conv1"
    assert conv_feeding(model, "layer1.0.relu:1") == "layer1.0.conv2"  # conv1 (stem) and conv2: the last to run
    assert connections_into(model, "layer1.0.relu:1").source == "layer1.0.conv1"


def test_concatenated_sources_read_their_slice_of_the_kernel():
    from tests.circuits.test_dataflow import Concat

    model = Concat()
    pairs = {p.source: p for p in conv_connections(model)}
    l2, signed = connection_strengths(model.c)
    assert (pairs["a"].offset, pairs["b"].offset) == (0, 3)
    assert torch.equal(pairs["a"].l2, l2[:, :3]) and torch.equal(pairs["b"].signed_sum, signed[:, 3:])
    assert to_json(pairs["b"])["offset"] == 3


def test_vgg_connections_are_sequential():
    from tests.zoo import TinyVGG

    assert [(p.source, p.target, tuple(p.l2.shape)) for p in conv_connections(TinyVGG())] == [
        ("features.0", "features.3", (12, 6))
    ]


def test_untraceable_model_without_example_is_refused():
    from tests.circuits.test_dataflow import Branchy

    with pytest.raises(UnsupportedModelError, match="torch.fx cannot trace it"):
        conv_connections(Branchy())


def test_connection_errors(gap_cnn):
    with pytest.raises(UnsupportedModelError, match="needs a conv module; got ReLU"):
        connection_strengths(gap_cnn.relu1)
    with pytest.raises(ConfigError, match="top must be"):
        conv_connections(gap_cnn, top=0)


def test_unit_connections_follow_the_residual_dataflow():
    from mechscope.circuits.connections import unit_connections
    from tests.zoo import TinyResNet, image_bundle

    model = TinyResNet(width=4)
    names = ["relu", "layer1.0.relu", "layer1.0.conv2", "layer1.1.relu"]
    found = unit_connections(model, {name: 4 for name in names}, example=image_bundle((1, 8, 8), 4).x_test[:2])

    def inbound(name):
        return {c.layer for cs in found[name].inbound.values() for c in cs}

    assert inbound("layer1.0.relu") == {"relu"}
    assert inbound("layer1.0.conv2") == {"layer1.0.relu"}
    assert inbound("layer1.1.relu") == {"layer1.0.conv2", "relu"}  # layer1.1.conv1 reads the residual sum
    l2, signed = connection_strengths(model.layer1[1].conv1)
    for u, connections in found["layer1.1.relu"].inbound.items():
        assert [c.strength for c in connections] == sorted((c.strength for c in connections), reverse=True)
        assert all(c.strength == float(l2[u, c.unit]) and c.signed == float(signed[u, c.unit]) for c in connections)
    assert {c.layer for cs in found["relu"].outbound.values() for c in cs} == {"layer1.0.relu", "layer1.1.relu"}


def test_unit_connections_label_the_input_features_and_the_outputs():
    from mechscope.circuits.connections import unit_connections

    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -3.0, 2.0], [0.5, 0.0, 0.0]]))
        model[2].weight.copy_(torch.tensor([[2.0, 0.0], [-1.0, 4.0]]))
    found = unit_connections(model, {"1": 2}, example=torch.zeros(2, 3), top=2, input_names=["p", "q", "r"],
                             output_names=["cat", "dog"])
    assert [(c.label, c.strength, c.signed) for c in found["1"].inbound[0]] == [("q", 3.0, -3.0), ("r", 2.0, 2.0)]
    assert [(c.label, c.signed) for c in found["1"].outbound[1]] == [("logit of class dog", 4.0),
                                                                    ("logit of class cat", 0.0)]
    assert to_json(found["1"].outbound[0][0]) == {"layer": None, "unit": 0, "label": "logit of class cat",
                                                   "strength": 2.0, "signed": 2.0}
    unnamed = unit_connections(model, {"1": 2}, example=torch.zeros(2, 3), max_units=1)
    assert list(unnamed["1"].inbound) == [0] and unnamed["1"].inbound[0][0].label == "input x2"
    with pytest.raises(ConfigError, match="got 2 input_names for inputs of 3 features"):
        unit_connections(model, {"1": 2}, example=torch.zeros(2, 3), input_names=["p", "q"])
