from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import LogNorm, to_rgba

from mechscope.errors import DataError
from mechscope.fourier import FrequencySpectrum, NeuronFrequencies
from mechscope.fourier.energy import LogitSpectrum2D
from mechscope.plots._style import CATEGORICAL, plt
from mechscope.plots.fourier import (
    plot_frequency_spectrum,
    plot_logit_spectrum_2d,
    plot_neuron_clusters,
    plot_progress,
)

KEY, OTHER = plt.get_cmap(CATEGORICAL)(3), plt.get_cmap(CATEGORICAL)(0)


def test_plot_frequency_spectrum_draws_each_share_as_a_bar_key_frequencies_highlighted():
    spectra = {
        "embedding": FrequencySpectrum(7, (10.0, 1.0, 3.0, 0.0)),  # shares 1/4, 3/4, 0 of the non-constant energy
        "logits": FrequencySpectrum(7, (0.0, 2.0, 2.0, 4.0)),
    }
    fig = plot_frequency_spectrum(spectra, key_frequencies=[2], title="spectra")
    top, bottom = fig.axes
    assert fig._suptitle.get_text() == "spectra"
    assert top.get_title() == "embedding (p = 7, constant term 71.4% of all energy)"
    assert bottom.get_title() == "logits (p = 7, constant term 0.0% of all energy)"
    assert [bar.get_x() + bar.get_width() / 2 for bar in top.patches] == [1, 2, 3]
    assert [bar.get_height() for bar in top.patches] == pytest.approx([0.25, 0.75, 0.0])
    assert [bar.get_height() for bar in bottom.patches] == pytest.approx([0.25, 0.25, 0.5])
    assert [bar.get_facecolor() for bar in top.patches] == [OTHER, KEY, OTHER]
    assert [(t.get_text(), t.xy) for t in top.texts] == [("2", (2, 0.75))]  # the key frequency is named
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["key frequency", "other"]
    assert bottom.get_legend() is None and top.get_xlabel() == "frequency k"


def test_plot_frequency_spectrum_without_key_frequencies_has_no_legend():
    fig = plot_frequency_spectrum({"w": FrequencySpectrum(5, (1.0, 1.0, 1.0))})
    (ax,) = fig.axes
    assert ax.get_legend() is None and not ax.texts
    assert {bar.get_facecolor() for bar in ax.patches} == {OTHER}


def test_plot_progress_draws_losses_on_a_log_axis_and_accuracy_below():
    history = [
        {"step": float(s), "train_loss": 0.0 if s else 3.0, "test_loss": 1.0, "train_accuracy": s / 40,
         "test_accuracy": 0.5}
        for s in range(0, 50, 10)
    ]
    progress = [
        {"step": 0.0, "restricted_loss": 2.0, "excluded_loss": 0.0},
        {"step": 40.0, "restricted_loss": 0.1, "excluded_loss": 3.0},
    ]
    fig = plot_progress(history, progress=progress, key_frequencies=[2, 9], title="grokking")
    loss, accuracy = fig.axes
    assert fig._suptitle.get_text() == "grokking" and loss.get_title() == "key frequencies k = 2, 9"
    assert loss.get_yscale() == "log" and loss.get_ylabel() == "cross-entropy"
    train, test, restricted, excluded = loss.lines
    np.testing.assert_array_equal(train.get_xdata(), [0, 10, 20, 30, 40])
    np.testing.assert_array_equal(train.get_ydata(), [3.0, 1e-16, 1e-16, 1e-16, 1e-16])  # zeros stay on the axis
    np.testing.assert_array_equal(test.get_ydata(), [1.0] * 5)
    np.testing.assert_array_equal(restricted.get_xdata(), [0, 40])
    np.testing.assert_array_equal(restricted.get_ydata(), [2.0, 0.1])
    np.testing.assert_array_equal(excluded.get_ydata(), [1e-16, 3.0])
    assert [t.get_text() for t in loss.get_legend().get_texts()] == [
        "train loss", "test loss", "restricted loss (key frequencies only, test pairs)",
        "excluded loss (key frequencies removed, train pairs)",
    ]
    np.testing.assert_allclose(accuracy.lines[0].get_ydata(), [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(accuracy.lines[1].get_ydata(), [0.5] * 5)
    assert accuracy.get_ylim() == pytest.approx((-0.02, 1.02)) and accuracy.get_xlabel() == "step"


def test_plot_progress_without_progress_measures_draws_only_the_loss_curves():
    history = [{"step": 0.0, "train_loss": 1.0, "test_loss": 2.0, "train_accuracy": 0.0, "test_accuracy": 0.0}]
    loss, _ = plot_progress(history).axes
    assert len(loss.lines) == 2 and loss.get_title() == ""


def test_plot_neuron_clusters_draws_shares_sorted_by_best_frequency_and_cluster_sizes():
    shares = torch.tensor([
        [0.0, 0.1, 0.9, 0.0],  # best frequency 2
        [0.0, 0.6, 0.2, 0.2],  # best frequency 1
        [0.0, 0.0, 0.0, 0.0],  # dead
        [0.0, 0.0, 0.95, 0.05],  # best frequency 2, larger share than unit 0
    ])
    neurons = NeuronFrequencies(7, shares, threshold=0.7, kind="activations")
    fig = plot_neuron_clusters(neurons, title="clusters")
    heat, bars = fig.axes[:2]
    image = heat.images[0]
    order = [2, 1, 3, 0]  # dead (frequency 0) first, then by frequency, larger share first
    np.testing.assert_allclose(image.get_array(), shares[order, 1:].T.numpy())
    assert image.get_clim() == (0, 1) and image.get_extent() == [-0.5, 3.5, 0.5, 3.5]
    assert heat.get_title() == "share of each neuron's variance (activations)"
    assert [t.get_text() for t in bars.get_yticklabels()] == ["2"]  # only frequency 2 reaches 0.7
    assert [bar.get_width() for bar in bars.patches] == [2]
    assert bars.get_title() == "clusters (share >= 0.7): 50% of neurons"
    assert fig.axes[2].get_ylabel() == "share of variance"  # the colour bar


def test_plot_logit_spectrum_2d_draws_energy_shares_on_a_log_scale():
    energy = torch.tensor([[0.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 2.0]])
    fig = plot_logit_spectrum_2d(LogitSpectrum2D(5, torch.zeros(5, 5), energy), title="logits")
    ax = fig.axes[0]
    image = ax.images[0]
    expected = np.full((3, 3), 0.25)  # zero energy is drawn at the smallest positive share
    expected[1, 1] = 0.75
    np.testing.assert_allclose(image.get_array(), expected)
    assert isinstance(image.norm, LogNorm) and image.get_clim() == pytest.approx((0.25, 2.5))
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("logits", "frequency of b", "frequency of a")
    assert image.origin == "lower"
    assert fig.axes[1].get_ylabel() == "share of energy (all output classes)"
    assert to_rgba(image.cmap(1.0)) == to_rgba(plt.get_cmap("viridis")(1.0))


def test_fourier_plots_reject_empty_inputs():
    with pytest.raises(DataError, match="at least one spectrum"):
        plot_frequency_spectrum({})
    with pytest.raises(DataError, match="non-empty training history"):
        plot_progress([])
