from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.circuits import connection_strengths, connections_into, conv_connections
from mechscope.errors import ConfigError, UnsupportedModelError


def test_connection_strengths_hand_set_pair(conv_pair):
    l2, signed = connection_strengths(conv_pair.conv_b)
    torch.testing.assert_close(l2, torch.tensor([[5.0, 0.0], [2.0, 5.0], [2.0, 1.0]]))
    torch.testing.assert_close(signed, torch.tensor([[9.0, 0.0], [0.0, -1.0], [-4.0, 1.0]]))


def test_conv_connections_top_inbound_and_outbound(conv_pair):
    (pair,) = conv_connections(conv_pair, top=2)
    assert (pair.source, pair.target) == ("conv_a", "conv_b")
    assert pair.top_inbound.tolist() == [[0, 1], [1, 0], [0, 1]]
    assert pair.top_outbound.tolist() == [[0, 1], [1, 2]]  # ties (2.0, 2.0) keep channel order
    data = pair.to_dict()
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
    pairs = conv_connections(gap_cnn)
    assert [(p.source, p.target, tuple(p.l2.shape)) for p in pairs] == [
        ("conv1", "conv2", (16, 8)), ("conv2", "conv3", (32, 16))
    ]
    assert connections_into(gap_cnn, "relu3").source == "conv2"
    assert connections_into(gap_cnn, "relu1") is None
    branchy = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Conv2d(5, 2, 3))
    assert conv_connections(branchy) == ()


def test_connection_errors(gap_cnn):
    with pytest.raises(UnsupportedModelError, match="needs a conv module; got ReLU"):
        connection_strengths(gap_cnn.relu1)
    with pytest.raises(ConfigError, match="top must be"):
        conv_connections(gap_cnn, top=0)
