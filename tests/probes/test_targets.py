from __future__ import annotations

import pytest
import torch

from mechscope.errors import DataError
from mechscope.probes.targets import TargetGroup, Targets, as_targets, categorical, continuous


def test_as_targets_tensor_dtype_picks_kind():
    assert as_targets(torch.tensor([0, 1, 1])).kinds == {"y": "categorical"}
    assert as_targets(torch.tensor([0.5, 1.0])).kinds == {"y": "continuous"}


def test_as_targets_dict_keeps_order_and_kinds():
    targets = as_targets({"a": torch.tensor([1, 0]), "s": torch.tensor([[0.1, 0.2], [0.3, 0.4]])})
    assert targets.names == ["a", "s"]
    assert targets.kinds == {"a": "categorical", "s": "continuous"}
    assert targets["s"].n_outputs == 2
    assert not targets.is_categorical


def test_targets_subset_and_replace():
    targets = Targets([categorical("a", [0, 1, 2, 1]), continuous("v", [0.0, 1.0, 2.0, 3.0])])
    part = targets.subset(torch.tensor([1, 3]))
    assert part["a"].values.tolist() == [1, 1] and part["v"].values.tolist() == [1.0, 3.0]
    swapped = targets.replace("a", torch.tensor([2, 2, 0, 0]))
    assert swapped["a"].values.tolist() == [2, 2, 0, 0] and swapped["v"] is not None


def test_targets_different_lengths_raise():
    with pytest.raises(DataError, match="differ in length"):
        Targets([categorical("a", [0, 1]), categorical("b", [0, 1, 1])])


def test_targets_duplicate_names_raise():
    with pytest.raises(DataError, match="unique; repeated: \\['a'\\]"):
        Targets([categorical("a", [0, 1]), categorical("a", [1, 0])])


def test_categorical_group_rejects_one_hot_rows():
    with pytest.raises(DataError, match="argmax"):
        TargetGroup("a", torch.eye(3), "categorical")


def test_continuous_group_rejects_nan():
    with pytest.raises(DataError, match=r"continuous target group 'v': 1 of 2 \(1 nan\); the first is nan at "
                       r"index \(1,\)"):
        continuous("v", [0.0, float("nan")])


def test_as_targets_rejects_lists():
    with pytest.raises(DataError, match="got list"):
        as_targets([0, 1])  # type: ignore[arg-type]


def test_targets_unknown_group_lists_names():
    with pytest.raises(DataError, match="no target group 'c'; groups: \\['a'\\]"):
        Targets([categorical("a", [0, 1])])["c"]
