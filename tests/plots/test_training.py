from __future__ import annotations

import pytest

from mechscope.errors import DataError
from mechscope.plots.training import curve_keys, plot_training_curves


def test_curve_keys_split_losses_from_accuracies():
    history = [{"epoch": 1.0, "train_loss": 0.5, "train_accuracy": 0.8}]
    assert curve_keys(history) == ("epoch", ["train_loss"], ["train_accuracy"])
    steps = [{"step": 10, "train_loss": 1.0, "test_loss": 2.0, "train_accuracy": 0.1, "test_accuracy": 0.0}]
    assert curve_keys(steps) == ("step", ["train_loss", "test_loss"], ["train_accuracy", "test_accuracy"])


def test_plot_training_curves_writes_a_png(tmp_path):
    history = [{"epoch": float(e), "train_loss": 1.0 / e, "train_mse": 1.0 / e} for e in range(1, 6)]
    path = plot_training_curves(history, tmp_path / "t.png", title="run")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_plot_training_curves_refuses_an_empty_history(tmp_path):
    with pytest.raises(DataError, match="empty"):
        plot_training_curves([], tmp_path / "t.png", title="run")
