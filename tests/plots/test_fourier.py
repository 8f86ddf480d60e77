from __future__ import annotations

import pytest

from mechscope.errors import DataError
from mechscope.fourier import (
    frequency_spectrum,
    gromov_modular_mlp,
    logit_spectrum_2d,
    logit_table,
    neuron_frequencies,
    neuron_table,
)
from mechscope.plots.fourier import (
    plot_frequency_spectrum,
    plot_logit_spectrum_2d,
    plot_neuron_clusters,
    plot_progress,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model():
    return gromov_modular_mlp(23, [2, 9], width=256)


def _is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG


def test_plot_frequency_spectrum_writes_a_png(model, tmp_path):
    spectra = {
        "first layer": frequency_spectrum(model.hidden[0].linear.weight, axis=1, modulus=23),
        "logits": frequency_spectrum(logit_table(model), axis=2),
    }
    assert _is_png(plot_frequency_spectrum(spectra, tmp_path / "spectrum.png", key_frequencies=[2, 9]))


def test_plot_neuron_clusters_and_logit_spectrum_write_pngs(model, tmp_path):
    neurons = neuron_frequencies(neuron_table(model, "hidden.0"))
    assert _is_png(plot_neuron_clusters(neurons, tmp_path / "neurons.png"))
    assert _is_png(plot_logit_spectrum_2d(logit_spectrum_2d(logit_table(model)), tmp_path / "logits.png"))


def test_plot_progress_accepts_zero_losses(tmp_path):
    history = [
        {"step": float(s), "train_loss": 0.0 if s else 3.0, "test_loss": 1.0, "train_accuracy": 1.0,
         "test_accuracy": 0.5}
        for s in range(0, 50, 10)
    ]
    progress = [
        {"step": 0.0, "restricted_loss": 2.0, "excluded_loss": 0.0},
        {"step": 40.0, "restricted_loss": 0.1, "excluded_loss": 3.0},
    ]
    path = plot_progress(history, tmp_path / "progress.png", progress=progress, key_frequencies=[2, 9])
    assert _is_png(path)


def test_plots_reject_empty_inputs(tmp_path):
    with pytest.raises(DataError, match="at least one spectrum"):
        plot_frequency_spectrum({}, tmp_path / "x.png")
    with pytest.raises(DataError, match="non-empty training history"):
        plot_progress([], tmp_path / "y.png")
