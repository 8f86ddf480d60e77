from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mechscope.errors import ConfigError, DataError
from mechscope.symbolic.linearize import LOCAL_LABEL, linearize
from mechscope.serialize import to_json


def _tanh_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def test_linearize_tanh_jacobian_matches_the_analytic_derivative():
    model = _tanh_net()
    points = torch.randn(5, 3)
    lin = linearize(model, points)
    w1, b1, w2 = (p.detach().double() for p in (model[0].weight, model[0].bias, model[2].weight))
    slope = 1 - torch.tanh(points.double() @ w1.T + b1) ** 2  # (n_points, unit)
    expected = torch.einsum("ou,pu,un->pon", w2, slope, w1)
    assert torch.allclose(lin.coefficients, expected, atol=1e-5)
    with torch.no_grad():
        values = model(points).double()
    assert torch.allclose(lin.coefficients @ points.double()[:, :, None] + lin.intercepts[:, :, None],
                          values[:, :, None], atol=1e-5)


def test_linearize_is_labelled_local_everywhere():
    lin = linearize(_tanh_net(), torch.zeros(1, 3))
    assert lin.label == LOCAL_LABEL and "not a global formula" in lin.label
    assert to_json(lin)["label"] == LOCAL_LABEL
    first, *rest = lin.formulas()[0].splitlines()
    assert first == "near x0 = [0.0, 0.0, 0.0]:"
    assert rest[0].startswith("f1(X) ~ ") and rest[1].startswith("f2(X) ~ ")


def test_linearize_error_grows_away_from_the_point():
    data = torch.randn(2000, 3) * 3
    lin = linearize(_tanh_net(), torch.zeros(1, 3), data=data)
    near, everywhere = float(lin.near_max_abs_error[0]), float(lin.data_max_abs_error[0])
    assert near < everywhere
    assert everywhere > 0.1  # a tangent plane is no global formula for tanh


def test_linearize_without_data_has_no_error_estimate():
    lin = linearize(_tanh_net(), torch.zeros(2, 3))
    assert all(math.isnan(v) for v in lin.data_max_abs_error.tolist())
    assert to_json(lin)["points"][0]["data_max_abs_error"] is None


def test_linearize_restores_training_mode():
    model = _tanh_net().train()
    linearize(model, torch.zeros(1, 3))
    assert model.training


def test_linearize_bad_near_fraction_raises():
    with pytest.raises(ConfigError, match="near_fraction must be in"):
        linearize(_tanh_net(), torch.zeros(1, 3), near_fraction=0.0)


def test_linearize_empty_points_raises():
    with pytest.raises(DataError, match="points must be a non-empty batch"):
        linearize(_tanh_net(), torch.zeros(0, 3))


def test_linearize_nan_weights_say_which_layer_is_not_finite():
    model = _tanh_net()
    with torch.no_grad():
        model[2].weight[0, 3] = float("nan")
    with pytest.raises(DataError, match=r"weights of layer '2' \(weight\): 1 of 8 \(1 nan\); the first is nan at "
                       r"index \(0, 3\)\. The weights of layer '2' are not finite"):
        linearize(model, torch.randn(2, 3), data=torch.randn(10, 3))


def test_linearize_nan_data_raises_before_any_jacobian():
    data = torch.randn(10, 3)
    data[6, 2] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in data: .*index \(6, 2\)"):
        linearize(_tanh_net(), data.nan_to_num().mean(0, keepdim=True), data=data)
