"""DataBundle: length checks, tensor-aware equality, from_tensors validation and split, save."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mechscope.data import DataBundle, load_data
from mechscope.errors import ConfigError, DataError, LimitError, OutputError
from mechscope.limits import MAX_CLASSES, MEMORY_ENV


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


# DataBundle.from_tensors ---------------------------------------------------------------------------------------


def test_from_tensors_split_is_the_documented_seeded_permutation() -> None:
    x = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    y = torch.arange(10) % 3
    data = DataBundle.from_tensors(x, y, test_fraction=0.25, seed=7)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(7))
    assert torch.equal(data.extras["index_test"], order[:3])  # floor(10 * 0.25 + 0.5) = 3
    assert torch.equal(data.extras["index_train"], order[3:])
    assert torch.equal(data.x_train, x[order[3:]]) and torch.equal(data.y_test, y[order[:3]])
    assert data.task == "classification" and data.n_classes == 3 and data.class_names is None


def test_from_tensors_same_seed_same_split_other_seed_other_split() -> None:
    x, y = torch.randn(50, 4), torch.randn(50)
    first = DataBundle.from_tensors(x, y, seed=1)
    assert DataBundle.from_tensors(x, y, seed=1) == first
    assert not torch.equal(DataBundle.from_tensors(x, y, seed=2).extras["index_test"], first.extras["index_test"])


def test_from_tensors_keeps_at_least_one_example_per_split() -> None:
    data = DataBundle.from_tensors(torch.randn(2, 1), torch.randn(2), test_fraction=0.01)
    assert data.x_train.shape[0] == 1 and data.x_test.shape[0] == 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_from_tensors_converts_floating_inputs_to_float32(dtype: torch.dtype) -> None:
    x = torch.tensor([[0.5, 1.5], [2.0, -3.0], [4.0, 8.0]], dtype=dtype)
    data = DataBundle.from_tensors(x, torch.tensor([0.0, 1.0, 2.0]), x_test=x[:1], y_test=torch.tensor([0.0]))
    assert data.x_train.dtype == torch.float32 and torch.equal(data.x_train, x.float())
    assert data.task == "regression" and data.y_train.dtype == torch.float32 and data.n_classes is None


def test_from_tensors_numpy_arrays_and_explicit_split() -> None:
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    data = DataBundle.from_tensors(
        x, np.array([0, 1, 1, 0]), x_test=x[:2], y_test=np.array([2, 1]), class_names=["a", "b", "c"]
    )
    assert torch.equal(data.x_train, torch.from_numpy(x).float())
    assert data.y_test.tolist() == [2, 1] and data.y_test.dtype == torch.int64
    assert data.n_classes == 3 and data.class_names == ("a", "b", "c")
    assert data.extras["index_test"].tolist() == [0, 1]


def test_from_tensors_token_ids_and_per_token_labels() -> None:
    x = torch.tensor([[1, 2, 3], [3, 2, 1], [0, 0, 4], [4, 4, 4]], dtype=torch.int32)
    y = x % 2
    data = DataBundle.from_tensors(x, y, x_test=x[:1], y_test=y[:1])
    assert data.x_train.dtype == torch.int64 and torch.equal(data.x_train, x.long())
    assert data.y_train.shape == (4, 3) and data.n_classes == 2


def test_from_tensors_spec_is_a_digest_of_the_tensors() -> None:
    x, y = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    spec = DataBundle.from_tensors(x, y).spec
    assert spec["kind"] == "tensors" and len(spec["sha256"]) == 64
    assert DataBundle.from_tensors(x, y).spec == spec
    assert DataBundle.from_tensors(x + 1, y).spec != spec


def test_from_tensors_records_a_given_spec() -> None:
    data = DataBundle.from_tensors(torch.randn(4, 2), torch.randn(4), spec={"kind": "npz", "path": "/d.npz"})
    assert data.spec == {"kind": "npz", "path": "/d.npz"}


def _nan_x() -> torch.Tensor:
    x = torch.zeros(3, 2)
    x[2, 1] = float("nan")
    return x


@pytest.mark.parametrize(
    ("x", "y", "options", "message"),
    [
        (torch.zeros(3, 2), torch.zeros(2), {}, r"^x and y differ in length: 3 vs 2; pass one target per input\.$"),
        (torch.zeros(0, 2), torch.zeros(0), {}, r"^x holds no examples; every split needs at least one\.$"),
        (torch.zeros(1, 2), torch.zeros(1), {}, r"^x holds 1 example; at least 2 are needed to hold out a test split"),
        (torch.tensor(1.0), torch.tensor(1.0), {}, r"^x is a single value; give it a batch dimension"),
        (torch.zeros(3, 2), torch.zeros(3), {"x_test": torch.zeros(1, 2)}, r"^got x_test alone; pass both x_test"),
        (
            torch.zeros(3, 2), torch.zeros(3), {"x_test": torch.zeros(1, 3), "y_test": torch.zeros(1)},
            r"^x_test examples have shape \(3,\) but x examples \(2,\); both splits need the same example shape\.$",
        ),
        (_nan_x(), torch.zeros(3), {}, r"^Non-finite values in x: 1 of 6 \(1 nan\); the first is nan at index \(2, 1"),
        (torch.zeros(3, 2, dtype=torch.bool), torch.zeros(3), {}, r"^x is bool; convert it to numbers first"),
        (torch.zeros(3, 2, dtype=torch.complex64), torch.zeros(3), {}, r"^x is complex64; inputs must be real"),
        (
            torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(3), {},
            r"^x holds integers of shape \(3, 4, 4\); integer inputs are token ids of shape \(batch, pos\)\.",
        ),
        (
            torch.tensor([[0, 1], [2, -5], [1, 1]]), torch.zeros(3), {},
            r"^x holds the negative token id -5 \(first at index \(1, 1\)\); token ids must be >= 0\.$",
        ),
        (torch.zeros(3, 2), torch.tensor([0, -1, 1]), {}, r"^y holds the label -1; class labels must be indices"),
        (
            torch.zeros(3, 2), torch.tensor([0.0, 1.0, 1.0]), {"task": "classification"},
            r"^y is float32 but classification needs integer class indices; convert with y\.long\(\)",
        ),
        (torch.zeros(3, 2), torch.zeros(3, dtype=torch.bool), {}, r"^y is bool; give integer class indices"),
        (
            torch.zeros(3, 2), torch.zeros(3, 5, dtype=torch.int64), {},
            r"^y has shape \(3, 5\); classification targets are class indices of shape \(batch,\) or \(batch, 2\)",
        ),
        (
            torch.zeros(3, 2), torch.tensor([0, 1, 7]), {"n_classes": 5},
            r"^the targets hold the label 7 but there are 5 classes; labels must lie in 0\.\.4: pass n_classes=8",
        ),
        (torch.zeros(3, 2), torch.zeros(3, dtype=torch.int64), {}, r"^the targets hold a single class \(0\)"),
        ([[0.0], [1.0]], torch.zeros(2), {}, r"^x must be a torch\.Tensor or numpy array, got list"),
        (
            np.array([[object()], [object()]]), torch.zeros(2), {},
            r"^x is a numpy array of Python objects \(dtype object\)",
        ),
    ],
    ids=[
        "lengths", "empty", "one-example", "no-batch-dim", "x-test-alone", "test-shape", "nan", "bool-x",
        "complex-x", "integer-images", "negative-ids", "negative-label", "float-y-classification", "bool-y",
        "y-shape", "label-out-of-range", "single-class", "list", "object-array",
    ],
)
def test_from_tensors_invalid_data_raises_data_error(x: object, y: object, options: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        DataBundle.from_tensors(x, y, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"spec": {}}, r"^spec must be a dict with a 'kind' naming how to rebuild the data, got \{\}"),
        ({"spec": {"kind": "npz", "path": object()}}, r"^spec must be JSON-serialisable"),
        ({"task": "ranking"}, r"^Unknown task 'ranking'; choose one of 'classification', 'regression'\.$"),
        ({"test_fraction": 1.0}, r"^test_fraction must be a number strictly between 0 and 1, got 1\.0"),
        ({"seed": -1}, r"^seed must be an integer in \[0, 2\*\*63 - 1\], got -1"),
        ({"class_names": "ab"}, r"^class_names must be a list of strings, one per class, got 'ab'\.$"),
        ({"class_names": ["a", "a"]}, r"^class_names must be distinct, got \['a', 'a'\]\.$"),
        ({"class_names": ["a", "b"], "n_classes": 3}, r"^class_names has 2 names but n_classes is 3"),
    ],
)
def test_from_tensors_invalid_options_raise_config_error(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DataBundle.from_tensors(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]), **options)


def test_from_tensors_regression_refuses_class_options() -> None:
    with pytest.raises(ConfigError, match=r"^n_classes and class_names apply to classification, but the task is "):
        DataBundle.from_tensors(torch.zeros(4, 2), torch.zeros(4), n_classes=2)


def test_from_tensors_labels_above_max_classes_raise_limit_error() -> None:
    with pytest.raises(LimitError, match=rf"n_classes \(largest label \+ 1\) is {MAX_CLASSES + 1}, above the limit"):
        DataBundle.from_tensors(torch.zeros(2, 1), torch.tensor([0, MAX_CLASSES]))


def test_from_tensors_refuses_data_above_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_ENV, "1KB")
    with pytest.raises(LimitError, match=r"^converting and splitting the data would need about 1\.2 KB, more than"):
        DataBundle.from_tensors(torch.zeros(100, 1, dtype=torch.float64), torch.zeros(100))


def test_from_tensors_float64_overflow_is_reported() -> None:
    with pytest.raises(DataError, match=r"^Non-finite values in x \(as float32\): 1 of 2 \(1 inf\).*Rescale the"):
        DataBundle.from_tensors(torch.tensor([[1e300], [1.0]], dtype=torch.float64), torch.zeros(2))


# DataBundle.save -----------------------------------------------------------------------------------------------


def test_save_writes_a_file_that_rebuilds_the_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = DataBundle.from_tensors(torch.randn(9, 2), torch.tensor([0, 1, 2] * 3), class_names=["a", "b", "c"])
    monkeypatch.chdir(tmp_path)
    saved = data.save("data.safetensors")
    assert saved.spec == {"kind": "safetensors", "path": str(tmp_path / "data.safetensors"), "test_fraction": None,
                          "seed": 0}
    for split in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(saved, split), getattr(data, split))
    assert saved.class_names == ("a", "b", "c") and saved.n_classes == 3
    monkeypatch.chdir(tmp_path.parent)
    assert load_data(json.loads(json.dumps(saved.spec))) == saved
    assert data.save(tmp_path / "data.safetensors") == saved  # its own file is replaced


def test_save_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    other = tmp_path / "weights.safetensors"
    other.write_bytes(b"not ours")
    with pytest.raises(OutputError, match=r"is an existing file that does not hold a mechscope data file"):
        _bundle().save(other)
    assert other.read_bytes() == b"not ours"


def test_save_needs_a_safetensors_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^DataBundle\.save writes safetensors files; name the file with a "):
        _bundle().save(tmp_path / "data.npz")
