"""Pixel images, not figures: one PNG pixel per value, encoded straight from the values with Pillow.

Rendered units and report thumbnails are written at their own resolution (a page scales
them up with pixelated rendering), with the pixel values `matplotlib.pyplot.imsave` gives
but without a figure. Figures are written with `save_figure`.

Example:
    >>> write_image_pngs(result.images, "relu2", [f"unit_{u:03d}.png" for u in range(8)])
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, PngImagePlugin
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.atomic import owned_png, write_file, writing_folder
from mechscope.errors import DataError
from mechscope.plots._style import IMAGE, PNG_METADATA

__all__ = ["image_png_bytes", "write_image_png", "write_image_pngs", "image_pixels"]


def image_pixels(
    image: Tensor, *, value_range: tuple[float, float] = (0.0, 1.0), cmap: str = IMAGE
) -> tuple[np.ndarray, str | None]:
    """The values of one image as drawn: (height, width) with a colour map, or RGB (height, width, 3).

    Three channels are RGB scaled from `value_range` to [0, 1] (no colour map); any other
    count is averaged into one grey value per pixel, drawn with `cmap` over `value_range`.

    Args:
        image: (channel, height, width), or a map (height, width), or a row (width,).
        value_range: Values mapped to the ends of the colour map (black and white for RGB).
        cmap: Colour map of one-value pixels.
    """
    low, high = value_range
    pixels = image.detach().float().cpu()
    if pixels.dim() == 1:
        pixels = pixels[None, None, :]
    elif pixels.dim() == 2:
        pixels = pixels[None]
    if pixels.shape[0] == 3:
        return np.transpose(((pixels - low) / ((high - low) or 1.0)).clamp(0, 1).numpy(), (1, 2, 0)), None
    return pixels.reshape(-1, *pixels.shape[-2:]).mean(0).numpy(), cmap


def image_png_bytes(
    image: Tensor, *, value_range: tuple[float, float] = (0.0, 1.0), cmap: str = IMAGE
) -> bytes:
    """PNG bytes of one image, one pixel per value, marked as mechscope's.

    Pixels are as `image_pixels` draws them, with the values `matplotlib.pyplot.imsave`
    gives; a grey colour map is stored as 8-bit grey.

    Args:
        image: (channel, height, width), or a map (height, width), or a row (width,).
        value_range: Values mapped to the ends of the colour map.
        cmap: Colour map of one-value pixels.
    """
    array, colours = image_pixels(image, value_range=value_range, cmap=cmap)
    if colours is None:
        pixels = (array * 255).astype(np.uint8)  # as matplotlib turns floats in [0, 1] into bytes
        picture = Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    else:
        low, high = value_range
        scaled = np.nan_to_num((array.astype(np.float64) - low) / ((high - low) or 1.0), nan=0.0)
        index = np.clip((scaled * 256).astype(np.int64), 0, 255)  # matplotlib's 256 colour-map bins
        lut = _lut(colours)
        if lut.ndim == 1:
            picture = Image.fromarray(lut[index], mode="L")
        else:
            picture = Image.fromarray(np.ascontiguousarray(lut[index]), mode="RGB")
    info = PngImagePlugin.PngInfo()
    for key, value in PNG_METADATA.items():  # the marker `owned_png` looks for
        info.add_text(key, value)
    buffer = io.BytesIO()
    picture.save(buffer, format="png", pnginfo=info)
    return buffer.getvalue()


def write_image_png(
    image: Tensor, path: str | os.PathLike[str], *, value_range: tuple[float, float] = (0.0, 1.0)
) -> Path:
    """Write one image (channel, height, width) as a PNG at its own resolution, atomically.

    Raises:
        OutputError: `path` holds a file mechscope did not write, or the OS refused.
    """
    data = image_png_bytes(image, value_range=value_range)
    return write_file(path, lambda tmp: tmp.write_bytes(data), owned=owned_png, what="a figure")


def write_image_pngs(
    images: Tensor,
    folder: str | os.PathLike[str],
    names: Sequence[str],
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    progress: bool = False,
) -> list[Path]:
    """Write one PNG per image into `folder`, which is replaced whole.

    The pictures are assembled in a temporary folder that then takes the place of `folder`,
    so the folder never mixes pictures of two runs. An existing `folder` is replaced only
    when it holds nothing but PNG files mechscope wrote.

    Args:
        images: (batch, channel, height, width), e.g. one rendered image per unit.
        folder: Folder to write.
        names: File name per image, e.g. "unit_003.png".
        value_range: Pixel values mapped to black and white.
        progress: Show a progress bar over the pictures (never when output is not a terminal).

    Returns:
        The written paths, in the order of `images`.

    Raises:
        DataError: `images` is not 4-d, or `names` does not hold one distinct PNG name per image.
        OutputError: `folder` holds something else, or the OS refused.
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] == 0:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise DataError(f"images must be a non-empty (batch, channel, height, width) tensor, got {shape}.")
    names = list(names)
    if len(names) != images.shape[0] or len(set(names)) != len(names) or not all(
        n.endswith(".png") and Path(n).name == n and not n.startswith(".") for n in names
    ):
        raise DataError(f"names must hold {images.shape[0]} distinct file names ending in .png, one per image; "
                        f"got {names[:3]}{'...' if len(names) > 3 else ''}.")
    target = Path(folder)
    with writing_folder(target, owned=_holds_only_owned_pngs, what="a folder of unit pictures") as tmp:
        for image, name in tqdm(list(zip(images, names)), desc="writing unit pictures", unit="png",
                                disable=None if progress else True, leave=False):
            (tmp / name).write_bytes(image_png_bytes(image, value_range=value_range))
    return [target / name for name in names]


def _lut(cmap: str) -> np.ndarray:
    """The colour map as 256 bytes (a grey map) or 256 x 3 bytes."""
    colours = matplotlib.colormaps[cmap](np.arange(256), bytes=True)[:, :3]
    grey = bool((colours == colours[:, :1]).all())
    return np.ascontiguousarray(colours[:, 0]) if grey else colours


def _holds_only_owned_pngs(path: Path) -> bool:
    try:
        entries = list(path.iterdir())
    except OSError:
        return False
    return bool(entries) and all(e.suffix == ".png" and e.is_file() and not e.is_symlink() and owned_png(e)
                                 for e in entries)
