from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mechscope.attribution import CAM, GradCAM, GradCAMPlusPlus
from mechscope.attribution.token_grid import TokenGrid, infer_token_grid
from mechscope.capture import capture
from mechscope.errors import ConfigError, UnsupportedModelError
from tests.zoo import tiny_vit


def _vit_block(model: torch.nn.Module) -> str:
    """The second encoder block (`vit.encoder.layer.1` in older transformers, `vit.layers.1` in newer)."""
    names = dict(model.named_modules())
    return next(name for name in ("vit.encoder.layer.1", "vit.layers.1") if name in names)


@pytest.mark.parametrize(
    ("n_tokens", "expected"),
    [(5, TokenGrid(2, 2, 1)), (4, TokenGrid(2, 2, 0)), (197, TokenGrid(14, 14, 1)), (1, TokenGrid(1, 1, 0))],
)
def test_infer_token_grid_finds_square_patch_grids(n_tokens, expected):
    assert infer_token_grid(n_tokens) == expected


def test_infer_token_grid_follows_the_caller_and_explains_failures():
    assert infer_token_grid(14, token_grid=(3, 4)) == TokenGrid(3, 4, 2)  # e.g. class + distillation tokens
    assert infer_token_grid(11, skip_tokens=2) == TokenGrid(3, 3, 2)
    with pytest.raises(UnsupportedModelError, match="6 tokens per input and neither it nor tokens - 1 is a square"):
        infer_token_grid(6, layer="blocks.3")
    with pytest.raises(UnsupportedModelError, match=r"token_grid=\(3, 3\) with skip_tokens=1 covers 10"):
        infer_token_grid(5, token_grid=(3, 3), skip_tokens=1)
    with pytest.raises(ConfigError, match="token_grid must be two positive integers"):
        infer_token_grid(5, token_grid=(0, 2))


def test_token_grid_lays_tokens_row_major():
    tokens = torch.arange(2 * 5 * 3.0).reshape(2, 5, 3)  # (batch, tokens, d_model), token 0 a class token
    maps = TokenGrid(2, 2, 1).to_maps(tokens)
    assert maps.shape == (2, 3, 2, 2)
    assert torch.equal(maps[1, 2, 1, 0], tokens[1, 1 + 2 * 1 + 0, 2])  # row 1, column 0 is patch 2


def _hand_grad_cam(model: torch.nn.Module, layer: str, x: torch.Tensor, target: torch.Tensor) -> tuple:
    with capture(model, [layer], grads=True) as store:
        logits = model(x).logits
        logits.gather(1, target[:, None]).sum().backward()
    acts, grads = store.act(layer), store.grad(layer)  # (batch, 5 tokens, d_model)
    maps = acts[:, 1:].reshape(len(x), 2, 2, -1).permute(0, 3, 1, 2)  # skip the class token: 2x2 patches
    grid_grads = grads[:, 1:].reshape(len(x), 2, 2, -1).permute(0, 3, 1, 2)
    weights = grid_grads.mean(dim=(2, 3))  # (batch, d_model)
    layer_map = torch.einsum("bk,bkhw->bhw", weights, maps)
    up = F.interpolate(torch.relu(layer_map)[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    peak = up.flatten(1).amax(dim=1).clamp_min(1e-30)
    return layer_map, up / peak[:, None, None]


def test_grad_cam_on_vit_tokens_equals_hand_computation():
    model = tiny_vit()
    layer = _vit_block(model)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 2, 1])
    layer_map, expected = _hand_grad_cam(model, layer, x, target)
    method = GradCAM(model, layer)
    torch.testing.assert_close(method.layer_map(x, target), layer_map, rtol=1e-4, atol=1e-6)
    got = method.attribute(x, target)
    assert got.shape == (3, 8, 8)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    explicit = GradCAM(model, layer, token_grid=(2, 2), skip_tokens=1).attribute(x, target)
    torch.testing.assert_close(explicit, got)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_cam_family_on_vit_tokens_and_clear_errors():
    model = tiny_vit()
    layer = _vit_block(model)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    maps = GradCAMPlusPlus(model, layer).attribute(x)
    assert maps.shape == (2, 8, 8) and float(maps.min()) >= 0
    with pytest.raises(UnsupportedModelError, match=r"token_grid=\(3, 3\) with skip_tokens=1 covers 10"):
        GradCAM(model, layer, token_grid=(3, 3), skip_tokens=1).attribute(x)
    with pytest.raises(UnsupportedModelError, match="need a conv layer .* or a token layer"):
        GradCAM(model, "classifier").attribute(x)  # (batch, n_classes): no grid at all
    with pytest.raises(UnsupportedModelError, match="spatial mean"):
        CAM(model, layer, head="classifier").attribute(x)  # the head reads the class token, not a mean
