from __future__ import annotations

import json

import pytest
import torch
from scipy.stats import spearmanr

from mechscope.attribution import (
    GradCAM,
    GradientXInput,
    GuidedBackprop,
    IntegratedGradients,
    Saliency,
    cascading_randomization,
)
from mechscope.attribution.sanity import randomization_order, spearman
from mechscope.errors import ConfigError, DataError, LayerNameError
from mechscope.serialize import to_json


def test_spearman_matches_scipy_with_ties():
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (20, 30), generator=generator).float()  # many ties
    b = a + torch.randint(0, 3, (20, 30), generator=generator).float()
    ours = spearman(a, b)
    reference = torch.tensor([spearmanr(a[i], b[i]).statistic for i in range(20)], dtype=torch.float32)
    assert (ours - reference).abs().max() <= 1e-6


def test_spearman_constant_row_counts_as_zero():
    assert spearman(torch.zeros(1, 5), torch.arange(5.0)[None]).item() == 0.0
    assert spearman(torch.arange(5.0)[None], -torch.arange(5.0)[None]).item() == pytest.approx(-1.0)


def test_randomization_order_runs_from_logits_down(gap_cnn, dense_cnn):
    assert randomization_order(gap_cnn) == ["fc", "conv3", "conv2", "conv1"]
    assert randomization_order(dense_cnn) == ["fc2", "fc1", "conv3", "conv2", "conv1"]


def test_cascading_randomization_leaves_model_untouched_and_is_seeded(gap_cnn, x8):
    before = {k: v.clone() for k, v in gap_cnn.state_dict().items()}
    first = cascading_randomization(gap_cnn, [Saliency(gap_cnn), GradCAM(gap_cnn)], x8, seed=1)
    second = cascading_randomization(gap_cnn, [Saliency(gap_cnn), GradCAM(gap_cnn)], x8, seed=1)
    assert all(torch.equal(v, before[k]) for k, v in gap_cnn.state_dict().items())
    assert first == second
    assert first.steps == ["fc", "conv3", "conv2", "conv1"]
    assert set(first.spearman) == {"Saliency", "Grad-CAM"}
    assert all(len(v) == 4 and all(-1 <= r <= 1 for r in v) for v in first.spearman.values())
    assert json.loads(json.dumps(to_json(first)))["passes"].keys() == {"Saliency", "Grad-CAM"}


def test_cascading_randomization_custom_layers_and_labels(gap_cnn, x8):
    result = cascading_randomization(gap_cnn, {"sal": Saliency(gap_cnn)}, x8, layers=["fc"])
    assert result.steps == ["fc"] and list(result.spearman) == ["sal"]


def test_cascading_randomization_errors(gap_cnn, x8):
    with pytest.raises(LayerNameError, match="Did you mean 'conv3'"):
        cascading_randomization(gap_cnn, [Saliency(gap_cnn)], x8, layers=["conv33"])
    with pytest.raises(ConfigError, match="No attribution method"):
        cascading_randomization(gap_cnn, [], x8)
    with pytest.raises(ConfigError, match="labelled 'Saliency'"):
        cascading_randomization(gap_cnn, [Saliency(gap_cnn), Saliency(gap_cnn)], x8)
    with pytest.raises(ConfigError, match="threshold"):
        cascading_randomization(gap_cnn, [Saliency(gap_cnn)], x8, threshold=0.0)


@pytest.mark.slow
def test_sanity_gradients_and_gradcam_pass_guided_backprop_fails(trained_cnn, digits):
    # Measured on the trained 8x8 DigitCNN, 64 test images, steps fc2 fc1 conv4 conv3 conv2 conv1:
    # Saliency 0.35 0.23 0.16 0.13 0.10 0.13 (mean 0.18), Grad-CAM 0.25 0.18 0.11 0.03 -0.06 -0.11
    # (0.07), guided backprop 0.90 0.90 0.90 0.82 0.68 0.55 (0.79), gradient x input and IG ~0.91.
    model = trained_cnn
    methods = [Saliency(model), GradCAM(model), GuidedBackprop(model)]
    methods += [GradientXInput(model), IntegratedGradients(model)]
    result = cascading_randomization(model, methods, digits.x_test[:64], seed=0)
    mean = {label: sum(v) / len(v) for label, v in result.spearman.items()}
    assert result.passes["Saliency"] and result.passes["Grad-CAM"]
    assert not result.passes["Guided Backprop"]
    assert mean["Saliency"] < 0.35 and result.spearman["Saliency"][-1] < 0.25
    assert mean["Grad-CAM"] < 0.3
    assert mean["Guided Backprop"] > 0.65 and result.spearman["Guided Backprop"][0] > 0.8  # top layer random
    # Multiplying by the input keeps the digit's shape whatever the weights (Adebayo et al., 2018).
    assert min(result.spearman["Gradient x Input"]) > 0.8 and min(result.spearman["Integrated Gradients"]) > 0.8


def test_cascading_randomization_nan_inputs_raise(gap_cnn, x8):
    x = x8.clone()
    x[0, 0, 0, 7] = float("inf")
    with pytest.raises(DataError, match=r"Non-finite values in inputs: .*the first is inf at index \(0, 0, 0, 7\)"):
        cascading_randomization(gap_cnn, [Saliency(gap_cnn)], x)


def test_cascading_randomization_float64_inputs_give_a_clear_error(gap_cnn, x8):
    with pytest.raises(DataError, match=r"inputs are float64 but the model's parameters are float32"):
        cascading_randomization(gap_cnn, [Saliency(gap_cnn)], x8.double())


def test_cascading_randomization_on_a_dict_model_equals_the_wrapper():
    from tests.zoo import DictNet, SelectOutput

    model = DictNet().eval()
    wrapped = SelectOutput(model, lambda out: out["logits"])
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = cascading_randomization(model, [Saliency(model), GradCAM(model)], x)
    theirs = cascading_randomization(wrapped, [Saliency(wrapped), GradCAM(wrapped, "model.act")], x)
    assert ours.steps == ["fc", "conv"] and theirs.steps == ["model.fc", "model.conv"]
    assert ours.spearman == theirs.spearman
