from __future__ import annotations

import torch

from mechscope.plots.probe_run import probe_run_figures
from mechscope.probes import LinearProbe, probe_activation_image


def _inputs() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3), torch.nn.Tanh())
    pairs = torch.cartesian_prod(torch.arange(2), torch.arange(2)).repeat(10, 1)
    x = torch.cat([torch.eye(2)[pairs[:, 0]], torch.eye(2)[pairs[:, 1]]], dim=1)
    return model.eval(), x, pairs


def test_probe_run_figures_draws_accuracy_kernels_and_one_response_row_per_case():
    model, x, pairs = _inputs()
    run = probe_activation_image(model, x, {"a": pairs[:, 0], "b": pairs[:, 1]}, ["1", "3"], types=pairs,
                                 seeds=(0,), use_untrained=False)
    figures = probe_run_figures(run, max_cases=3)
    assert list(figures) == ["probe_accuracy", "kernels", "kernel_responses"]
    bars = figures["probe_accuracy"].axes[0]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["a", "b", "all heads"]
    responses = [ax for ax in figures["kernel_responses"].axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(responses) == 3 * run.probe.kernels_.shape[0]  # three cases x the kernels
    assert [responses[3 * r].get_ylabel() for r in range(3)] == list(run.case_titles[:3])


def test_probe_run_figures_of_another_probe_is_the_accuracy_alone():
    model, x, pairs = _inputs()
    run = probe_activation_image(model, x, {"a": pairs[:, 0]}, ["1", "3"], probe=LinearProbe(), seeds=(0,),
                                 use_untrained=False)
    assert list(probe_run_figures(run)) == ["probe_accuracy"]

