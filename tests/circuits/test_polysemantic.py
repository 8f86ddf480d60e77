from __future__ import annotations

import math

import pytest
import torch

from mechscope.circuits import polysemanticity
from mechscope.circuits.examples import LayerExamples, RankedExamples
from mechscope.circuits.polysemantic import classes_covering, label_entropy
from mechscope.errors import ConfigError, DataError
from mechscope.serialize import to_json


def _examples(top_indices: list[list[int]], n_inputs: int, dead: tuple[int, ...] = ()) -> LayerExamples:
    """Hand-made examples: unit u's top inputs are `top_indices[u]`; `dead` units are constant."""
    indices = torch.tensor(top_indices)
    values = torch.arange(indices.shape[1], 0, -1).float().expand_as(indices).clone()
    bottom_values = torch.zeros_like(values)
    for u in dead:
        values[u] = 0.0
    return LayerExamples(
        layer="toy",
        reduce="max",
        top=RankedExamples(values, indices, None),
        bottom=RankedExamples(bottom_values, indices, None),
        activation_shape=(indices.shape[0],),
        receptive_field=None,
        n_inputs=n_inputs,
    )


def test_label_entropy_constructed_distributions():
    counts = torch.tensor([[4, 0, 0, 0], [2, 2, 0, 0], [1, 1, 1, 1], [3, 1, 0, 0], [0, 0, 0, 0]])
    expected = [0.0, 1.0, 2.0, -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)), 0.0]
    torch.testing.assert_close(label_entropy(counts), torch.tensor(expected, dtype=torch.float64))
    assert str(float(label_entropy(counts)[0])) == "0.0"  # not -0.0


def test_classes_covering_eighty_percent():
    counts = torch.tensor([[10, 0, 0], [8, 2, 0], [7, 2, 1], [4, 3, 3], [0, 0, 0]])
    assert classes_covering(counts, 0.8).tolist() == [1, 1, 2, 3, 0]
    with pytest.raises(ConfigError, match=r"coverage must be in \(0, 1\]"):
        classes_covering(counts, 0.0)


def test_polysemanticity_on_constructed_units():
    # labels of inputs 0..9 are 0..4 twice: input i has label i % 5
    labels = torch.arange(10) % 5
    examples = _examples(
        [
            [0, 5, 0, 5],  # all label 0: monosemantic
            [0, 1, 5, 6],  # labels 0, 1, 0, 1: two classes, 1 bit
            [0, 1, 2, 3],  # four classes, 2 bits: polysemantic
            [4, 9, 4, 9],  # dead: constant over the dataset
        ],
        n_inputs=10,
        dead=(3,),
    )
    poly = polysemanticity(examples, labels, min_classes=3)
    torch.testing.assert_close(poly.entropy, torch.tensor([0.0, 1.0, 2.0, 0.0], dtype=torch.float64))
    assert poly.n_covering.tolist() == [1, 2, 4, 1]
    assert poly.is_polysemantic.tolist() == [False, False, True, False]
    assert poly.is_dead.tolist() == [False, False, False, True]
    assert poly.ranking.tolist() == [2, 1, 0, 3]
    assert poly.label_counts[1].tolist() == [2, 2, 0, 0, 0]
    data = to_json(poly)
    assert data["n_polysemantic"] == 1 and data["n_dead"] == 1
    assert data["units"][0] == {
        "unit": 2, "entropy_bits": 2.0, "n_covering": 4, "is_polysemantic": True, "is_dead": False,
        "label_counts": {"0": 1, "1": 1, "2": 1, "3": 1},
    }


def test_polysemanticity_rejects_wrong_labels():
    examples = _examples([[0, 1]], n_inputs=4)
    with pytest.raises(DataError, match="class indices of the 4 inputs"):
        polysemanticity(examples, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ConfigError, match="min_classes"):
        polysemanticity(examples, torch.zeros(4, dtype=torch.long), min_classes=0)
