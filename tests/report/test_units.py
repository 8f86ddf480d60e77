from __future__ import annotations

import torch

from mechscope.data import modular_data
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.report.config import ReportConfig
from mechscope.report.context import make_context
from mechscope.report.units import analyse_units


def test_analyse_units_names_modular_inputs_and_class_logits_and_ablates_every_shown_unit(tmp_path):
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=3, n_layers=4, hidden=4), 0)
    data = modular_data(3, n_train=27, n_test=27)
    ctx = make_context(model, tmp_path / "site", data=data, settings=ReportConfig.quick(), home=None, progress=False)
    results = analyse_units(ctx)
    first, last = results["hidden.0"], results["hidden.1"]
    labels = {c.label for cs in first.inbound.values() for c in cs}
    assert labels and labels <= {f"input {v} = {i}" for v in "ab" for i in range(3)}
    assert {c.label for cs in last.outbound.values() for c in cs} <= {f"logit of class {i}" for i in range(3)}
    assert first.ablation_metric == "accuracy drop" and first.ablation is not None
    assert first.ablation_per_class is not None
    assert first.ablation.shape == (first.shown,) and first.ablation_per_class.shape == (first.shown, 3)
    assert not first.notes and all(isinstance(v, torch.Tensor) for v in (first.ablation, last.ablation))
