"""Random transformations that make visualisations robust: pad, jitter, scale, rotate, crop.

Every transform is a small callable `t(images, noise) -> images` over a batch
(batch, channel, height, width). `noise` holds `t.n_random` uniform numbers in [0, 1)
per row, which the renderer draws from each row's own generator, so a row's
transformations do not depend on the batch it sits in. `compose(...)` chains
transforms (after `lucent/optvis/transform.py`) and fuses consecutive affine ones
(jitter, scale, rotate) into a single `affine_grid` + `grid_sample` call per step.

Example:
    >>> transforms = compose(pad(2), jitter(2), random_scale(0.9, 1.1), random_rotate(10), crop(2))
    >>> transforms(images, torch.rand(images.shape[0], transforms.n_random)).shape == images.shape
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mechscope.errors import ConfigError

__all__ = [
    "Transform",
    "compose",
    "crop",
    "jitter",
    "pad",
    "random_rotate",
    "random_scale",
    "standard_transforms",
]


class Transform:
    """Maps images (batch, channel, height, width) and per-row noise (batch, n_random) to images."""

    n_random: int = 0  # uniform numbers each row needs per call
    description: str = "identity"

    def __call__(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__()")

    def __repr__(self) -> str:
        return self.description


class _Affine(Transform):
    """A random affine map of each row, applied by sampling with `grid_sample`."""

    def matrix(self, noise: Tensor, height: int, width: int) -> Tensor:
        """(batch, 3, 3) map from output to input pixel offsets (about the centre)."""
        raise NotImplementedError

    def __call__(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        return _resample(images, [self], _noise(noise, images, self.n_random))


class _Jitter(_Affine):
    def __init__(self, pixels: int) -> None:
        self.pixels = _non_negative_int(pixels, "jitter pixels")
        self.n_random = 2
        self.description = f"jitter({pixels})"

    def matrix(self, noise: Tensor, height: int, width: int) -> Tensor:
        shift = torch.floor(noise * (2 * self.pixels + 1)) - self.pixels  # (batch, 2) whole pixels
        out = torch.eye(3, dtype=noise.dtype, device=noise.device).repeat(noise.shape[0], 1, 1)
        out[:, 0, 2], out[:, 1, 2] = shift[:, 0], shift[:, 1]
        return out


class _Scale(_Affine):
    def __init__(self, low: float, high: float) -> None:
        if not (0 < low <= high):
            raise ConfigError(f"random_scale needs 0 < low <= high, got low={low!r}, high={high!r}.")
        self.low, self.high = float(low), float(high)
        self.n_random = 1
        self.description = f"random_scale({low:g}, {high:g})"

    def matrix(self, noise: Tensor, height: int, width: int) -> Tensor:
        factor = self.low + (self.high - self.low) * noise[:, 0]
        out = torch.eye(3, dtype=noise.dtype, device=noise.device).repeat(noise.shape[0], 1, 1)
        out[:, 0, 0], out[:, 1, 1] = 1.0 / factor, 1.0 / factor  # sampling at x / s magnifies by s
        return out


class _Rotate(_Affine):
    def __init__(self, degrees: float) -> None:
        if not (isinstance(degrees, (int, float)) and 0 <= degrees <= 180):
            raise ConfigError(f"random_rotate needs 0 <= degrees <= 180, got {degrees!r}.")
        self.degrees = float(degrees)
        self.n_random = 1
        self.description = f"random_rotate({degrees:g})"

    def matrix(self, noise: Tensor, height: int, width: int) -> Tensor:
        angle = (2 * noise[:, 0] - 1) * math.radians(self.degrees)
        cos, sin = torch.cos(angle), torch.sin(angle)
        out = torch.eye(3, dtype=noise.dtype, device=noise.device).repeat(noise.shape[0], 1, 1)
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = cos, -sin, sin, cos
        return out


class _Pad(Transform):
    def __init__(self, pixels: int, value: float) -> None:
        self.pixels = _non_negative_int(pixels, "pad pixels")
        self.value = float(value)
        self.description = f"pad({pixels}, value={value:g})"

    def __call__(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        p = self.pixels
        return F.pad(images, (p, p, p, p), mode="constant", value=self.value) if p else images


class _Crop(Transform):
    def __init__(self, pixels: int) -> None:
        self.pixels = _non_negative_int(pixels, "crop pixels")
        self.description = f"crop({pixels})"

    def __call__(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        p = self.pixels
        h, w = images.shape[-2:]
        if 2 * p >= min(h, w):
            raise ConfigError(f"crop({p}) would remove the whole {h}x{w} image; crop fewer pixels.")
        return images[..., p : h - p, p : w - p] if p else images


class _Compose(Transform):
    def __init__(self, transforms: Sequence[Transform]) -> None:
        flat: list[Transform] = []
        for t in transforms:
            if not isinstance(t, Transform):
                raise ConfigError(f"compose takes transforms such as jitter(2), got {type(t).__name__}: {t!r}.")
            flat.extend(t.transforms if isinstance(t, _Compose) else [t])
        self.transforms: list[Transform] = flat
        self.n_random = sum(t.n_random for t in flat)
        self.description = f"compose({', '.join(t.description for t in flat)})"

    def __call__(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        noise = _noise(noise, images, self.n_random)
        start, run = 0, 0
        affine: list[_Affine] = []
        for t in self.transforms:
            if isinstance(t, _Affine):
                affine.append(t)
                run += t.n_random
                continue
            if affine:
                images = _resample(images, affine, noise[:, start : start + run])
                start, run, affine = start + run, 0, []
            images = t(images, noise[:, start : start + t.n_random])
            start += t.n_random
        if affine:
            images = _resample(images, affine, noise[:, start : start + run])
        return images


def pad(pixels: int, *, value: float = 0.0) -> Transform:
    """Pad every side with a constant (e.g. the data's background), giving jitter room."""
    return _Pad(pixels, value)


def crop(pixels: int) -> Transform:
    """Remove `pixels` from every side (undo `pad` so the model sees its input size)."""
    return _Crop(pixels)


def jitter(pixels: int) -> Transform:
    """Shift each row by whole pixels, uniform in -pixels..pixels along each axis."""
    return _Jitter(pixels)


def random_scale(low: float = 0.9, high: float = 1.1) -> Transform:
    """Zoom each row about its centre by a factor uniform in [low, high]."""
    return _Scale(low, high)


def random_rotate(degrees: float = 10.0) -> Transform:
    """Rotate each row about its centre by an angle uniform in [-degrees, degrees]."""
    return _Rotate(degrees)


def compose(*transforms: Transform) -> Transform:
    """Apply transforms left to right; consecutive affine ones share one resampling."""
    return _Compose(transforms)


def standard_transforms(image_size: int, *, background: float = 0.0) -> Transform:
    """Lucid's recipe scaled to the image: pad, jitter, scale, rotate, jitter, crop back.

    For 28x28 inputs: pad 2, jitter 2, scale 0.9-1.1, rotate +-10 degrees, jitter 1, crop 2.
    Images of 8x8 or less get pad 1, jitter 1, scale 0.95-1.05, rotate +-5 degrees.

    Args:
        image_size: Height (== width) of the model's input.
        background: Value of the padding (the data's background, 0 for digits).
    """
    if image_size <= 12:
        return compose(pad(1, value=background), jitter(1), random_scale(0.95, 1.05), random_rotate(5), crop(1))
    border = max(1, round(image_size / 14))
    return compose(
        pad(border, value=background),
        jitter(border),
        random_scale(0.9, 1.1),
        random_rotate(10),
        jitter(max(1, border // 2)),
        crop(border),
    )


def _resample(images: Tensor, affine: Sequence[_Affine], noise: Tensor) -> Tensor:
    """Apply the affine maps in order with one `grid_sample`; outside samples repeat the border."""
    b, _, h, w = images.shape
    total = torch.eye(3, dtype=images.dtype, device=images.device).expand(b, 3, 3)
    start = 0
    for t in affine:
        # Output pixel p of t's result samples t's input at M_t p, so the first map applies outermost.
        total = total @ t.matrix(noise[:, start : start + t.n_random].to(images), h, w)
        start += t.n_random
    # Pixel offsets about the centre -> normalised coordinates (align_corners=False).
    to_norm = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0], dtype=images.dtype, device=images.device))
    to_pix = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0], dtype=images.dtype, device=images.device))
    theta = (to_norm @ total @ to_pix)[:, :2]  # (batch, 2, 3)
    grid = F.affine_grid(theta, [b, images.shape[1], h, w], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _noise(noise: Tensor | None, images: Tensor, n: int) -> Tensor:
    if noise is None:
        return torch.rand(images.shape[0], n, device=images.device)
    if noise.dim() != 2 or noise.shape[0] != images.shape[0] or noise.shape[1] < n:
        raise ConfigError(
            f"noise must be (batch={images.shape[0]}, {n}) uniform numbers, got {tuple(noise.shape)}."
        )
    return noise


def _non_negative_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}.")
    return value
