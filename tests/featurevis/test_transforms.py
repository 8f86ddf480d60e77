from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError
from mechscope.featurevis import standard_transforms
from mechscope.featurevis.transforms import compose, crop, jitter, pad, random_rotate, random_scale


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 2, 9, 9, generator=torch.Generator().manual_seed(0))


def test_jitter_shifts_by_whole_pixels_exactly(images):
    # noise 0.99 with 2 pixels -> +2 along x; noise 0.5 -> 0 along y.
    shifted = jitter(2)(images, torch.tensor([[0.99, 0.5]] * 3))
    assert torch.allclose(shifted[..., :, :-2], images[..., :, 2:], atol=1e-6)


def test_zero_jitter_unit_scale_and_zero_rotation_are_identity(images):
    transforms = compose(jitter(1), random_scale(1.0, 1.0), random_rotate(0))
    assert transforms.n_random == 4
    assert torch.allclose(transforms(images, torch.full((3, 4), 0.5)), images, atol=1e-6)


def test_rotation_by_90_degrees_matches_rot90(images):
    rotated = random_rotate(90)(images, torch.ones(3, 1))
    assert torch.allclose(rotated, torch.rot90(images, 1, dims=(2, 3)), atol=1e-5)


def test_scale_zooms_about_the_centre():
    image = torch.zeros(1, 1, 9, 9)
    image[..., 4, 4] = 1.0
    image[..., 4, 6] = 1.0  # two pixels to the right of the centre
    zoomed = random_scale(2.0, 2.0)(image, torch.zeros(1, 1))
    assert zoomed[0, 0, 4, 4] == pytest.approx(1.0)
    assert zoomed[0, 0, 4, 8] == pytest.approx(1.0)  # now four pixels from the centre


def test_pad_then_crop_restores_the_image(images):
    padded = pad(3, value=0.25)(images)
    assert padded.shape == (3, 2, 15, 15) and torch.all(padded[..., 0, :] == 0.25)
    assert torch.equal(crop(3)(padded), images)


def test_compose_fuses_consecutive_affine_maps(images):
    # jitter(2) by +1 then jitter(3) by +2 along x is one shift by +3.
    noise = torch.tensor([[0.7, 0.5, 0.8, 0.5]] * 3)
    both = compose(jitter(2), jitter(3))(images, noise)
    assert torch.allclose(both[..., :, :-3], images[..., :, 3:], atol=1e-6)


def test_each_row_depends_only_on_its_own_noise(images):
    transforms = standard_transforms(9)
    noise = torch.rand(3, transforms.n_random, generator=torch.Generator().manual_seed(1))
    batched = transforms(images, noise)
    alone = transforms(images[1:2], noise[1:2])
    assert torch.allclose(batched[1:2], alone, atol=1e-6)


@pytest.mark.parametrize("size", [8, 28])
def test_standard_transforms_keep_the_image_size_and_gradients(size):
    images = torch.rand(2, 1, size, size, requires_grad=True)
    transforms = standard_transforms(size)
    out = transforms(images, torch.rand(2, transforms.n_random))
    assert out.shape == images.shape
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_descriptions_list_the_chain():
    assert repr(compose(pad(1), jitter(2))) == "compose(pad(1, value=0), jitter(2))"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: jitter(-1), "jitter pixels must be a non-negative integer"),
        (lambda: random_scale(1.2, 0.8), "0 < low <= high"),
        (lambda: random_rotate(400), "0 <= degrees <= 180"),
        (lambda: compose(jitter(1), "flip"), "compose takes transforms"),
    ],
)
def test_bad_arguments_raise_config_error(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_crop_too_large_and_short_noise_raise(images):
    with pytest.raises(ConfigError, match="would remove the whole"):
        crop(5)(images)
    with pytest.raises(ConfigError, match="noise must be"):
        jitter(1)(images, torch.zeros(3, 1))
