from __future__ import annotations

import pytest
import torch

from mechscope.data import modular_data
from mechscope.errors import UnsupportedModelError
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.probes import ConvProbe, probe_modular_mlp
from mechscope.probes.modular import hidden_layers


def test_probe_modular_mlp_decodes_all_heads_on_a_small_run(mod2):
    model, data = mod2
    run = probe_modular_mlp(model, data, seeds=(0, 1))
    assert run.report.heads == {"a": 1.0, "b": 1.0, "output": 1.0}
    assert run.report.all_heads_accuracy == 1.0 and run.target_accuracy == 1.0
    assert run.image.images.shape == (400, 5, 5) and run.image.decimals == 2
    assert run.case_titles == ("0 + 0 = 0", "0 + 1 = 1", "1 + 0 = 1", "1 + 1 = 0")
    assert run.report.n_types == 4 and run.report.untrained_accuracy is not None


def test_probe_modular_mlp_clips_the_default_kernels_to_one_hidden_layer():
    data = modular_data(2, n_train=64, n_test=64, seed=0)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=3), seed=0).eval()
    run = probe_modular_mlp(model, data, seeds=(0,), use_untrained=False)
    assert run.image.images.shape == (64, 1, 3)
    assert isinstance(run.probe, ConvProbe) and run.probe.kernel_size == (1, 2)
    assert run.probe.kernels_.shape == (3, 1, 1, 2)
    assert 0.0 <= run.report.all_heads_accuracy <= 1.0
    assert any("kernels of 1 x 2 instead of the article's 2 x 2" in note for note in run.report.notes)


def test_hidden_layers_needs_a_modular_mlp():
    assert hidden_layers(ModularMLP(ModularMLPConfig(n_layers=4))) == ["hidden.0", "hidden.1"]
    with pytest.raises(UnsupportedModelError, match="pass layers="):
        hidden_layers(torch.nn.Linear(2, 2))
