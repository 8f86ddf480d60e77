from __future__ import annotations

import pytest
import torch

from mechscope.circuits import conv_kernels
from mechscope.errors import LayerNameError, UnsupportedModelError
from mechscope.serialize import to_json


def test_conv_kernels_default_first_layer_copies_weights(gap_cnn):
    kernels = conv_kernels(gap_cnn)
    assert kernels.layer == "conv1"
    torch.testing.assert_close(kernels.weight, gap_cnn.conv1.weight.detach())
    kernels.weight.zero_()  # a copy: the model keeps its weights
    assert gap_cnn.conv1.weight.abs().sum() > 0
    assert to_json(kernels)["shape"] == [8, 1, 3, 3]


def test_conv_kernels_norms(conv_pair):
    kernels = conv_kernels(conv_pair, "conv_b")
    torch.testing.assert_close(kernels.norms, torch.tensor([5.0, 29.0**0.5, 5.0**0.5]))
    assert kernels.bias is None


def test_conv_kernels_errors(gap_cnn, two_layer_net):
    with pytest.raises(UnsupportedModelError, match=r"'relu1' is a ReLU, not a conv layer"):
        conv_kernels(gap_cnn, "relu1")
    with pytest.raises(UnsupportedModelError, match="no conv layer"):
        conv_kernels(two_layer_net)
    with pytest.raises(LayerNameError, match="conv9"):
        conv_kernels(gap_cnn, "conv9")
