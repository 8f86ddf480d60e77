"""Shared figure style: the Agg backend, colour maps, and atomic PNG writing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["plt", "Figure", "save_figure", "DIVERGING", "SEQUENTIAL", "IMAGE", "CATEGORICAL"]

DIVERGING = "RdBu_r"  # signed values (weights, contributions): blue negative, red positive
SEQUENTIAL = "viridis"  # non-negative magnitudes (activations, energy)
IMAGE = "gray"  # grayscale inputs and feature visualisations
CATEGORICAL = "tab10"  # one colour per class or method

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
    """Write `fig` as PNG atomically (temporary file, then rename) and close it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".png", dir=target.parent)
    os.close(handle)
    try:
        fig.savefig(tmp, format="png", bbox_inches="tight")
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; figures are for anyone who reads the folder
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return target
