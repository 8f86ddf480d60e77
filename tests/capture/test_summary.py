from __future__ import annotations

import torch

from mechscope.capture import describe_layers


def test_describe_layers_shapes_and_params(small_conv_net):
    rows = {row.name: row for row in describe_layers(small_conv_net, torch.rand(2, 1, 8, 8))}
    assert rows["features.0"].output_shape == (4, 8, 8)
    assert rows["features.0"].n_params == 4 * 9 + 4
    assert rows["pool"].output_shape == (6, 1, 1)
    assert rows["fc"].type == "Linear"
    assert rows["fc"].as_dict()["output_shape"] == [3]
