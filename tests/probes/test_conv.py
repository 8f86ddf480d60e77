from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError, DataError
from mechscope.probes import ConvProbe


def _fitted(**params) -> ConvProbe:
    x = torch.randn(40, 3, 3, generator=torch.Generator().manual_seed(0))
    return ConvProbe(max_epochs=2, **params).fit(x, torch.arange(40) % 2)


def test_conv_probe_kernel_responses_exact_values():
    probe = _fitted(kernel_size=(2, 2), n_kernels=2)
    with torch.no_grad():
        probe.network_.kernels.weight.copy_(torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]], [[[0.5, 0.5], [0.5, 0.5]]]]))
    image = torch.arange(9.0).reshape(1, 3, 3)  # [[0 1 2] [3 4 5] [6 7 8]]
    responses = probe.kernel_responses(image)
    assert responses.shape == (1, 2, 2, 2)
    assert responses[0, 0].tolist() == [[-4.0, -4.0], [-4.0, -4.0]]  # x[i, j] - x[i+1, j+1]
    assert responses[0, 1].tolist() == [[4.0, 6.0], [10.0, 12.0]]  # half the 2 x 2 window sums


def test_conv_probe_pools_max_over_kernels_then_tanh():
    probe = _fitted(kernel_size=(2, 2), n_kernels=3, dropout=0.0)
    image = torch.randn(5, 3, 3, generator=torch.Generator().manual_seed(1))
    pooled = torch.tanh(probe.kernel_responses(image).amax(dim=1)).flatten(1)  # (batch, 4 positions)
    expected = probe.network_.head(pooled)
    assert torch.allclose(probe.decision_function(image), expected, atol=1e-6)


def test_conv_probe_channel_pooling_keeps_every_kernel_map():
    probe = _fitted(kernel_size=(2, 1), n_kernels=4, pooling="channels", hidden_sizes=(7,))
    first = probe.network_.head[0]
    assert first.in_features == 4 * 2 * 3  # k maps of (3 - 2 + 1) x (3 - 1 + 1) positions
    assert probe.kernels_.shape == (4, 1, 2, 1)


def test_conv_probe_reads_multichannel_images():
    x = torch.randn(30, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    probe = ConvProbe(kernel_size=3, max_epochs=2).fit(x, torch.arange(30) % 3)
    assert probe.kernels_.shape == (3, 2, 3, 3)
    assert probe.kernel_responses(x[:2]).shape == (2, 3, 2, 2)


def test_conv_probe_kernel_larger_than_image_raises():
    with pytest.raises(ConfigError, match="kernel_size \\(4, 2\\) does not fit .* height 3 and width 3"):
        ConvProbe(kernel_size=(4, 2)).fit(torch.randn(10, 3, 3), torch.arange(10) % 2)


def test_conv_probe_flat_activations_raise():
    with pytest.raises(DataError, match="reads activation images"):
        ConvProbe().fit(torch.randn(10, 9), torch.arange(10) % 2)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"pooling": "mean"}, "pooling must be 'kernels'"),
        ({"n_kernels": 0}, "n_kernels must be a positive integer"),
        ({"kernel_size": (2, 0)}, "kernel_size must be a positive int or a pair"),
    ],
)
def test_conv_probe_bad_hyperparameters_raise(params, message):
    with pytest.raises(ConfigError, match=message):
        ConvProbe(**params).fit(torch.randn(10, 3, 3), torch.arange(10) % 2)


def test_conv_probe_kernels_before_fit_raise_not_fitted():
    from mechscope.errors import NotFittedError

    with pytest.raises(NotFittedError, match="ConvProbe is not fitted"):
        ConvProbe().kernels_
