"""Shared figure style: the Agg backend, colour maps, and atomic PNG writing."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mechscope.atomic import PNG_SOFTWARE, owned_png, write_file  # noqa: E402

__all__ = ["plt", "Figure", "save_figure", "PNG_METADATA", "DIVERGING", "SEQUENTIAL", "IMAGE", "CATEGORICAL"]

DIVERGING = "RdBu_r"  # signed values (weights, contributions): blue negative, red positive
SEQUENTIAL = "viridis"  # non-negative magnitudes (activations, energy)
IMAGE = "gray"  # grayscale inputs and feature visualisations
CATEGORICAL = "tab10"  # one colour per class or method
PNG_METADATA = {"Software": PNG_SOFTWARE}  # marks every PNG mechscope writes, so it may replace it later

plt.rcParams.update(
    {
        "figure.dpi": 100,
        "savefig.dpi": 110,
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "figure.titlesize": 13,
    }
)


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write `fig` as PNG atomically (temporary file, then rename) and close it.

    An existing file at `path` is replaced only if mechscope wrote it (its PNG metadata).
    The figure is closed whether or not the write succeeds, so saving never leaks a figure.

    Args:
        fig: A figure, e.g. the result of any `plot_*` function.
        path: PNG file to write; missing parent folders are created.

    Returns:
        The written path.

    Raises:
        OutputError: `path` holds a file mechscope did not write, or the OS refused.
    """
    try:
        return write_file(
            path,
            lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight", metadata=PNG_METADATA),
            owned=owned_png,
            what="a figure",
        )
    finally:
        plt.close(fig)
