from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError, DataError
from mechscope.featurevis import InputSpace
from mechscope.featurevis.param import channel_correlation_sqrt, fft_image, pixel_image

SPACE = InputSpace((1, 8, 8))


def test_input_space_from_data_reads_shape_and_channel_ranges():
    x = torch.stack([torch.full((2, 3, 3), 0.0), torch.full((2, 3, 3), 1.0)])
    x[1, 1] = 5.0
    space = InputSpace.from_data(x, mean=(0.5, 2.0), std=(0.5, 1.0))
    assert space.shape == (2, 3, 3)
    assert space.low == (0.0, 0.0) and space.high == (1.0, 5.0)
    images = torch.ones(1, 2, 3, 3)
    assert torch.allclose(space.normalize(images)[0, :, 0, 0], torch.tensor([1.0, -1.0]))


def test_input_space_rejects_bad_values():
    with pytest.raises(ConfigError, match="low must be below high"):
        InputSpace((1, 4, 4), low=1.0, high=0.0)
    with pytest.raises(ConfigError, match="one per channel"):
        InputSpace((3, 4, 4), mean=(0.5, 0.5))
    with pytest.raises(DataError, match="must vary"):
        InputSpace.from_data(torch.zeros(2, 1, 4, 4))
    with pytest.raises(DataError, match="float images"):
        InputSpace.from_data(torch.zeros(2, 16))


def test_pixel_zeros_start_at_mid_grey_with_sigmoid_and_low_with_clamp():
    _, image_fn = pixel_image(SPACE, 2, init="zeros")
    assert torch.all(image_fn() == 0.5)
    _, image_fn = pixel_image(InputSpace((1, 8, 8), low=-1.0, high=3.0), 1, init="zeros", squash="clamp")
    assert torch.all(image_fn() == 0.0)


@pytest.mark.parametrize("squash", ["sigmoid", "clamp"])
def test_pixel_images_stay_in_range_for_any_raw_value(squash):
    space = InputSpace((2, 4, 4), low=(0.0, -1.0), high=(1.0, 2.0))
    params, image_fn = pixel_image(space, 3, squash=squash)
    with torch.no_grad():
        params[0].normal_(0, 100)
    images = image_fn()
    assert images[:, 0].min() >= 0 and images[:, 0].max() <= 1
    assert images[:, 1].min() >= -1 and images[:, 1].max() <= 2


def test_params_are_leaves_that_receive_gradients():
    for build in (pixel_image, fft_image):
        params, image_fn = build(SPACE, 2)
        assert all(p.is_leaf and p.requires_grad for p in params)
        image_fn().sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize(("channels", "size"), [(1, 8), (2, 7), (3, 28), (5, 6)])
def test_fft_images_have_any_channel_count_and_stay_in_range(channels, size):
    space = InputSpace((channels, size, size))
    params, image_fn = fft_image(space, 2, sd=5.0)
    images = image_fn()
    assert images.shape == (2, channels, size, size)
    assert images.min() >= 0 and images.max() <= 1
    assert params[0].shape == (2, channels, size, size // 2 + 1, 2)


def test_fft_zero_init_is_flat_grey():
    _, image_fn = fft_image(SPACE, 1, init="zeros")
    assert torch.allclose(image_fn(), torch.full((1, 1, 8, 8), 0.5))


def test_fft_scaling_puts_more_energy_in_low_frequencies():
    space = InputSpace((1, 32, 32), low=-100.0, high=100.0)  # wide range: the sigmoid is nearly linear
    _, image_fn = fft_image(space, 16, sd=1.0)
    power = torch.fft.rfft2(image_fn().detach() - image_fn().detach().mean()).abs().pow(2).mean(dim=(0, 1))
    _, flat_fn = fft_image(space, 16, sd=1.0, decay_power=0.0)
    flat = torch.fft.rfft2(flat_fn().detach() - flat_fn().detach().mean()).abs().pow(2).mean(dim=(0, 1))
    low, high = (slice(1, 4), slice(1, 4)), (slice(12, 17), slice(12, 17))
    assert power[low].mean() / power[high].mean() > 20 * flat[low].mean() / flat[high].mean()


@pytest.mark.parametrize("build", [pixel_image, fft_image])
def test_row_start_depends_on_its_seed_not_the_batch(build):
    _, batch_fn = build(SPACE, 3, seeds=[5, 6, 7])
    _, single_fn = build(SPACE, 1, seeds=[6])
    assert torch.equal(batch_fn()[1], single_fn()[0])
    assert not torch.equal(batch_fn()[0], batch_fn()[1])


def test_decorrelate_needs_three_channels_or_a_matrix():
    with pytest.raises(ConfigError, match="needs 3 channels"):
        fft_image(SPACE, decorrelate=True)
    _, image_fn = fft_image(InputSpace((3, 8, 8)), 2, decorrelate=True)
    assert image_fn().shape == (2, 3, 8, 8)
    x = torch.rand(10, 2, 8, 8)
    x[:, 1] = 0.5 * x[:, 0] + 0.1
    matrix = channel_correlation_sqrt(x)
    assert matrix.shape == (2, 2) and torch.isclose(matrix.norm(dim=0).max(), torch.tensor(1.0))
    _, image_fn = fft_image(InputSpace((2, 8, 8)), 1, decorrelate=matrix)
    assert image_fn().shape == (1, 2, 8, 8)
    with pytest.raises(ConfigError, match=r"must be \(2, 2\)"):
        fft_image(InputSpace((2, 8, 8)), decorrelate=torch.eye(3))


def test_bad_options_raise_config_error():
    with pytest.raises(ConfigError, match="init must be one of"):
        pixel_image(SPACE, init="ones")
    with pytest.raises(ConfigError, match="one seed per row"):
        pixel_image(SPACE, 2, seeds=[1])
    with pytest.raises(ConfigError, match="batch must be a positive integer"):
        fft_image(SPACE, 0)


def test_input_space_from_data_rejects_nan_images():
    x = torch.rand(4, 2, 3, 3)
    x[2, 1, 0, 2] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in the images given to InputSpace\.from_data: 1 of 72 "
                       r"\(1 nan\); the first is nan at index \(2, 1, 0, 2\)"):
        InputSpace.from_data(x)
