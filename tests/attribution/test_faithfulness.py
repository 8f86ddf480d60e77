from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from mechscope.attribution import GradCAM, IntegratedGradients, Saliency, faithfulness
from mechscope.attribution.faithfulness import RANDOM, area_under_curve, perturbation_curves
from mechscope.errors import ConfigError, DataError
from mechscope.serialize import to_json


class OnePixel(nn.Module):
    """Two classes; class 1's logit is 10 * pixel (1, 2) of a 1x4x4 image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = 10.0 * x[:, 0, 1, 2]
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_perturbation_curves_follow_the_map_order():
    x = torch.ones(2, 1, 4, 4)
    maps = torch.zeros(2, 4, 4)
    maps[0, 1, 2] = 1.0  # image 0: the decisive pixel first
    maps[1] = torch.arange(16.0).view(4, 4)
    maps[1, 1, 2] = -1.0  # image 1: the decisive pixel last
    fractions, deletion, insertion = perturbation_curves(OnePixel(), x, maps, target=1, n_steps=16)
    assert fractions.tolist() == pytest.approx([k / 16 for k in range(17)])
    high, low = torch.sigmoid(torch.tensor(10.0)).item(), 0.5
    assert deletion[0, 0] == pytest.approx(high) and torch.allclose(deletion[0, 1:], torch.tensor(low))
    assert torch.allclose(deletion[1, :16], torch.tensor(high)) and deletion[1, 16] == pytest.approx(low)
    assert insertion[0, 0] == pytest.approx(low) and torch.allclose(insertion[0, 1:], torch.tensor(high))
    assert torch.allclose(insertion[1, :16], torch.tensor(low)) and insertion[1, 16] == pytest.approx(high)


def test_perturbation_curves_endpoints_and_batching(gap_cnn, x8):
    maps = Saliency(gap_cnn).attribute(x8)
    fractions, deletion, insertion = perturbation_curves(gap_cnn, x8, maps, n_steps=10)
    _, d_small, i_small = perturbation_curves(gap_cnn, x8, maps, n_steps=10, batch_size=5)
    probs = gap_cnn(x8).softmax(dim=1)
    target = probs.argmax(dim=1)
    blank = gap_cnn(torch.zeros_like(x8)).softmax(dim=1)
    assert torch.allclose(deletion[:, 0], probs.gather(1, target[:, None])[:, 0], atol=1e-6)
    assert torch.allclose(deletion[:, -1], blank.gather(1, target[:, None])[:, 0], atol=1e-6)
    assert torch.allclose(insertion[:, 0], deletion[:, -1]) and torch.allclose(insertion[:, -1], deletion[:, 0])
    assert torch.allclose(deletion, d_small, atol=1e-6) and torch.allclose(insertion, i_small, atol=1e-6)
    assert fractions.shape == (11,)


def test_perturbation_curves_ties_are_seeded(gap_cnn, x8):
    flat = torch.zeros(6, 8, 8)  # every pixel tied: the order is random
    first = perturbation_curves(gap_cnn, x8, flat, n_steps=8, seed=3)[1]
    again = perturbation_curves(gap_cnn, x8, flat, n_steps=8, seed=3)[1]
    other = perturbation_curves(gap_cnn, x8, flat, n_steps=8, seed=4)[1]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_perturbation_curves_errors(gap_cnn, x8):
    with pytest.raises(DataError, match="maps must have shape"):
        perturbation_curves(gap_cnn, x8, torch.zeros(6, 4, 4))
    with pytest.raises(ConfigError, match="n_steps"):
        perturbation_curves(gap_cnn, x8, torch.zeros(6, 8, 8), n_steps=0)


def test_area_under_curve_is_trapezoidal():
    fractions = torch.tensor([0.0, 0.5, 1.0])
    assert area_under_curve(fractions, torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])).tolist() == [0.25, 1.0]


def test_faithfulness_reports_methods_and_random_baseline(gap_cnn, x8):
    result = faithfulness(gap_cnn, [Saliency(gap_cnn), GradCAM(gap_cnn)], x8, n_steps=8)
    assert set(result.deletion_auc) == {"Saliency", "Grad-CAM", RANDOM}
    assert set(result.random_baseline) == {"deletion_auc", "insertion_auc"}
    assert len(result.fractions) == 9 and all(len(v) == 9 for v in result.insertion.values())
    assert all(0.0 <= v <= 1.0 for v in result.deletion_auc.values())
    data = json.loads(json.dumps(to_json(result)))
    assert data["random_baseline"] == result.random_baseline and data["n_images"] == 6


def test_faithfulness_rejects_the_random_label(gap_cnn, x8):
    with pytest.raises(ConfigError, match="random baseline"):
        faithfulness(gap_cnn, {RANDOM: Saliency(gap_cnn)}, x8)


@pytest.mark.slow
def test_faithfulness_methods_beat_random_maps(trained_cnn, digits):
    # Measured on the trained 8x8 DigitCNN, 128 test images, 32 steps (deletion / insertion AUC):
    # Saliency 0.22 / 0.78, IG 0.06 / 0.94, Grad-CAM (4x4 map) 0.35 / 0.60, random 0.51 / 0.54.
    model = trained_cnn
    methods = [Saliency(model), IntegratedGradients(model), GradCAM(model)]
    result = faithfulness(model, methods, digits.x_test[:128], n_steps=32)
    base = result.random_baseline
    for label in ("Saliency", "Integrated Gradients", "Grad-CAM"):
        assert result.deletion_auc[label] < base["deletion_auc"] - 0.05
    for label in ("Saliency", "Integrated Gradients"):
        assert result.insertion_auc[label] > base["insertion_auc"] + 0.05


def test_faithfulness_nan_inputs_raise_before_any_work(gap_cnn, x8):
    x = x8.clone()
    x[1, 0, 2, 3] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in inputs: .*index \(1, 0, 2, 3\)"):
        faithfulness(gap_cnn, [Saliency(gap_cnn)], x, n_steps=4)


def test_perturbation_curves_nan_maps_raise(gap_cnn, x8):
    maps = torch.rand(6, 8, 8)
    maps[5, 7, 0] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in maps: 1 of 384 \(1 nan\); the first is nan at index "
                       r"\(5, 7, 0\)"):
        perturbation_curves(gap_cnn, x8, maps, n_steps=4)


def test_faithfulness_float64_inputs_give_a_clear_error(gap_cnn, x8):
    with pytest.raises(DataError, match=r"inputs are float64 but the model's parameters are float32"):
        faithfulness(gap_cnn, [Saliency(gap_cnn)], x8.double(), n_steps=4)


def test_faithfulness_on_a_tuple_model_with_output_equals_the_wrapper():
    from tests.zoo import SelectOutput, TupleNet

    model = TupleNet().eval()
    wrapped = SelectOutput(model, lambda out: out[0])
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = faithfulness(model, [Saliency(model, output=0)], x, n_steps=4, output=0)
    theirs = faithfulness(wrapped, [Saliency(wrapped)], x, n_steps=4)
    assert to_json(ours) == to_json(theirs)
