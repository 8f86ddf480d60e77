from __future__ import annotations

import functools
import json

import pytest
import torch
from torch import nn

from mechscope.capture import capture
from mechscope.errors import ConfigError, LayerNameError
from mechscope.featurevis import RenderConfig, channel, diversity, InputSpace, layer, logit, render, standard_transforms
from mechscope.featurevis.param import fft_image
from mechscope.featurevis.render import row_seeds
from mechscope.serialize import to_json

FAST = RenderConfig(steps=24)


def test_render_objective_rises_for_every_row(cnn, space):
    result = render(cnn, channel("relu2", range(16)), space, config=FAST, progress=False)
    assert result.images.shape == (16, 1, 8, 8) and result.trace.shape == (24, 16)
    alive = result.activation > 0
    assert alive.sum() >= 14  # a unit that never fires on the data may stay at 0
    assert torch.all(result.trace[-1][alive] > result.trace[0][alive])
    assert result.images.min() >= 0 and result.images.max() <= 1


def test_batched_render_matches_single_unit_renders(cnn, space):
    transforms = standard_transforms(8)
    units = [0, 3, 7, 12]
    batched = render(cnn, channel("relu2", units), space, config=FAST, transforms=transforms, progress=False)
    for row, unit in enumerate(units):
        alone = render(cnn, channel("relu2", unit), space, config=FAST, transforms=transforms, progress=False)
        assert torch.allclose(alone.images[0], batched.images[row], atol=1e-5)
        assert torch.allclose(alone.trace[:, 0], batched.trace[:, row], rtol=1e-4, atol=1e-5)


def test_render_is_deterministic_under_a_seed_and_changes_with_it(cnn, space):
    first = render(cnn, channel("relu3", [1, 2]), space, config=FAST, progress=False)
    again = render(cnn, channel("relu3", [1, 2]), space, config=FAST, progress=False)
    other = render(cnn, channel("relu3", [1, 2]), space, config=RenderConfig(steps=24, seed=1), progress=False)
    assert torch.equal(first.images, again.images)
    assert not torch.equal(first.images, other.images)


def test_row_seeds_depend_on_unit_and_repeat_count_not_position():
    init, noise = row_seeds(0, [4, 9, 4], 3)
    alone_init, alone_noise = row_seeds(0, [9], 1)
    assert init[1] == alone_init[0] and noise[1] == alone_noise[0]
    assert init[0] != init[2]  # the same unit twice gets two different starts
    assert row_seeds(0, None, 2)[0] != row_seeds(1, None, 2)[0]


def test_render_leaves_no_hooks_and_restores_the_model(cnn, space, hooks_left):
    cnn.train()
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    render(cnn, channel("relu1", [0, 1]) + 0.1 * layer("relu2"), space, config=RenderConfig(steps=3), progress=False)
    assert hooks_left(cnn) == 0
    assert cnn.training
    assert all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())
    assert all(p.grad is None for p in cnn.parameters())


def test_render_errors_leave_no_hooks(cnn, space, hooks_left):
    with pytest.raises(ConfigError, match="Channel 40 is out of range: layer 'relu3' has 32 channels"):
        render(cnn, channel("relu3", [0, 40]), space, config=FAST, progress=False)
    with pytest.raises(LayerNameError, match="Did you mean 'relu3'"):
        render(cnn, channel("relu33", 0), space, config=FAST, progress=False)
    assert hooks_left(cnn) == 0


def test_relu_leak_revives_a_unit_dead_at_the_start(one_conv):
    space = InputSpace((1, 4, 4))
    objective = channel("act", 0)
    config = RenderConfig(steps=40, lr=0.1, init="zeros")
    dead = render(one_conv, objective, space, config=RenderConfig(steps=40, lr=0.1, init="zeros", relu_leak=0.0),
                  progress=False)
    revived = render(one_conv, objective, space, config=config, progress=False)
    assert dead.activation.item() == 0.0
    assert revived.activation.item() > 0.1


def test_normalized_gradient_and_fft_also_rise(cnn, space):
    for config, param in [
        (RenderConfig(steps=24, normalize_grad=True), None),
        (RenderConfig(steps=24, param="fft"), None),
        (FAST, functools.partial(fft_image, space, decay_power=0.5)),
    ]:
        result = render(cnn, logit([0, 1]), space, config=config, param=param, progress=False)
        assert torch.all(result.trace[-1] > result.trace[0])


def test_layer_objective_uses_config_batch(cnn, space):
    result = render(cnn, layer("relu1"), space, config=RenderConfig(steps=3, batch=3), progress=False)
    assert result.images.shape[0] == 3 and result.units is None
    with pytest.raises(ConfigError, match="disagrees with the 2 units"):
        render(cnn, logit([0, 1]), space, config=RenderConfig(steps=3, batch=3), progress=False)


def test_diversity_makes_repeated_units_differ(cnn, space):
    def similarity(images: torch.Tensor) -> float:  # minus the diversity score: mean cosine of Gram matrices
        with torch.no_grad(), capture(cnn, ["relu2"]) as store:
            cnn(images)
        return -float(diversity("relu2")(lambda name: store.act(name)).mean())

    config = RenderConfig(steps=48)
    plain = render(cnn, channel("relu3", [5, 5, 5]), space, config=config, progress=False)
    diverse = render(cnn, channel("relu3", [5, 5, 5]) + diversity("relu2"), space, config=config, progress=False)
    assert similarity(diverse.images) < similarity(plain.images) - 0.01


def test_render_works_for_colour_models():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    space = InputSpace((3, 6, 6), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    param = functools.partial(fft_image, space, decorrelate=True)
    result = render(model, channel("1", [0, 1, 2, 3]), space, config=FAST, param=param, progress=False)
    assert result.images.shape == (4, 3, 6, 6)
    assert torch.all(result.trace[-1] > result.trace[0])


def test_result_json_is_plain(cnn, space):
    result = render(cnn, logit([0, 1]), space, config=RenderConfig(steps=2), progress=False)
    data = json.loads(json.dumps(to_json(result)))
    assert data["units"] == [0, 1] and data["steps"] == 2 and len(data["images"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be a positive integer"),
        ({"lr": -1.0}, "lr must be a positive finite number"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"param": "wavelet"}, "param must be one of"),
        ({"relu_leak": 2.0}, "relu_leak must be in"),
    ],
)
def test_render_config_validates(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RenderConfig(**kwargs)


def test_render_rejects_non_objectives(cnn, space):
    with pytest.raises(ConfigError, match="needs an Objective"):
        render(cnn, "relu2", space)  # type: ignore[arg-type]
