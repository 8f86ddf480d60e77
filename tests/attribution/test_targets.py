from __future__ import annotations

import numpy as np
import pytest
import torch

from mechscope.attribution import GradCAM, Saliency, resolve_target
from mechscope.attribution.targets import target_scores
from mechscope.errors import DataError, UnsupportedModelError

LOGITS = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]])


def test_resolve_target_none_is_predicted_class():
    assert resolve_target(None, LOGITS).tolist() == [1, 0]


@pytest.mark.parametrize("target", [2, np.int64(2), [2, 2], (2, 2), np.array([2, 2]), torch.tensor([2, 2])])
def test_resolve_target_accepts_int_and_per_image_indices(target):
    index = resolve_target(target, LOGITS)
    assert index.dtype == torch.long and index.tolist() == [2, 2]


def test_target_scores_pick_each_rows_logit():
    scores, index = target_scores(LOGITS, [0, 2])
    assert scores.tolist() == pytest.approx([0.1, 0.5]) and index.tolist() == [0, 2]


@pytest.mark.parametrize("target", [3, -1, [0, 7]])
def test_resolve_target_out_of_range_names_class_count(target):
    with pytest.raises(DataError, match=r"out of range for a model with 3 classes; use class indices 0\.\.2"):
        resolve_target(target, LOGITS)


def test_resolve_target_wrong_length_is_rejected():
    with pytest.raises(DataError, match=r"one class index per image, shape \(2,\); got shape \(3,\)"):
        resolve_target([0, 1, 2], LOGITS)


@pytest.mark.parametrize("target", [[0.5, 1.0], True, torch.tensor([True, False])])
def test_resolve_target_non_integer_is_rejected(target):
    with pytest.raises(DataError, match="target must"):
        resolve_target(target, LOGITS)


def test_resolve_target_needs_two_dimensional_logits():
    with pytest.raises(UnsupportedModelError, match=r"logits of shape \(batch, n_classes\)"):
        resolve_target(None, torch.zeros(4))


@pytest.mark.parametrize("method", [Saliency, GradCAM])
def test_attribute_out_of_range_target_is_a_clear_error(method, gap_cnn, x8):
    with pytest.raises(DataError, match="target class 10 .* 10 classes"):
        method(gap_cnn).attribute(x8, target=10)


def test_target_scores_read_the_chosen_output_of_a_language_model():
    from tests.zoo import tiny_gpt2

    model = tiny_gpt2()
    ids = torch.randint(0, 23, (2, 5), generator=torch.Generator().manual_seed(0))
    out = model(ids)
    with pytest.raises(UnsupportedModelError, match=r"shape \(2, 5, 23\).*output=lambda out: out.logits\[:, -1\]"):
        resolve_target(None, out)

    def last(o):
        return o.logits[:, -1]

    assert torch.equal(resolve_target(None, out, output=last), out.logits[:, -1].argmax(dim=1))
    scores, index = target_scores(out, 7, output=last)
    assert index.tolist() == [7, 7] and torch.equal(scores, out.logits[:, -1, 7])
    assert scores.requires_grad  # the graph is kept for the backward pass


def test_resolve_target_reads_dicts_and_tuples():
    assert resolve_target(None, {"logits": LOGITS, "aux": LOGITS[:, :1]}).tolist() == [1, 0]
    with pytest.raises(UnsupportedModelError, match="ambiguous"):
        resolve_target(None, (LOGITS, LOGITS[:, 0]))
    assert resolve_target(None, (LOGITS, LOGITS[:, 0]), output=0).tolist() == [1, 0]
