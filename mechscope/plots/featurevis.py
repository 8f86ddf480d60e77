"""Figures for feature visualisation: a labelled grid per layer, pre- vs post-softmax per class,
and one small PNG per unit.

A layer of many units is drawn as one mosaic (a single image with unit numbers on its
axes) rather than one labelled panel per unit: a figure with 1,024 axes took a minute and
most of a gigabyte to draw. Unit pictures are encoded straight from their pixels with
Pillow, at their own resolution, into one folder that is swapped into place whole.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.image import AxesImage
from PIL import Image, PngImagePlugin
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.atomic import owned_png, write_file, writing_folder
from mechscope.errors import DataError
from mechscope.featurevis.evidence import Evidence
from mechscope.plots._style import IMAGE, PNG_METADATA, plt, save_figure

__all__ = ["plot_layer_grid", "plot_class_pairs", "save_unit_image", "save_unit_images", "unit_png", "MAX_PANELS"]

MAX_PANELS = 64
"""Most units `plot_layer_grid` draws as labelled panels; more are drawn as one mosaic."""


def plot_layer_grid(
    images: Tensor,
    path: str | os.PathLike[str],
    *,
    title: str,
    evidence: Evidence | None = None,
    examples: Tensor | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    unit_label: str = "ch",
) -> Path:
    """Save every rendered unit of a layer in one grid, each panel labelled.

    Args:
        images: Rendered images (batch, channel, height, width), one per unit.
        path: PNG file to write.
        title: Figure title, e.g. "relu2: channel objective".
        evidence: When given, each panel also shows activation / dataset max.
        examples: Best dataset example per unit (batch, channel, height, width), drawn
            under each rendered image.
        value_range: Pixel values mapped to black and white.
        unit_label: Prefix of each panel's label ("ch", "class", "unit").

    Returns:
        The written path.

    More than `MAX_PANELS` units are drawn as one mosaic of all images (unit numbers on its
    axes, the best examples in a second mosaic beside it) instead of a panel per unit.
    """
    _check_images(images, "images")
    n = images.shape[0]
    units = list(evidence.units) if evidence is not None else list(range(n))
    if n > MAX_PANELS:
        return _plot_mosaic(images, path, title=_grid_title(title, evidence), units=units, examples=examples,
                            value_range=value_range, unit_label=unit_label)
    cols = min(n, 8 if n > 10 else n)
    grid_rows = math.ceil(n / cols)
    per_unit = 2 if examples is not None else 1
    fig, axes = plt.subplots(
        grid_rows * per_unit,
        cols,
        figsize=(1.3 * cols + 1.3, 1.5 * grid_rows * per_unit + 1.0),
        squeeze=False,
        layout="constrained",
    )
    shown = None
    for i in range(grid_rows * cols):
        r, c = divmod(i, cols)
        ax = axes[r * per_unit, c]
        _blank(ax)
        if per_unit == 2:
            _blank(axes[r * per_unit + 1, c])
        if i >= n:
            continue
        shown = _show(ax, images[i], value_range)
        label = f"{unit_label} {units[i]}"
        if evidence is not None:
            ratio = evidence.ratio[i]
            label += "\nnever active" if math.isnan(ratio) else f"\n\u00d7{ratio:.2f}"
        ax.set_title(label, fontsize=8.5)
        if examples is not None:
            ex_ax = axes[r * per_unit + 1, c]
            _show(ex_ax, examples[i], value_range)
            ex_ax.set_title("best example", fontsize=7.5, color="0.35")
    fig.suptitle(_grid_title(title, evidence))
    if evidence is not None:
        fig.supxlabel("\u00d7r: activation of the rendered image / best dataset activation of the unit", fontsize=9)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes, shrink=0.6, pad=0.02)
        bar.set_label("pixel value")
    return save_figure(fig, path)


def plot_class_pairs(
    logit_images: Tensor,
    prob_images: Tensor,
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    logit_evidence: Evidence | None = None,
    prob_evidence: Evidence | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Path:
    """Save per class the pre-softmax (logit) and post-softmax (probability) visualisations.

    Args:
        logit_images: (n_classes, channel, height, width) rendered for each class logit.
        prob_images: (n_classes, channel, height, width) rendered for each class probability.
        path: PNG file to write.
        class_names: Column labels (default "0".."n-1").
        logit_evidence: When given, each logit panel shows its ratio to the dataset max.
        prob_evidence: When given, each probability panel shows the probability reached.
        value_range: Pixel values mapped to black and white.

    Returns:
        The written path.
    """
    _check_images(logit_images, "logit_images")
    _check_images(prob_images, "prob_images")
    if logit_images.shape != prob_images.shape:
        raise DataError(
            f"logit_images {tuple(logit_images.shape)} and prob_images {tuple(prob_images.shape)} must match."
        )
    n = logit_images.shape[0]
    names = list(class_names) if class_names is not None else [str(k) for k in range(n)]
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n + 1.8, 3.9), squeeze=False, layout="constrained")
    shown = None
    for k in range(n):
        shown = _show(axes[0, k], logit_images[k], value_range)
        _show(axes[1, k], prob_images[k], value_range)
        _blank(axes[0, k])
        _blank(axes[1, k])
        axes[0, k].set_title(f"class {names[k]}" + _note(logit_evidence, k, "logit"), fontsize=8.5)
        axes[1, k].set_title(_note(prob_evidence, k, "prob").strip(), fontsize=8)
    axes[0, 0].set_ylabel("logit\n(pre-softmax)", fontsize=9)
    axes[1, 0].set_ylabel("probability\n(post-softmax)", fontsize=9)
    fig.suptitle("Class visualisations: maximise the logit (top) vs the softmax probability (bottom)")
    if logit_evidence is not None:
        fig.supxlabel("\u00d7r: logit of the rendered image / largest logit of the class in the dataset", fontsize=9)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes, shrink=0.8, pad=0.02)
        bar.set_label("pixel value")
    return save_figure(fig, path)


def save_unit_image(
    image: Tensor, path: str | os.PathLike[str], *, value_range: tuple[float, float] = (0.0, 1.0)
) -> Path:
    """Write one rendered image (channel, height, width) as a PNG at its own resolution, atomically.

    Raises:
        OutputError: `path` holds a file mechscope did not write, or the OS refused.
    """
    data = unit_png(image, value_range=value_range)
    return write_file(path, lambda tmp: tmp.write_bytes(data), owned=owned_png, what="a figure")


def save_unit_images(
    images: Tensor,
    folder: str | os.PathLike[str],
    names: Sequence[str],
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    progress: bool = False,
) -> list[Path]:
    """Write one PNG per rendered image into `folder`, which is replaced whole.

    The pictures are assembled in a temporary folder that then takes the place of `folder`,
    so the folder never mixes pictures of two runs. An existing `folder` is replaced only
    when it holds nothing but PNG files mechscope wrote.

    Args:
        images: Rendered images (batch, channel, height, width), one per unit.
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
    _check_images(images, "images")
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
            (tmp / name).write_bytes(unit_png(image, value_range=value_range))
    return [target / name for name in names]


def unit_png(image: Tensor, *, value_range: tuple[float, float] = (0.0, 1.0)) -> bytes:
    """PNG bytes of one image (channel, height, width), one pixel per value, marked as mechscope's.

    Three channels are RGB scaled from `value_range`; any other count is averaged and drawn
    with the `IMAGE` colour map (stored as 8-bit grey when the map is grey), with the same
    pixel values `matplotlib.pyplot.imsave` gives.
    """
    array, cmap = _array(image, value_range)
    if cmap is None:
        pixels = (array * 255).astype(np.uint8)  # as matplotlib turns floats in [0, 1] into bytes
        picture = Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    else:
        low, high = value_range
        scaled = np.nan_to_num((array.astype(np.float64) - low) / ((high - low) or 1.0), nan=0.0)
        index = np.clip((scaled * 256).astype(np.int64), 0, 255)  # matplotlib's 256 colour-map bins
        lut = _lut(cmap)
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


def _note(evidence: Evidence | None, k: int, kind: str) -> str:
    if evidence is None:
        return ""
    if kind == "prob":
        return f"\np = {evidence.activation[k]:.4f}"
    ratio = evidence.ratio[k]
    return "" if math.isnan(ratio) else f"\n\u00d7{ratio:.2f}"


def _array(image: Tensor, value_range: tuple[float, float]) -> tuple[np.ndarray, str | None]:
    """Grey images keep their values (the colour map spans value_range); RGB is scaled to [0, 1]."""
    low, high = value_range
    pixels = image.detach().float().cpu()
    if pixels.shape[0] == 3:
        return np.transpose(((pixels - low) / (high - low)).clamp(0, 1).numpy(), (1, 2, 0)), None
    return pixels.mean(0).numpy(), IMAGE  # one channel, or the channel mean of other counts


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


def _grid_title(title: str, evidence: Evidence | None) -> str:
    if evidence is None:
        return title
    defined = [r for r in evidence.ratio if not math.isnan(r)]
    return title + f"\n{sum(r >= 1 for r in defined)}/{len(defined)} units reach their best dataset activation"


def _plot_mosaic(
    images: Tensor,
    path: str | os.PathLike[str],
    *,
    title: str,
    units: Sequence[int],
    examples: Tensor | None,
    value_range: tuple[float, float],
    unit_label: str,
) -> Path:
    """All images tiled into one picture per kind (rendered, best examples), unit numbers on the axes."""
    n = images.shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    panels = [("rendered", images)] + ([("best dataset example", examples)] if examples is not None else [])
    size = (min(4.0 + 0.35 * cols, 16.0) * len(panels), min(3.5 + 0.35 * rows, 18.0))
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False, layout="constrained")
    shown = None
    for ax, (name, pictures) in zip(axes[0], panels):
        tiles, (height, width) = _tile(pictures, cols, rows, value_range)
        rgb = tiles.ndim == 3
        cmap = None if rgb else matplotlib.colormaps[IMAGE].with_extremes(bad="white")
        shown = ax.imshow(tiles, cmap=cmap, vmin=value_range[0], vmax=value_range[1], interpolation="nearest")
        step = max(1, math.ceil(rows / 16))
        ax.set_yticks([r * (height + 1) + height / 2 for r in range(0, rows, step)],
                      [f"{unit_label} {units[r * cols]}" for r in range(0, rows, step)], fontsize=7)
        col_step = max(1, math.ceil(cols / 16))
        ax.set_xticks([c * (width + 1) + width / 2 for c in range(0, cols, col_step)],
                      [f"+{c}" for c in range(0, cols, col_step)], fontsize=7)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(f"{name}: {n} units, {cols} per row, read left to right", fontsize=9)
    fig.suptitle(title)
    fig.supxlabel(f"a row label is the first {unit_label} of its row; +c counts pictures along the row", fontsize=9)
    if shown is not None and images.shape[1] != 3:
        bar = fig.colorbar(shown, ax=axes, shrink=0.6, pad=0.02)
        bar.set_label("pixel value")
    return save_figure(fig, path)


def _tile(
    pictures: Tensor, cols: int, rows: int, value_range: tuple[float, float]
) -> tuple[np.ndarray, tuple[int, int]]:
    """(rows * (height + 1) - 1, cols * (width + 1) - 1[, 3]) array; gaps are NaN (grey) or white (RGB)."""
    first, _ = _array(pictures[0], value_range)
    height, width = first.shape[:2]
    shape: tuple[int, ...] = (rows * (height + 1) - 1, cols * (width + 1) - 1) + first.shape[2:]
    tiles = np.full(shape, np.nan if first.ndim == 2 else 1.0, dtype=np.float64)
    for i in range(pictures.shape[0]):
        r, c = divmod(i, cols)
        array, _ = _array(pictures[i], value_range)
        tiles[r * (height + 1): r * (height + 1) + height, c * (width + 1): c * (width + 1) + width] = array
    return tiles, (height, width)


def _show(ax: plt.Axes, image: Tensor, value_range: tuple[float, float]) -> AxesImage:
    array, cmap = _array(image, value_range)
    return ax.imshow(array, cmap=cmap, vmin=value_range[0], vmax=value_range[1], interpolation="nearest")


def _blank(ax: plt.Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _check_images(images: Tensor, name: str) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] == 0:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise DataError(f"{name} must be a non-empty (batch, channel, height, width) tensor, got {shape}.")
