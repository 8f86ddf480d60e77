from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError, LayerNameError
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.probes import ConvProbe, probe_activation_image, probe_by_layer, unit_means
from mechscope.probes.by_layer import representative_cases
from mechscope.serialize import to_json


def _model_and_inputs() -> tuple[ModularMLP, torch.Tensor, torch.Tensor]:
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=3, hidden=6), seed=0)
    pairs = torch.cartesian_prod(torch.arange(3), torch.arange(3)).repeat(20, 1)
    x = torch.cat([torch.eye(3)[pairs[:, 0]], torch.eye(3)[pairs[:, 1]]], dim=1)  # (batch, 2m) one-hot
    return model, pairs, x


def test_probe_by_layer_scores_every_layer_and_target():
    model, pairs, x = _model_and_inputs()
    table = probe_by_layer(
        model, x, {"a": pairs[:, 0], "b": pairs[:, 1]}, ["hidden.0", "hidden.4"], types=pairs, seeds=(0, 1)
    )
    assert [(r.layer, r.label) for r in table.rows] == [
        ("hidden.0", "a"), ("hidden.0", "b"), ("hidden.4", "a"), ("hidden.4", "b"),
    ]
    first = table.get("hidden.0", "a")
    assert first.score == pytest.approx(1.0)  # the first layer is an injective map of the one-hot input
    assert first.untrained is not None and 0.0 <= first.baseline <= 1.0
    assert first.selectivity == pytest.approx(first.score - first.control)
    assert "hidden.4" in table.format() and len(to_json(table)["rows"]) == 4


def test_probe_by_layer_unknown_layer_raises():
    model, pairs, x = _model_and_inputs()
    with pytest.raises(LayerNameError, match="Unknown layer 'hidden.9'"):
        probe_by_layer(model, x, {"a": pairs[:, 0]}, ["hidden.9"])


def test_probe_by_layer_reads_the_features_the_hook_makes():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU())
    x = torch.rand(60, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    label = (x.mean(dim=(1, 2, 3)) > x.mean()).long()
    seen = []

    def spy(layer, value):
        seen.append((layer, tuple(value.shape)))
        return unit_means(model)(layer, value)

    table = probe_by_layer(model, x, {"label": label}, ["1"], features=spy, seeds=(0,), use_untrained=False)
    assert seen == [("1", (60, 3, 5, 5))]
    assert [r.layer for r in table.rows] == ["1"]
    torch.testing.assert_close(unit_means(model)("1", torch.ones(2, 3, 5, 5)), torch.ones(2, 3))


def test_probe_activation_image_pads_unequal_layers_and_reports_it(mod2):
    model, data = mod2
    with pytest.warns(UserWarning, match="unequal widths"):
        run = probe_activation_image(
            model, data.x_test, {"y": data.y_test}, layers=["hidden.0", "output"], types=data.extras["pairs_test"],
            probe=ConvProbe(kernel_size=(2, 1)), seeds=(0,), use_untrained=False,
        )
    assert run.image.widths == (5, 2)
    assert any("padded" in note for note in run.report.notes)
    assert to_json(run.report)["seeds"]["notes"] == list(run.report.notes)


def test_probe_activation_image_keeps_an_explicit_kernel_that_does_not_fit(mod2):
    model, data = mod2
    with pytest.raises(ConfigError, match=r"kernel_size \(2, 2\) does not fit activation images of height 1"):
        probe_activation_image(model, data.x_test, {"y": data.y_test}, layers=["hidden.0"],
                               probe=ConvProbe(kernel_size=(2, 2)), seeds=(0,), use_untrained=False)


def test_representative_cases_picks_first_example_of_each_case():
    cases = torch.tensor([[1, 0], [0, 0], [1, 0], [0, 1], [0, 0]])
    assert representative_cases(cases).tolist() == [1, 3, 0]  # sorted cases (0,0), (0,1), (1,0)


def test_probe_by_layer_runs_as_layer_seed_tasks_and_resumes(tmp_path):
    """One task per (layer, seed): on a multi-worker engine the table is the same; a rerun takes every fit from the cache."""
    from mechscope.cache import TaskCache
    from mechscope.probes.linear import LinearProbe
    from tests.test_engine import ShardingEngine
    from tests.zoo import TinyResNet

    model = TinyResNet().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(90, 1, 16, 16, generator=g)
    labels = {"label": torch.arange(90) % 3, "sign": (x.mean(dim=(1, 2, 3)) > 0).long()}
    layers = ["layer1.0.relu:1", "layer2.1.relu:1"]  # the second call of an in-place ReLU module
    kwargs = dict(features=unit_means(model), probe=LinearProbe(max_iter=30), seeds=(0, 1))
    one = probe_by_layer(model, x, labels, layers, **kwargs)
    engine, cache = ShardingEngine(3), TaskCache(tmp_path)
    many = probe_by_layer(model, x, labels, layers, engine=engine, cache=cache, **kwargs)
    assert many == one and engine.calls == 4 and cache.misses == 4
    again = probe_by_layer(model, x, labels, layers, cache=TaskCache(tmp_path), **kwargs)
    assert again == one
    assert {row.layer for row in one.rows} == set(layers) and len(one.rows) == 4
