from __future__ import annotations

import numpy as np
import pytest

from mechscope.errors import DataError
from mechscope.plots.training import curve_keys, plot_training_curves


def test_curve_keys_split_losses_from_accuracies():
    history = [{"epoch": 1.0, "train_loss": 0.5, "train_accuracy": 0.8}]
    assert curve_keys(history) == ("epoch", ["train_loss"], ["train_accuracy"])
    steps = [{"step": 10, "train_loss": 1.0, "test_loss": 2.0, "train_accuracy": 0.1, "test_accuracy": 0.0}]
    assert curve_keys(steps) == ("step", ["train_loss", "test_loss"], ["train_accuracy", "test_accuracy"])


def test_plot_training_curves_draws_losses_on_a_log_axis_beside_accuracy():
    history = [{"epoch": float(e), "train_loss": 1.0 / e, "test_loss": 0.0, "train_accuracy": e / 5}
               for e in range(1, 6)]
    fig = plot_training_curves(history, title="run")
    loss, accuracy = fig.axes
    assert fig._suptitle.get_text() == "run"
    assert (loss.get_title(), accuracy.get_title()) == ("Loss", "Accuracy")
    assert loss.get_yscale() == "log" and accuracy.get_yscale() == "linear"
    assert loss.get_xlabel() == accuracy.get_xlabel() == "epoch"
    assert accuracy.get_ylim() == pytest.approx((-0.02, 1.02))
    train, test = loss.lines
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3, 4, 5])
    np.testing.assert_allclose(train.get_ydata(), [1.0, 0.5, 1 / 3, 0.25, 0.2])
    np.testing.assert_array_equal(test.get_ydata(), [1e-16] * 5)  # a zero loss stays on the log axis
    np.testing.assert_allclose(accuracy.lines[0].get_ydata(), [0.2, 0.4, 0.6, 0.8, 1.0])
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["train loss", "test loss"]
    assert [t.get_text() for t in accuracy.get_legend().get_texts()] == ["train accuracy"]


def test_plot_training_curves_without_accuracy_draws_one_panel_against_the_record_number():
    history = [{"train_mse": 2.0}, {"train_mse": 1.0}, {"train_mse": float("nan")}]
    fig = plot_training_curves(history, title="run")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "record" and ax.get_title() == "Loss" and ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [2.0, 1.0, np.nan])


def test_plot_training_curves_draws_a_negative_loss_as_it_is_on_a_linear_axis():
    history = [{"step": 0, "objective": -1.0}, {"step": 10, "objective": 0.0}]
    (ax,) = plot_training_curves(history, title="run").axes
    assert ax.get_yscale() == "linear" and ax.get_xlabel() == "step" and ax.get_ylabel() == "loss / error"
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [-1.0, 0.0])


def test_plot_training_curves_refuses_an_empty_history():
    with pytest.raises(DataError, match="empty"):
        plot_training_curves([], title="run")
