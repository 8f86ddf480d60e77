from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.errors import ConfigError, DataError, UnsupportedModelError
from mechscope.symbolic.regions import extract_regions
from mechscope.serialize import to_json

# The conftest TwoLayerNet: h = relu(x1, x2 - 1, x1 - x2 + 0.5); out = (h1 + 2 h2 + 0.1, -h2 + h3).
# Hand-derived map (A, b) of each pattern, and points inside it.
KNOWN = {
    "111": ([[1.0, 2.0], [1.0, -2.0]], [-1.9, 1.5], [[2.0, 1.5], [3.0, 2.0], [1.0, 1.2], [4.0, 3.0]]),
    "101": ([[1.0, 0.0], [1.0, -1.0]], [0.1, 0.5], [[1.0, -1.0], [2.0, 0.0], [0.5, 0.5]]),
    "010": ([[0.0, 2.0], [0.0, -1.0]], [-1.9, 1.0], [[-1.0, 2.0], [-2.0, 3.0]]),
    "000": ([[0.0, 0.0], [0.0, 0.0]], [0.1, 0.0], [[-1.0, 0.0]]),
}


def _points() -> torch.Tensor:
    return torch.tensor([p for _, _, points in KNOWN.values() for p in points])


def _jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(batch, n_outputs, n_features) input Jacobian by autograd, in float64."""
    model = model.double()
    x = x.double().requires_grad_(True)
    out = model(x)
    rows = [torch.autograd.grad(out[:, k].sum(), x, retain_graph=True)[0] for k in range(out.shape[1])]
    return torch.stack(rows, dim=1)


def test_extract_regions_hand_built_net_gives_known_maps_and_coverage(two_layer_net):
    result = extract_regions(two_layer_net, _points())
    assert [r.patterns for r in result.regions] == [("111",), ("101",), ("010",), ("000",)]
    assert [r.coverage for r in result.regions] == [0.4, 0.3, 0.2, 0.1]
    assert [r.n_points for r in result.regions] == [4, 3, 2, 1]
    for region in result.regions:
        a, b, _ = KNOWN[region.patterns[0]]
        assert torch.allclose(region.coefficients, torch.tensor(a, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(region.intercept, torch.tensor(b, dtype=torch.float64), atol=1e-7)
        assert region.max_abs_error < 1e-6
    assert not result.affine_on_data
    assert result.unit_active_fraction.tolist() == pytest.approx([0.7, 0.6, 0.7])


def test_extract_regions_region_index_points_at_each_points_region(two_layer_net):
    result = extract_regions(two_layer_net, _points())
    assert result.region_index.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 3]


def test_extract_regions_maps_equal_autograd_jacobian_on_every_point():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 16), nn.BatchNorm1d(16), nn.LeakyReLU(0.1), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    ).eval()
    model[1].running_mean.normal_()
    model[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(500, 4)
    result = extract_regions(model, x)
    assert len(result.regions) > 10  # a genuinely piecewise case
    a = torch.stack([result.regions[i].coefficients for i in result.region_index.tolist()])
    assert torch.allclose(a, _jacobian(model, x), atol=1e-5)
    assert result.max_abs_error < 1e-5
    with torch.no_grad():
        direct = model.float()(x).double()
    assert torch.allclose(result.formula_output, direct, atol=1e-5)


def test_extract_regions_merges_patterns_with_the_same_map():
    model = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0], [1.0]]))
        model[0].bias.copy_(torch.tensor([5.0, 0.0]))
        model[2].weight.copy_(torch.tensor([[2.0, 0.0]]))  # unit 2 never reaches the output
        model[2].bias.zero_()
    result = extract_regions(model, torch.linspace(-1, 1, 10)[:, None])
    assert result.n_patterns == 2 and len(result.regions) == 1
    assert set(result.regions[0].patterns) == {"10", "11"}
    assert result.affine_on_data and result.regions[0].coverage == 1.0
    assert result.regions[0].coefficients.tolist() == [[2.0]]


def test_extract_regions_affine_threshold_decides_affine_on_data(two_layer_net):
    points = torch.cat([torch.tensor([[2.0, 1.5]]).repeat(98, 1), torch.tensor([[-1.0, 0.0]]).repeat(2, 1)])
    assert extract_regions(two_layer_net, points).regions[0].coverage == 0.98
    assert not extract_regions(two_layer_net, points).affine_on_data  # default threshold 0.99
    assert extract_regions(two_layer_net, points, affine_threshold=0.98).affine_on_data


def test_extract_regions_linear_model_is_one_region():
    model = nn.Sequential(nn.Linear(3, 2), nn.Identity())
    result = extract_regions(model, torch.randn(20, 3))
    assert len(result.regions) == 1 and result.affine_on_data
    assert torch.allclose(result.regions[0].coefficients, model[0].weight.double())


def test_extract_regions_to_json_is_flat_for_one_output():
    model = nn.Sequential(nn.Linear(3, 1))
    row = to_json(extract_regions(model, torch.randn(5, 3)))["regions"][0]
    assert len(row["coefficients"]) == 3 and isinstance(row["intercept"], float)


def test_extract_regions_does_not_mutate_inputs(two_layer_net):
    x = _points()
    before = x.clone()
    extract_regions(two_layer_net, x)
    assert torch.equal(x, before)


def test_extract_regions_empty_data_raises(two_layer_net):
    with pytest.raises(DataError, match="non-empty batch"):
        extract_regions(two_layer_net, torch.zeros(0, 2))


def test_extract_regions_bad_threshold_raises(two_layer_net):
    with pytest.raises(ConfigError, match="affine_threshold must be in"):
        extract_regions(two_layer_net, _points(), affine_threshold=0.0)


def test_extract_regions_tanh_network_raises():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    with pytest.raises(UnsupportedModelError, match="Tanh, which is not piecewise linear"):
        extract_regions(model, torch.randn(4, 2))


def test_extract_regions_nan_input_names_the_index(two_layer_net):
    x = _points()
    x[4, 1] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in x: 1 of 20 \(1 nan\); the first is nan at "
                       r"index \(4, 1\)"):
        extract_regions(two_layer_net, x)


def test_extract_regions_inf_weights_name_the_layer(two_layer_net):
    with torch.no_grad():
        two_layer_net.fc1.bias[0] = float("inf")
    with pytest.raises(DataError, match=r"weights of layer 'fc1' \(bias\): .*the first is inf at index \(0,\)"):
        extract_regions(two_layer_net, _points())
