"""Activation images: several layers' activations stacked into one (batch, height, width) image.

The modular-addition article stacks the five hidden layers of five units into a 5 x 5
image, one row per layer, and lets a convolutional probe look at it. Layers of unequal
width are padded on the right with `pad_value`; the image then says so (`padded`,
`mask`, `notes`) and a warning is emitted.

Example:
    >>> image = activation_image(model, ["hidden.0", "hidden.1", "hidden.2"], data.x_test)
    >>> image.images.shape
    torch.Size([10000, 3, 5])
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from mechscope.capture import record
from mechscope.capture.names import LayerSpec, resolve_layers
from mechscope.data.finite import check_finite
from mechscope.errors import DataError

__all__ = ["ActivationImage", "activation_image", "stack_activations"]


@dataclass(frozen=True)
class ActivationImage:
    """Activations of several layers as rows of one image per example.

    Attributes:
        images: (batch, height, width) float32; row i holds layer i's activations
            (flattened), padded to the widest layer.
        layers: Layer name of each row.
        widths: Real (unpadded) width of each row.
        pad_value: Value written into padded cells.
        decimals: Activations were rounded to this many decimals (None: not rounded).
    """

    json_skip: ClassVar[frozenset[str]] = frozenset({"images", "pad_value", "decimals"})  # JSON: no pixel values
    json_extra: ClassVar[tuple[str, ...]] = ("shape", "padded", "notes")

    images: Tensor
    layers: tuple[str, ...]
    widths: tuple[int, ...]
    pad_value: float = 0.0
    decimals: int | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """(batch, height, width) of `images`."""
        return tuple(self.images.shape)

    @property
    def padded(self) -> bool:
        """True if some rows were padded to the width of the widest layer."""
        return len(set(self.widths)) > 1

    @property
    def mask(self) -> Tensor:
        """(height, width) bool: True where a cell holds a real unit, False where padded."""
        width = self.images.shape[2]
        device = self.images.device
        return torch.arange(width, device=device)[None, :] < torch.tensor(self.widths, device=device)[:, None]

    @property
    def notes(self) -> tuple[str, ...]:
        """Plain-language remarks about how the image was built (padding, rounding)."""
        notes = []
        if self.padded:
            notes.append(_padding_note(self.layers, self.widths, self.pad_value))
        if self.decimals is not None:
            notes.append(f"activations rounded to {self.decimals} decimals")
        return tuple(notes)


def stack_activations(
    acts: Mapping[str, Tensor] | Sequence[Tensor],
    *,
    layers: Sequence[str] | None = None,
    pad_value: float = 0.0,
    decimals: int | None = None,
) -> ActivationImage:
    """Stack recorded activations into an ActivationImage, one row per layer.

    Args:
        acts: Layer name -> activations (batch, ...), or a sequence of tensors (named "0", "1", ...).
        layers: Rows to use, in order; default: every entry of `acts`.
        pad_value: Value for the cells right of a narrower layer.
        decimals: Round activations to this many decimals first (the article uses 2).

    Returns:
        The image; a warning is emitted when layers had to be padded.

    Raises:
        DataError: No layer, layers of different lengths, or NaN/inf activations.
    """
    named = dict(acts) if isinstance(acts, Mapping) else {str(i): a for i, a in enumerate(acts)}
    names = list(named) if layers is None else list(layers)
    if not names:
        raise DataError("no layer to stack; pass at least one layer's activations.")
    missing = [n for n in names if n not in named]
    if missing:
        raise DataError(f"no activations for layer(s) {missing}; recorded: {list(named)}.")
    rows = []
    for name in names:
        value = named[name]
        if not isinstance(value, Tensor) or value.dim() < 1:
            raise DataError(f"activations of layer {name!r} must be a tensor (batch, ...), got {type(value).__name__}.")
        rows.append(value.detach().float().reshape(value.shape[0], -1).cpu())
    lengths = {name: row.shape[0] for name, row in zip(names, rows)}
    if len(set(lengths.values())) > 1:
        raise DataError(f"layers hold different numbers of examples: {lengths}; record them on the same inputs.")
    for name, row in zip(names, rows):
        check_finite(
            row, f"the activations of layer {name!r} (example, unit)",
            fix="The model overflowed on some inputs: check its weights and inputs before probing",
        )
    widths = tuple(int(row.shape[1]) for row in rows)
    width = max(widths)
    images = torch.full((rows[0].shape[0], len(rows), width), float(pad_value), device="cpu")
    for i, row in enumerate(rows):
        images[:, i, : row.shape[1]] = row
    if decimals is not None:
        images = torch.round(images, decimals=decimals)
    image = ActivationImage(images, tuple(names), widths, float(pad_value), decimals)
    if image.padded:
        warnings.warn(_padding_note(image.layers, widths, float(pad_value)), stacklevel=2)
    return image


def activation_image(
    model: nn.Module,
    layers: LayerSpec,
    inputs: Tensor,
    *,
    pad_value: float = 0.0,
    decimals: int | None = None,
    batch_size: int = 4096,
) -> ActivationImage:
    """Run `inputs` through `model` (eval mode, no gradients) and stack the layers' outputs.

    Args:
        model: Any module.
        layers: Dotted layer names, one image row each, in this order.
        inputs: Model inputs (batch, ...).
        pad_value: Value for the cells right of a narrower layer.
        decimals: Round activations to this many decimals (the article uses 2).
        batch_size: Examples per forward pass.

    Raises:
        LayerNameError: A layer does not exist (the message lists close matches).
        DataError: The activations hold NaN/inf.
    """
    names = resolve_layers(model, layers)
    store = record(model, names, inputs, batch_size=batch_size, progress=False)
    acts = {name: store.act(name) for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # re-emitted below with the caller's stack level
        image = stack_activations(acts, layers=names, pad_value=pad_value, decimals=decimals)
    if image.padded:
        warnings.warn(_padding_note(image.layers, image.widths, pad_value), stacklevel=2)
    return image


def _padding_note(layers: Sequence[str], widths: Sequence[int], pad_value: float) -> str:
    sizes = ", ".join(f"{name}: {w}" for name, w in zip(layers, widths))
    return (
        f"layers have unequal widths ({sizes}); narrower rows were padded on the right with {pad_value:g} "
        f"to width {max(widths)} (ActivationImage.mask marks the real units)"
    )
