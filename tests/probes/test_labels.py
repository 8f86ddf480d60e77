from __future__ import annotations

import pytest
import torch

from mechscope.errors import DataError
from mechscope.probes.labels import LabelGroup, Labels, as_labels, categorical, continuous


def test_as_labels_tensor_dtype_picks_kind():
    assert as_labels(torch.tensor([0, 1, 1])).kinds == {"y": "categorical"}
    assert as_labels(torch.tensor([0.5, 1.0])).kinds == {"y": "continuous"}


def test_as_labels_dict_keeps_order_and_kinds():
    labels = as_labels({"a": torch.tensor([1, 0]), "s": torch.tensor([[0.1, 0.2], [0.3, 0.4]])})
    assert labels.names == ["a", "s"]
    assert labels.kinds == {"a": "categorical", "s": "continuous"}
    assert labels["s"].n_outputs == 2
    assert not labels.is_categorical


def test_labels_subset_and_replace():
    labels = Labels([categorical("a", [0, 1, 2, 1]), continuous("v", [0.0, 1.0, 2.0, 3.0])])
    part = labels.subset(torch.tensor([1, 3]))
    assert part["a"].values.tolist() == [1, 1] and part["v"].values.tolist() == [1.0, 3.0]
    swapped = labels.replace("a", torch.tensor([2, 2, 0, 0]))
    assert swapped["a"].values.tolist() == [2, 2, 0, 0] and swapped["v"] is not None


def test_labels_different_lengths_raise():
    with pytest.raises(DataError, match="differ in length"):
        Labels([categorical("a", [0, 1]), categorical("b", [0, 1, 1])])


def test_labels_duplicate_names_raise():
    with pytest.raises(DataError, match="unique; repeated: \\['a'\\]"):
        Labels([categorical("a", [0, 1]), categorical("a", [1, 0])])


def test_categorical_group_rejects_one_hot_rows():
    with pytest.raises(DataError, match="argmax"):
        LabelGroup("a", torch.eye(3), "categorical")


def test_continuous_group_rejects_nan():
    with pytest.raises(DataError, match=r"continuous label group 'v': 1 of 2 \(1 nan\); the first is nan at "
                       r"index \(1,\)"):
        continuous("v", [0.0, float("nan")])


def test_as_labels_rejects_lists():
    with pytest.raises(DataError, match="got list"):
        as_labels([0, 1])  # type: ignore[arg-type]


def test_labels_unknown_group_lists_names():
    with pytest.raises(DataError, match="no label group 'c'; groups: \\['a'\\]"):
        Labels([categorical("a", [0, 1])])["c"]
