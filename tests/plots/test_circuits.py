from __future__ import annotations

import pytest
import torch
from matplotlib.image import imread

from mechscope.circuits import (
    activation_maps,
    class_circuits,
    conv_kernels,
    dataset_examples,
    depth_statistics,
    polysemanticity,
)
from mechscope.data import DataBundle, digits_data
from mechscope.models import DigitCNN, DigitCNNConfig, build_seeded
from mechscope.plots.circuits import (
    plot_activation_maps,
    plot_causal_check,
    plot_class_circuit,
    plot_class_circuits,
    plot_connections,
    plot_dataset_examples,
    plot_depth_statistics,
    plot_kernels,
    plot_polysemanticity,
)


@pytest.fixture(scope="module")
def setting():
    digits = digits_data("digits")
    data = DataBundle(digits.x_train[:200], digits.y_train[:200], digits.x_test[:100], digits.y_test[:100],
                      digits.spec, "classification", 10, digits.class_names)
    config = DigitCNNConfig(image_size=8, channels=(8, 16, 32), pools=2, gap=True)
    return build_seeded(DigitCNN, config, seed=0).eval(), data


def _is_png(path) -> bool:
    image = imread(path)
    return image.ndim == 3 and min(image.shape[:2]) > 100


def test_feature_figures_are_written(setting, tmp_path):
    model, data = setting
    x, y = data.x_test, data.y_test
    found = dataset_examples(model, x, "relu2", k=3, progress=False)["relu2"]
    paths = [
        plot_activation_maps(activation_maps(model, x[:1]), tmp_path / "act.png"),
        plot_depth_statistics(depth_statistics(model, x, progress=False), tmp_path / "depth.png"),
        plot_kernels(conv_kernels(model), tmp_path / "k1.png"),
        plot_kernels(conv_kernels(model, "conv3"), tmp_path / "k3.png", max_out=8, max_in=4),
        plot_dataset_examples(found, x, tmp_path / "top.png", labels=y, units=[0, 1, 2]),
        plot_dataset_examples(found, x, tmp_path / "crops.png", which="bottom", crops=True),
        plot_polysemanticity(polysemanticity(found, y), tmp_path / "poly.png"),
    ]
    assert all(_is_png(p) for p in paths)


def test_circuit_figures_are_written(setting, tmp_path):
    model, data = setting
    found = class_circuits(model, data, n_random=1)
    paths = [
        plot_class_circuits(found.contributions, found.class_mean_inputs, tmp_path / "circuits.png"),
        plot_class_circuit(found, 4, tmp_path / "circuit.png"),
        plot_connections(found.connections[0], tmp_path / "conn.png"),
        plot_causal_check(found.causal, tmp_path / "ablation.png"),
    ]
    assert all(_is_png(p) for p in paths)
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no temporary files
    assert torch.is_tensor(found.causal.cross_drop)
