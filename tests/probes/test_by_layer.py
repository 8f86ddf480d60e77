from __future__ import annotations

import pytest
import torch

from mechscope.errors import LayerNameError
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.plots._style import save_figure
from mechscope.probes import probe_by_layer


def _model_and_inputs() -> tuple[ModularMLP, torch.Tensor, torch.Tensor]:
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=3, hidden=6), seed=0)
    pairs = torch.cartesian_prod(torch.arange(3), torch.arange(3)).repeat(20, 1)
    x = torch.cat([torch.eye(3)[pairs[:, 0]], torch.eye(3)[pairs[:, 1]]], dim=1)  # (batch, 2m) one-hot
    return model, pairs, x


def test_probe_by_layer_scores_every_layer_and_target(tmp_path):
    model, pairs, x = _model_and_inputs()
    table = probe_by_layer(
        model, x, {"a": pairs[:, 0], "b": pairs[:, 1]}, ["hidden.0", "hidden.4"], types=pairs, seeds=(0, 1)
    )
    assert [(r.layer, r.target) for r in table.rows] == [
        ("hidden.0", "a"), ("hidden.0", "b"), ("hidden.4", "a"), ("hidden.4", "b"),
    ]
    first = table.get("hidden.0", "a")
    assert first.score == pytest.approx(1.0)  # the first layer is an injective map of the one-hot input
    assert first.untrained is not None and 0.0 <= first.baseline <= 1.0
    assert first.selectivity == pytest.approx(first.score - first.control)
    assert "hidden.4" in table.format() and len(table.to_dict()["rows"]) == 4
    path = save_figure(table.plot(), tmp_path / "by_layer.png")
    assert path.stat().st_size > 10_000


def test_probe_by_layer_unknown_layer_raises():
    model, pairs, x = _model_and_inputs()
    with pytest.raises(LayerNameError, match="Unknown layer 'hidden.9'"):
        probe_by_layer(model, x, {"a": pairs[:, 0]}, ["hidden.9"])
