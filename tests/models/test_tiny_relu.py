from __future__ import annotations

import pytest
import torch

from mechscope.data import function_data
from mechscope.errors import ConfigError, DataError
from mechscope.models import TinyReLU, TinyReLUConfig, build_seeded, train
from mechscope.models.train import default_train_config

pytestmark = pytest.mark.usefixtures("single_thread")


def test_tiny_relu_forward_returns_one_value_per_example():
    model = TinyReLU(TinyReLUConfig(n_inputs=3, hidden=4))
    assert model(torch.zeros(7, 3)).shape == (7,)
    assert [name for name, _ in model.named_modules()] == ["", "fc1", "act", "fc2"]
    assert (model.fc1.in_features, model.fc1.out_features, model.fc2.out_features) == (3, 4, 1)


def test_tiny_relu_computes_w2_relu_w1x_b1_plus_b2():
    model = build_seeded(TinyReLU, TinyReLUConfig(n_inputs=2), seed=0)
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor([[1.0, -2.0]]))
        model.fc1.bias.fill_(0.5)
        model.fc2.weight.fill_(3.0)
        model.fc2.bias.fill_(-1.0)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # 3 * max(0, 1.5) - 1 = 3.5 ; 3 * max(0, -1.5) - 1 = -1
    assert torch.equal(model(x), torch.tensor([3.5, -1.0]))


@pytest.mark.parametrize("seed", range(5))
def test_tiny_relu_init_keeps_the_unit_active_and_the_output_centred(seed):
    model = build_seeded(TinyReLU, TinyReLUConfig(), seed)
    assert 3.0 <= model.fc1.bias.item() <= 5.0
    assert 4.0 <= abs(model.fc2.weight.item()) <= 8.0
    x = torch.randn(100_000, 5, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert model(torch.zeros(1, 5)).item() == pytest.approx(0.0, abs=1e-5)
        assert bool((model.fc1(x) > 0).all())  # no Gaussian input starts in the dead zone


def test_tiny_relu_init_spreads_output_weight_over_hidden_units():
    model = build_seeded(TinyReLU, TinyReLUConfig(hidden=4), seed=0)
    magnitudes = model.fc2.weight.abs()
    assert bool(((magnitudes >= 1.0) & (magnitudes <= 2.0)).all())


def test_tiny_relu_rejects_inputs_of_the_wrong_width():
    with pytest.raises(DataError, match=r"expects inputs of shape \(batch, 5\), got \(2, 4\)"):
        TinyReLU(TinyReLUConfig())(torch.zeros(2, 4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_inputs": 0}, "n_inputs must be a positive integer, got 0"),
        ({"hidden": 1.5}, "hidden must be a positive integer, got 1.5"),
        ({"bias_init": (3.0, 1.0)}, r"bias_init must be a \(low, high\) pair .* got \(3.0, 1.0\)"),
        ({"out_init": (-1.0, 1.0)}, "out_init bounds are magnitudes"),
        ({"bias_init": (1.0, float("nan"))}, "bias_init must be"),
    ],
)
def test_tiny_relu_config_rejects_invalid_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TinyReLUConfig(**kwargs)


@pytest.mark.parametrize("function", ["sum", "weighted"])
def test_tiny_relu_reaches_article_mse_and_reads_as_the_formula(function):
    data = function_data(function, n_train=100_000, n_test=10_000, seed=0)
    model = build_seeded(TinyReLU, TinyReLUConfig(), seed=0)
    result = train(model, data, default_train_config(model, data), progress=False)
    assert result.metrics["test_mse"] <= 1e-4  # the article reports 1.1e-4 (sum) and 1.0e-4 (weighted)
    w1, b1 = model.fc1.weight.detach()[0], model.fc1.bias.detach()[0]
    w2, b2 = model.fc2.weight.detach()[0, 0], model.fc2.bias.detach()[0]
    assert torch.allclose(w2 * w1, torch.tensor(data.extras["coefficients"]), atol=1e-3)
    assert float(w2 * b1 + b2) == pytest.approx(data.extras["constant"], abs=1e-3)


def test_tiny_relu_learns_the_product_in_log_space():
    data = function_data("product", n_train=100_000, n_test=10_000, seed=0)
    model = build_seeded(TinyReLU, TinyReLUConfig(), seed=0)
    result = train(model, data, default_train_config(model, data), progress=False)
    assert result.metrics["test_mse"] <= 1e-4
    model.eval()
    with torch.no_grad():
        product = torch.exp(model(torch.log(data.extras["x_test_raw"]))).double()
    raw_mse = float(((product - data.extras["y_test_raw"].double()) ** 2).mean())
    assert raw_mse <= 1e-6  # the article reports 7.5e-9 in the raw (exp) space
