from __future__ import annotations

import importlib
import json

import pytest
import torch

from mechscope.errors import ConfigError, DataError, LayerNameError
from mechscope.featurevis import RenderConfig, visualize
from mechscope.featurevis.transforms import jitter
from mechscope.featurevis.visualize import count_units, unit_objective
from mechscope.serialize import to_json

FAST = RenderConfig(steps=16)


@pytest.mark.parametrize(
    ("kind", "layer", "description"),
    [
        ("channel", "relu2", "relu2 channels 0, 1"),
        ("neuron", "relu2", "relu2 neurons 0, 1"),
        ("layer", "relu2", "mean of relu2"),
        ("logit", None, "logits 0, 1"),
        ("prob", "fc2", "fc2 probabilities 0, 1"),
    ],
)
def test_unit_objective_builds_each_kind(kind, layer, description):
    assert unit_objective(kind, layer, [0, 1]).description == description


def test_unit_objective_rejects_unknown_kinds_and_missing_layers():
    with pytest.raises(ConfigError, match="objective must be one of"):
        unit_objective("texture", "relu1", 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs a layer name"):
        unit_objective("channel", None, 0)


def test_count_units_reads_channels_and_outputs(cnn, digits, hooks_left):
    x = digits.x_test[:2]
    assert count_units(cnn, "relu3", x) == 32
    assert count_units(cnn, "fc1", x) == 64
    assert count_units(cnn, None, x) == 10
    with pytest.raises(LayerNameError, match="Did you mean"):
        count_units(cnn, "relu7", x)
    assert hooks_left(cnn) == 0


def test_visualize_renders_and_measures_every_unit(cnn, digits):
    vis = visualize(cnn, unit_objective("channel", "relu1", range(8)), digits.all_inputs(), config=FAST,
                    progress=False)
    assert vis.result.images.shape == (8, 1, 8, 8)
    assert vis.evidence.units == tuple(range(8))
    summary = json.loads(json.dumps(to_json(vis)))
    assert summary["steps"] == 16 and len(summary["units"]) == 8
    assert set(summary["units"][0]) == {"unit", "activation", "dataset_max", "dataset_argmax", "ratio"}


def test_visualize_compares_with_the_data_in_batches_of_batch_size(cnn, digits):
    x = digits.all_inputs()[:50]
    objective = unit_objective("channel", "relu1", range(4))
    sizes: list[int] = []
    whole = visualize(cnn, objective, x, config=FAST, progress=False)
    handle = cnn.register_forward_pre_hook(lambda module, args: sizes.append(int(args[0].shape[0])))
    try:
        split = visualize(cnn, objective, x, config=FAST, progress=False, batch_size=7)
    finally:
        handle.remove()
    assert split.evidence == whole.evidence
    assert sizes[-9:] == [4] + [7] * 7 + [1]  # the 4 renders, then the 50 images in batches of 7


def test_visualize_keeps_the_best_restart(cnn, digits):
    x = digits.all_inputs()
    one = visualize(cnn, unit_objective("logit", None, [2, 5]), x, config=FAST, progress=False)
    best = visualize(cnn, unit_objective("logit", None, [2, 5]), x, config=RenderConfig(steps=16, restarts=3),
                     progress=False)
    assert torch.all(best.result.activation >= one.result.activation - 1e-5)


def test_visualize_accepts_transforms_and_rejects_other_values(cnn, digits):
    x = digits.all_inputs()
    vis = visualize(cnn, unit_objective("logit", None, 0), x, config=FAST, transforms=jitter(1), progress=False)
    assert vis.result.images.shape == (1, 1, 8, 8)
    vis = visualize(cnn, unit_objective("logit", None, 0), x, config=FAST, transforms="standard", progress=False)
    assert vis.result.images.shape == (1, 1, 8, 8)
    vis = visualize(cnn, unit_objective("logit", None, 0), x, config=FAST, transforms="none", progress=False)
    assert vis.result.images.shape == (1, 1, 8, 8)
    with pytest.raises(ConfigError, match="transforms must be 'none', 'standard'"):
        visualize(cnn, unit_objective("logit", None, 0), x, config=FAST, transforms="jitter")  # type: ignore[arg-type]


def test_visualize_rejects_nan_data_before_rendering(cnn, digits, monkeypatch):
    module = importlib.import_module("mechscope.featurevis.visualize")  # the package re-exports a same-named function

    def no_render(*args, **kwargs):
        raise AssertionError("render ran on NaN data")

    monkeypatch.setattr(module, "render", no_render)
    data = digits.x_test[:10].clone()
    data[9, 0, 4, 4] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in data: .*the first is nan at index \(9, 0, 4, 4\)"):
        visualize(cnn, unit_objective("channel", "relu1", range(2)), data, progress=False)


def test_vit_token_layer_units_are_features(hooks_left):
    from mechscope.capture import capture
    from mechscope.featurevis import channel, evidence
    from tests.zoo import tiny_vit

    model = tiny_vit()
    layer = next(n for n in ("vit.layers.1", "vit.encoder.layer.1") if n in dict(model.named_modules()))
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    data = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert count_units(model, layer, images) == 16  # d_model, not the 5 tokens
    ev = evidence(model, channel(layer, [15, 2]), images, data)
    with torch.no_grad(), capture(model, layer) as store:
        model(images)
        model(data)
    act = store.act(layer)  # (7, tokens, d_model)
    by_hand = act.mean(dim=1)  # each feature averaged over the tokens
    assert ev.activation == pytest.approx([float(by_hand[0, 15]), float(by_hand[1, 2])], rel=1e-5, abs=1e-6)
    assert ev.dataset_max == pytest.approx([float(by_hand[2:, 15].max()), float(by_hand[2:, 2].max())], rel=1e-5)
    assert not hooks_left(model)


def test_visualize_logit_objective_on_a_dict_model_equals_the_wrapper():
    from tests.zoo import DictNet, SelectOutput

    model = DictNet().eval()
    data = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert count_units(model, None, data[:2]) == 3
    assert count_units(model, None, data[:2], output="features") == 5
    config = RenderConfig(steps=3, restarts=1)
    ours = visualize(model, unit_objective("logit", None, [0, 2]), data, config=config, progress=False)
    theirs = visualize(SelectOutput(model, lambda out: out["logits"]), unit_objective("logit", None, [0, 2]), data,
                       config=config, progress=False)
    assert torch.equal(ours.result.images, theirs.result.images)
    assert to_json(ours)["units"] == to_json(theirs)["units"]
    assert "of output 'logits'" in unit_objective("prob", None, [1], output="logits").description
