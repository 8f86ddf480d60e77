"""Figures for the Fourier analysis of modular arithmetic networks.

* `plot_frequency_spectrum`: energy share per frequency (key frequencies highlighted).
* `plot_progress`: train/test loss with restricted and excluded loss over training.
* `plot_neuron_clusters`: each neuron's variance share per frequency, grouped by cluster.
* `plot_logit_spectrum_2d`: the 2D Fourier energy of the logit table over (a, b).

Each returns a matplotlib Figure; write it with `mechscope.plots.save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import LogNorm

from mechscope.errors import DataError
from mechscope.fourier.energy import FrequencySpectrum, LogitSpectrum2D
from mechscope.fourier.neurons import NeuronFrequencies
from mechscope.plots._style import CATEGORICAL, SEQUENTIAL, Figure, plt

__all__ = ["plot_frequency_spectrum", "plot_progress", "plot_neuron_clusters", "plot_logit_spectrum_2d"]


def plot_frequency_spectrum(
    spectra: Mapping[str, FrequencySpectrum],
    *,
    key_frequencies: Sequence[int] = (),
    title: str = "Energy per frequency",
) -> Figure:
    """Bar chart of each spectrum's share of non-constant energy per frequency, one panel each.

    Args:
        spectra: Panel title -> spectrum (e.g. {"embedding": ..., "logits (output axis)": ...}).
        key_frequencies: Frequencies drawn in the accent colour.
        title: Figure title.

    Raises:
        DataError: `spectra` is empty.
    """
    if not spectra:
        raise DataError("plot_frequency_spectrum needs at least one spectrum.")
    keys = set(int(k) for k in key_frequencies)
    fig, axes = plt.subplots(len(spectra), 1, figsize=(9, 2.8 * len(spectra)), squeeze=False)
    cmap = plt.get_cmap(CATEGORICAL)
    for ax, (name, spectrum) in zip(axes[:, 0], spectra.items()):
        share = spectrum.share
        freqs = list(share)
        colors = [cmap(3) if k in keys else cmap(0) for k in freqs]
        ax.bar(freqs, [share[k] for k in freqs], color=colors, width=0.8)
        ax.set_title(f"{name} (p = {spectrum.modulus}, constant term {spectrum.constant_share:.1%} of all energy)")
        ax.set_xlabel("frequency k")
        ax.set_ylabel("share of energy")
        ax.set_xlim(0.3, max(freqs) + 0.7)
        for k in sorted(keys):
            if k in share:
                ax.annotate(str(k), (k, share[k]), ha="center", va="bottom", fontsize=8)
    if keys:
        handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(3)), plt.Rectangle((0, 0), 1, 1, color=cmap(0))]
        axes[0, 0].legend(handles, ["key frequency", "other"], loc="upper right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_progress(
    history: Sequence[Mapping[str, float]],
    *,
    progress: Sequence[Mapping[str, float]] = (),
    key_frequencies: Sequence[int] = (),
    title: str = "Grokking: loss curves and progress measures",
) -> Figure:
    """Log-scale train/test loss (and accuracy) over steps, with restricted/excluded loss if given.

    Args:
        history: Records with "step", "train_loss", "test_loss", "train_accuracy", "test_accuracy".
        progress: Records with "step", "restricted_loss", "excluded_loss" (from `progress_measures`).
        key_frequencies: Named above the loss panel.
        title: Figure title.

    Raises:
        DataError: `history` is empty.
    """
    if not history:
        raise DataError("plot_progress needs a non-empty training history (records with 'step').")
    steps = np.array([r["step"] for r in history])
    fig, (ax_loss, ax_acc) = plt.subplots(
        2, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    cmap = plt.get_cmap(CATEGORICAL)
    ax_loss.plot(steps, _floor([r["train_loss"] for r in history]), color=cmap(0), label="train loss")
    ax_loss.plot(steps, _floor([r["test_loss"] for r in history]), color=cmap(1), label="test loss")
    if progress:
        p_steps = np.array([r["step"] for r in progress])
        ax_loss.plot(p_steps, _floor([r["restricted_loss"] for r in progress]), "o-", ms=3, color=cmap(2),
                     label="restricted loss (key frequencies only, test pairs)")
        ax_loss.plot(p_steps, _floor([r["excluded_loss"] for r in progress]), "s-", ms=3, color=cmap(3),
                     label="excluded loss (key frequencies removed, train pairs)")
    if key_frequencies:
        ax_loss.set_title("key frequencies k = " + ", ".join(str(k) for k in key_frequencies), fontsize=10)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax_loss.grid(alpha=0.3)
    ax_acc.plot(steps, [r["train_accuracy"] for r in history], color=cmap(0), label="train accuracy")
    ax_acc.plot(steps, [r["test_accuracy"] for r in history], color=cmap(1), label="test accuracy")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax_acc.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_neuron_clusters(neurons: NeuronFrequencies, *, title: str = "Neuron frequency clusters") -> Figure:
    """Heat map of each neuron's variance share per frequency, neurons grouped by best frequency.

    Neurons are sorted by best frequency and then by share; a bar chart beside it gives the
    cluster sizes at the neurons' threshold.
    """
    shares = neurons.shares[:, 1:].numpy()  # (unit, frequency 1..p//2)
    best, share = neurons.frequency, neurons.best_share  # properties: compute once, not per comparison
    order = sorted(range(neurons.n_units), key=lambda u: (best[u], -share[u]))
    clusters = neurons.clusters()
    fig, (ax_map, ax_bar) = plt.subplots(
        1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [3, 1.2]}
    )
    image = ax_map.imshow(shares[order].T, aspect="auto", cmap=SEQUENTIAL, vmin=0, vmax=1, origin="lower",
                          extent=(-0.5, neurons.n_units - 0.5, 0.5, shares.shape[1] + 0.5), interpolation="nearest")
    ax_map.set_xlabel("neuron (sorted by best frequency)")
    ax_map.set_ylabel("frequency k")
    ax_map.set_title(f"share of each neuron's variance ({neurons.kind})")
    fig.colorbar(image, ax=ax_map, label="share of variance")
    freqs = list(clusters)
    ax_bar.barh([str(k) for k in freqs], [len(clusters[k]) for k in freqs], color=plt.get_cmap(CATEGORICAL)(0))
    ax_bar.set_xlabel("neurons")
    ax_bar.set_ylabel("frequency k")
    ax_bar.set_title(f"clusters (share >= {neurons.threshold:g}): {neurons.clustered_fraction:.0%} of neurons",
                     fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_logit_spectrum_2d(
    spectrum: LogitSpectrum2D, *, title: str = "2D Fourier energy of the logits over (a, b)"
) -> Figure:
    """Heat map (log colour scale) of the logit energy per (frequency of a, frequency of b)."""
    grid = spectrum.frequency_energy.numpy().copy()
    total = grid.sum()
    share = grid / total if total > 0 else grid
    positive = share[share > 0]
    floor = max(float(positive.min()) if positive.size else 1e-12, 1e-12)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(np.maximum(share, floor), cmap=SEQUENTIAL, origin="lower", interpolation="nearest",
                      norm=LogNorm(vmin=max(floor, 1e-8), vmax=max(float(share.max()), floor * 10)))
    ax.set_xlabel("frequency of b")
    ax.set_ylabel("frequency of a")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of energy (all output classes)")
    return fig


def _floor(values: Sequence[float]) -> list[float]:
    # log axes cannot show 0 or NaN: clamp exact zeros to the float64 resolution of a loss
    return [max(v, 1e-16) if math.isfinite(v) else math.nan for v in values]
