from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.capture import default_layer, get_layer
from mechscope.errors import DataError, UnsupportedModelError
from mechscope.models import DigitCNN, DigitCNNConfig, ModularMLP, ModularMLPConfig, TinyReLU, TinyReLUConfig
from tests.zoo import DictNet, TinyMobileNet, TinyResNet, TinyVGG, TokenGRU, TupleNet, tiny_gpt2, tiny_vit


def _hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


@pytest.mark.parametrize("gap", [True, False])
def test_default_layer_digit_cnn_is_its_last_relu(gap):
    model = DigitCNN(DigitCNNConfig(gap=gap))
    expected = f"relu{len(model.config.block_channels)}"  # the last block's ReLU, as DigitCNN names it too
    assert default_layer(model, torch.rand(1, 1, 28, 28)) == expected == model.last_conv


def test_default_layer_resnet_is_the_last_block_output_not_inside_the_residual_branch():
    model = TinyResNet().eval()
    assert default_layer(model, torch.rand(2, 1, 16, 16)) == "layer2.1"
    # The block output is the last 4-D map before pooling, after `out += identity` and the ReLU.
    seen = {}
    handle = model.layer2[1].register_forward_hook(lambda m, i, o: seen.update(block=o.clone()))
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    assert torch.allclose(model.fc(seen["block"].mean(dim=(2, 3))), logits, atol=1e-6)


def test_default_layer_vgg_is_the_last_pooled_map():
    assert default_layer(TinyVGG(), torch.rand(1, 1, 8, 8)) == "features.5"


def test_default_layer_mobilenet_is_the_last_activation():
    assert default_layer(TinyMobileNet(), torch.rand(1, 3, 8, 8)) == "block.5"


def test_default_layer_dict_output_model_is_its_feature_map():
    assert default_layer(DictNet(), torch.rand(1, 1, 8, 8)) == "act"
    assert default_layer(TupleNet(), torch.rand(1, 1, 8, 8), output=0) == "act"
    with pytest.raises(UnsupportedModelError, match="ambiguous"):
        default_layer(TupleNet(), torch.rand(1, 1, 8, 8))


def test_default_layer_vit_is_the_last_encoder_layer_before_the_final_norm():
    model = tiny_vit()
    assert default_layer(model, torch.rand(1, 3, 8, 8)) == "vit.layers.1"


def test_default_layer_gpt2_is_the_last_block_never_the_logits():
    model = tiny_gpt2()
    ids = torch.randint(0, 23, (2, 5))
    assert default_layer(model, ids) == "transformer.h.1"
    assert default_layer(model, ids, output=lambda out: out.logits[:, -1]) == "transformer.h.1"


def test_default_layer_sequence_models_take_their_last_position_output():
    assert default_layer(TokenGRU(), torch.randint(0, 11, (2, 5))) == "gru"


def test_default_layer_mlps_take_the_last_hidden_nonlinearity():
    assert default_layer(TinyReLU(TinyReLUConfig(hidden=3)), torch.rand(2, 5)) == "act"
    mlp = ModularMLP(ModularMLPConfig(modulus=3, n_layers=4))
    name = default_layer(mlp, torch.eye(6)[:2])
    assert name == f"hidden.{len(mlp.hidden) - 1}" == "hidden.1"  # the last block, its activation's output
    assert isinstance(list(get_layer(mlp, name).children())[-1], nn.Tanh)


def test_default_layer_skips_modules_that_run_twice():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.act = nn.ReLU()
            self.fc = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.act(self.act(self.conv(x))).mean(dim=(2, 3)))

    assert default_layer(Twice(), torch.rand(1, 1, 4, 4)) == "conv"


def test_default_layer_leaves_no_hooks_and_restores_the_mode():
    model = TinyResNet().train()
    default_layer(model, torch.rand(2, 1, 16, 16))
    assert _hooks_left(model) == 0 and model.training


def test_default_layer_errors_say_how_to_fix():
    with pytest.raises(UnsupportedModelError, match="pass the layer explicitly"):
        default_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.rand(2, 4))
    with pytest.raises(DataError, match="example batch"):
        default_layer(DictNet(), torch.zeros(0, 1, 8, 8))


def test_block_layers_are_the_longest_list_of_same_blocks() -> None:
    from mechscope.capture.layers import block_layers
    from tests.zoo import TinyResNet, tiny_gpt2, tiny_vit

    assert block_layers(tiny_gpt2()) == ["transformer.h.0", "transformer.h.1"]
    assert block_layers(tiny_vit()) == ["vit.layers.0", "vit.layers.1"]
    assert block_layers(TinyResNet()) == []  # Sequential stages are not a ModuleList of blocks
