"""Image parameterisations: pixels or a 1/f-scaled Fourier spectrum, kept in the data's range.

Each parameterisation returns `(params, image_fn)` as in `lucent/optvis/param/spatial.py`:
`params` are the leaf tensors an optimiser updates and `image_fn()` builds the images
(batch, channel, height, width) inside the data's valid range (a sigmoid, or a clamp).
`InputSpace.normalize` then maps images to model inputs the way the training data was
normalised. Any channel count works; colour decorrelation is optional.

Row i of a batch is initialised from its own seed, so a row's start does not depend on
the batch it sits in (batched and single renders agree).

Example:
    >>> space = InputSpace.from_data(data.x_train)          # shape (1, 28, 28), range [0, 1]
    >>> params, image_fn = fft_image(space, 4, seeds=[0, 1, 2, 3])
    >>> image_fn().shape
    torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import torch
from torch import Tensor

from mechscope.data.finite import check_finite
from mechscope.errors import ConfigError, DataError

__all__ = [
    "IMAGENET_COLOR_SQRT",
    "ImageFn",
    "Init",
    "InputSpace",
    "ParamFactory",
    "Squash",
    "channel_correlation_sqrt",
    "fft_image",
    "pixel_image",
]

ImageFn = Callable[[], Tensor]
"""Builds the current images (batch, channel, height, width) from the parameters."""

Init = Literal["random", "zeros"]
Squash = Literal["sigmoid", "clamp"]

IMAGENET_COLOR_SQRT = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))
"""Square root (U * sqrt(S)) of ImageNet's RGB covariance, the matrix Lucid decorrelates with."""


class ParamFactory(Protocol):
    """Builds `(params, image_fn)` for `batch` rows, row i seeded by `seeds[i]`."""

    def __call__(
        self, batch: int, *, seeds: Sequence[int], device: torch.device | None = None
    ) -> tuple[list[Tensor], ImageFn]: ...


@dataclass(frozen=True)
class InputSpace:
    """Shape, valid pixel range and normalisation of a model's input images.

    Example:
        >>> InputSpace((3, 32, 32), mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    """

    shape: tuple[int, int, int]  # (channel, height, width) of one input image
    low: float | tuple[float, ...] = 0.0  # smallest valid pixel value, one for all channels or per channel
    high: float | tuple[float, ...] = 1.0  # largest valid pixel value
    mean: tuple[float, ...] | None = None  # per-channel mean subtracted before the model (None: none)
    std: tuple[float, ...] | None = None  # per-channel std divided by before the model (None: none)

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or any(not isinstance(d, int) or d < 1 for d in self.shape):
            raise ConfigError(f"shape must be (channel, height, width) of positive ints, got {self.shape!r}.")
        low, high = self._per_channel(self.low, "low"), self._per_channel(self.high, "high")
        if any(lo >= hi for lo, hi in zip(low, high)):
            raise ConfigError(f"low must be below high in every channel, got low={self.low!r}, high={self.high!r}.")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                self._per_channel(value, name)
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ConfigError(f"std must be positive, got {self.std!r}.")

    @classmethod
    def from_data(
        cls, x: Tensor, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
    ) -> InputSpace:
        """Take the shape and the per-channel value range from example images (batch, channel, height, width).

        Args:
            x: Images in the range the data lives in, before any normalisation.
            mean: Per-channel mean the model's training inputs were normalised with.
            std: Per-channel std the model's training inputs were normalised with.

        Raises:
            DataError: `x` is not a 4-D float batch, holds NaN/inf (no range to read), or a
                channel is constant.
        """
        if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point() or x.shape[0] == 0:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise DataError(f"InputSpace.from_data needs float images (batch, channel, height, width), got {shape}.")
        check_finite(x, "the images given to InputSpace.from_data")
        low = x.amin(dim=(0, 2, 3)).tolist()
        high = x.amax(dim=(0, 2, 3)).tolist()
        if any(lo >= hi for lo, hi in zip(low, high)):
            raise DataError(f"Every channel must vary to give a range, got low={low}, high={high}.")
        c, h, w = (int(d) for d in x.shape[1:])
        return cls(
            (c, h, w),
            tuple(low),
            tuple(high),
            None if mean is None else tuple(float(m) for m in mean),
            None if std is None else tuple(float(s) for s in std),
        )

    @property
    def channels(self) -> int:
        """Channels of one image."""
        return self.shape[0]

    def bounds(self, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        """Low and high as (1, channel, 1, 1) tensors on `device` (default the CPU)."""
        device = torch.device("cpu") if device is None else device
        low = torch.tensor(self._per_channel(self.low, "low"), device=device)
        high = torch.tensor(self._per_channel(self.high, "high"), device=device)
        return low.view(1, -1, 1, 1), high.view(1, -1, 1, 1)

    def squash(self, raw: Tensor, how: Squash = "sigmoid") -> Tensor:
        """Map unconstrained values into [low, high]: a sigmoid, or a clamp."""
        low, high = self.bounds(raw.device)
        if how == "sigmoid":
            return low + (high - low) * torch.sigmoid(raw)
        if how == "clamp":
            return torch.maximum(torch.minimum(raw, high), low)
        raise ConfigError(f"squash must be one of {get_args(Squash)!r}, got {how!r}.")

    def normalize(self, images: Tensor) -> Tensor:
        """Turn images in the valid range into model inputs (subtract mean, divide by std)."""
        if self.mean is not None:
            images = images - torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        if self.std is not None:
            images = images / torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return images

    def _per_channel(self, value: float | Sequence[float], name: str) -> tuple[float, ...]:
        if isinstance(value, (int, float)):
            return (float(value),) * self.shape[0]
        values = tuple(float(v) for v in value)
        if len(values) != self.shape[0]:
            raise ConfigError(
                f"{name} needs one value or one per channel ({self.shape[0]}), got {len(values)}: {value!r}."
            )
        return values


def pixel_image(
    space: InputSpace,
    batch: int = 1,
    *,
    init: Init = "random",
    sd: float = 0.01,
    squash: Squash = "sigmoid",
    seeds: Sequence[int] | None = None,
    device: torch.device | None = None,
) -> tuple[list[Tensor], ImageFn]:
    """Optimise the pixels directly.

    Args:
        space: Shape and range of the images.
        batch: Rows to render.
        init: "zeros" (every raw value 0: the mid-range grey under the sigmoid, `low` under
            the clamp) or "random" (normal noise of std `sd` around that).
        sd: Std of the random start, in raw (pre-squash) units.
        squash: "sigmoid" (smooth, never leaves the range) or "clamp".
        seeds: One seed per row (default 0..batch-1).
        device: Where the parameters live (default CPU).

    Returns:
        ([raw pixels (batch, channel, height, width)], image_fn).
    """
    _check_choice(init, Init, "init")
    _check_choice(squash, Squash, "squash")
    raw = _start((batch, *space.shape), init, sd, _seeds(seeds, batch)).to(device).requires_grad_(True)

    def image_fn() -> Tensor:
        return space.squash(raw, squash)

    return [raw], image_fn


def fft_image(
    space: InputSpace,
    batch: int = 1,
    *,
    init: Init = "random",
    sd: float = 0.01,
    decay_power: float = 1.0,
    decorrelate: bool | Tensor = False,
    seeds: Sequence[int] | None = None,
    device: torch.device | None = None,
) -> tuple[list[Tensor], ImageFn]:
    """Optimise a Fourier spectrum whose amplitudes are scaled by 1/f**decay_power.

    Low frequencies move faster than high ones, which damps the high-frequency patterns
    plain pixel ascent produces (Olah et al., 2017, "Feature Visualization", Distill).
    Values are squashed into the range with a sigmoid.

    Args:
        space: Shape and range of the images.
        batch: Rows to render.
        init: "zeros" (a flat mid-range image) or "random" (spectrum noise of std `sd`).
        sd: Std of the random spectrum.
        decay_power: Exponent of the 1/f scaling (0 is plain white noise).
        decorrelate: True mixes 3 channels with Lucid's ImageNet colour matrix; a (channel,
            channel) tensor (e.g. from `channel_correlation_sqrt`) mixes any channel count.
        seeds: One seed per row (default 0..batch-1).
        device: Where the parameters live (default CPU).

    Returns:
        ([spectrum (batch, channel, height, width // 2 + 1, 2)], image_fn).
    """
    _check_choice(init, Init, "init")
    c, h, w = space.shape
    rows, cols = torch.fft.fftfreq(h, device="cpu"), torch.fft.rfftfreq(w, device="cpu")
    freqs = torch.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2)
    scale = (1.0 / torch.clamp(freqs, min=1.0 / max(h, w)) ** decay_power).to(device)  # (height, width // 2 + 1)
    spectrum = _start((batch, c, *freqs.shape, 2), init, sd, _seeds(seeds, batch)).to(device).requires_grad_(True)
    mix = _color_matrix(decorrelate, c, device)

    def image_fn() -> Tensor:
        scaled = torch.view_as_complex(spectrum) * scale
        image = torch.fft.irfft2(scaled, s=(h, w), norm="ortho") / 4.0  # Lucid's scale so the start is near grey
        if mix is not None:
            image = torch.einsum("dc,bchw->bdhw", mix, image)
        return space.squash(image, "sigmoid")

    return [spectrum], image_fn


def channel_correlation_sqrt(x: Tensor) -> Tensor:
    """Square root (U * sqrt(S), columns scaled to max norm 1) of the data's channel covariance.

    Pass the result as `fft_image(..., decorrelate=matrix)` to optimise in decorrelated colour space.

    Args:
        x: Images (batch, channel, height, width).

    Returns:
        (channel, channel) mixing matrix.
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise DataError(f"channel_correlation_sqrt needs images (batch, channel, height, width), got {x!r}.")
    pixels = x.permute(1, 0, 2, 3).reshape(x.shape[1], -1).double()  # (channel, batch*height*width)
    cov = torch.cov(pixels).reshape(x.shape[1], x.shape[1])
    values, vectors = torch.linalg.eigh(cov)
    root = vectors * values.clamp(min=0).sqrt()
    return (root / root.norm(dim=0).max().clamp(min=1e-12)).float()


def _color_matrix(decorrelate: bool | Tensor, channels: int, device: torch.device | None) -> Tensor | None:
    if isinstance(decorrelate, Tensor):
        if decorrelate.shape != (channels, channels):
            raise ConfigError(
                f"decorrelate matrix must be ({channels}, {channels}) for {channels}-channel images, "
                f"got {tuple(decorrelate.shape)}."
            )
        return decorrelate.detach().float().to(device)
    if not decorrelate:
        return None
    if channels != 3:
        raise ConfigError(
            f"decorrelate=True uses the ImageNet RGB matrix and needs 3 channels, got {channels}; pass "
            "decorrelate=channel_correlation_sqrt(x) for other channel counts."
        )
    matrix = torch.tensor(IMAGENET_COLOR_SQRT, device="cpu")
    return (matrix / matrix.norm(dim=0).max()).to(device)


def _start(shape: tuple[int, ...], init: Init, sd: float, seeds: list[int]) -> Tensor:
    if init == "zeros":
        return torch.zeros(shape, device="cpu")
    if not (isinstance(sd, (int, float)) and math.isfinite(sd) and sd >= 0):
        raise ConfigError(f"sd must be a non-negative number, got {sd!r}.")
    # CPU generators, one per row: the same start on every device.
    rows = [torch.randn(shape[1:], generator=torch.Generator().manual_seed(s), device="cpu") for s in seeds]
    return torch.stack(rows) * sd


def _seeds(seeds: Sequence[int] | None, batch: int) -> list[int]:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}.")
    values = list(range(batch)) if seeds is None else [int(s) for s in seeds]
    if len(values) != batch:
        raise ConfigError(f"seeds needs one seed per row ({batch}), got {len(values)}.")
    return values


def _check_choice(value: str, options: object, name: str) -> None:
    choices = get_args(options)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices!r}, got {value!r}.")
