from __future__ import annotations

import pytest
import torch

from mechscope.attribution import RANDOM, FaithfulnessResult, SanityResult
from mechscope.errors import DataError
from mechscope.plots.attribution import plot_attribution_grid, plot_perturbation_curves, plot_sanity_curves

PNG = b"\x89PNG"


def test_plot_attribution_grid_writes_png_with_signed_and_unsigned_maps(tmp_path):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 8, 8, generator=generator)
    maps = {"Grad-CAM": torch.rand(3, 8, 8, generator=generator), "Gradient x Input": torch.randn(3, 8, 8)}
    path = plot_attribution_grid(images, maps, tmp_path / "grid.png", row_labels=["a", "b", "c"])
    assert path.read_bytes()[:4] == PNG and path.stat().st_size > 10_000


def test_plot_attribution_grid_shape_mismatch_raises(tmp_path):
    with pytest.raises(DataError, match="must match the images"):
        plot_attribution_grid(torch.rand(2, 1, 8, 8), {"m": torch.rand(2, 4, 4)}, tmp_path / "x.png")
    with pytest.raises(DataError, match="one row label per image"):
        plot_attribution_grid(torch.rand(2, 1, 8, 8), {"m": torch.rand(2, 8, 8)}, tmp_path / "x.png", row_labels=["a"])


def test_plot_perturbation_curves_writes_png(tmp_path):
    fractions = [0.0, 0.5, 1.0]
    curves = {"Saliency": [0.9, 0.3, 0.1], "CAM": [0.9, 0.5, 0.1], "Grad-CAM": [0.9, 0.5, 0.1], RANDOM: [0.9, 0.6, 0.1]}
    result = FaithfulnessResult(fractions, curves, curves, {k: 0.4 for k in curves}, {k: 0.5 for k in curves}, 7)
    path = plot_perturbation_curves(result, tmp_path / "faith.png")
    assert path.read_bytes()[:4] == PNG and path.stat().st_size > 10_000


def test_plot_sanity_curves_writes_png(tmp_path):
    result = SanityResult(
        steps=["fc", "conv1"],
        spearman={"Saliency": [0.3, 0.1], "Guided Backprop": [0.8, 0.6]},
        spearman_std={"Saliency": [0.1, 0.1], "Guided Backprop": [0.1, 0.2]},
        passes={"Saliency": True, "Guided Backprop": False},
        threshold=0.5,
        n_images=4,
    )
    path = plot_sanity_curves(result, tmp_path / "sanity.png")
    assert path.read_bytes()[:4] == PNG and path.stat().st_size > 10_000
