"""DataBundle: length checks and tensor-aware equality."""

from __future__ import annotations

import pytest
import torch

from mechscope.data import DataBundle
from mechscope.errors import DataError


def _bundle(**changes: object) -> DataBundle:
    fields: dict = {
        "x_train": torch.zeros(3, 2),
        "y_train": torch.tensor([0, 1, 0]),
        "x_test": torch.ones(2, 2),
        "y_test": torch.tensor([1, 1]),
        "spec": {"kind": "toy", "values": [1, 2]},
        "task": "classification",
        "n_classes": 2,
        "class_names": ("a", "b"),
        "extras": {"pairs": torch.arange(4), "name": "toy"},
    }
    fields.update(changes)
    return DataBundle(**fields)


def test_data_bundle_equal_when_every_field_matches() -> None:
    assert _bundle() == _bundle()


@pytest.mark.parametrize(
    "changes",
    [
        {"x_train": torch.zeros(3, 2, dtype=torch.float64)},
        {"x_test": torch.ones(2, 2) * 2},
        {"y_test": torch.tensor([[1], [1]])},
        {"spec": {"kind": "toy", "values": [1, 3]}},
        {"class_names": ("a", "c")},
        {"extras": {"pairs": torch.arange(4) + 1, "name": "toy"}},
        {"extras": {"pairs": torch.arange(4)}},
    ],
    ids=["dtype", "values", "shape", "spec", "class-names", "extra-tensor", "extra-keys"],
)
def test_data_bundle_differs_when_any_field_differs(changes: dict) -> None:
    assert _bundle(**changes) != _bundle()


def test_data_bundle_not_equal_to_other_types() -> None:
    assert _bundle() != "bundle"


def test_data_bundle_length_mismatch_raises_data_error() -> None:
    with pytest.raises(DataError, match="train inputs and targets differ in length: 3 vs 2"):
        _bundle(y_train=torch.tensor([0, 1]))


def test_data_bundle_check_finite_returns_a_clean_bundle() -> None:
    bundle = _bundle()
    assert bundle.check_finite() is bundle


def test_data_bundle_check_finite_names_the_split_and_index() -> None:
    x_test = torch.ones(2, 2)
    x_test[1, 0] = float("inf")
    with pytest.raises(DataError, match=r"Non-finite values in data\.x_test: 1 of 4 \(1 inf\); the first is inf at "
                       r"index \(1, 0\)\. .*pass check_finite=False to train\(\)"):
        _bundle(x_test=x_test).check_finite(skip_with="check_finite=False to train()")
