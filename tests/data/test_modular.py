"""modular_data: encodings, labels, all-pairs coverage, sampling, determinism and argument errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from mechscope.data import modular_data
from mechscope.data.modular import Operation
from mechscope.errors import ConfigError


def _reference_label(a: int, b: int, operation: str, modulus: int) -> int:
    value = {"+": a + b, "-": a - b, "*": a * b}[operation]
    return value % modulus  # Python's % is non-negative for a positive modulus


@pytest.mark.parametrize("modulus", [2, 5, 13])
def test_modular_data_one_hot_has_two_ones_at_the_pair(modulus: int) -> None:
    data = modular_data(modulus)
    for x, pairs in ((data.x_train, data.extras["pairs_train"]), (data.x_test, data.extras["pairs_test"])):
        assert x.dtype == torch.float32 and x.shape == (pairs.shape[0], 2 * modulus)
        assert set(x.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(x[:, :modulus].sum(1), torch.ones(len(x)))
        assert torch.equal(x[:, modulus:].sum(1), torch.ones(len(x)))
        assert torch.equal(x[:, :modulus].argmax(1), pairs[:, 0])
        assert torch.equal(x[:, modulus:].argmax(1), pairs[:, 1])


@pytest.mark.parametrize("operation", ["+", "-", "*"])
def test_modular_data_labels_equal_operation_mod_m(operation: Operation) -> None:
    modulus = 7
    data = modular_data(modulus, operation, n_train=300, n_test=200, seed=4)
    for pairs, y in ((data.extras["pairs_train"], data.y_train), (data.extras["pairs_test"], data.y_test)):
        expected = [_reference_label(a, b, operation, modulus) for a, b in pairs.tolist()]
        assert y.dtype == torch.int64
        assert y.tolist() == expected
    assert data.extras["operation"] == operation and data.extras["modulus"] == modulus


@pytest.mark.parametrize("modulus", [2, 7, 31])
def test_modular_data_all_pairs_cover_grid_once(modulus: int) -> None:
    data = modular_data(modulus, "-", encoding="pairs")
    together = torch.cat([data.extras["pairs_train"], data.extras["pairs_test"]]).tolist()
    assert len(together) == modulus * modulus
    assert {tuple(p) for p in together} == {(a, b) for a in range(modulus) for b in range(modulus)}


@pytest.mark.parametrize(("test_fraction", "n_test"), [(0.5, 50), (0.3, 30), (0.001, 1), (0.999, 99)])
def test_modular_data_test_fraction_sets_split_size(test_fraction: float, n_test: int) -> None:
    data = modular_data(10, test_fraction=test_fraction)
    assert len(data.y_test) == n_test
    assert len(data.y_train) == 100 - n_test


def test_modular_data_all_pairs_split_is_shuffled() -> None:
    pairs = modular_data(20).extras["pairs_train"]
    codes = pairs[:, 0] * 20 + pairs[:, 1]
    assert not torch.equal(codes, codes.sort().values)


def test_modular_data_pairs_encoding_returns_integer_pairs() -> None:
    data = modular_data(5, "*", encoding="pairs")
    assert data.x_train.dtype == torch.int64 and data.x_train.shape[1] == 2
    assert torch.equal(data.x_train, data.extras["pairs_train"])
    assert torch.equal(data.x_test, data.extras["pairs_test"])
    assert data.input_shape == (2,)


def test_modular_data_sampling_matches_article_setup() -> None:
    data = modular_data(2, n_train=10_000, n_test=10_000, seed=1)
    assert data.x_train.shape == (10_000, 4) and data.x_test.shape == (10_000, 4)
    for pairs in (data.extras["pairs_train"], data.extras["pairs_test"]):
        frequencies = torch.bincount(pairs[:, 0] * 2 + pairs[:, 1], minlength=4).double() / len(pairs)
        # each of the 4 pairs has probability 1/4; the standard error at n=10,000 is 0.0043
        assert torch.all((frequencies - 0.25).abs() < 0.02)


def test_modular_data_same_seed_gives_same_data() -> None:
    first, second = modular_data(11, "+", seed=3), modular_data(11, "+", seed=3)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    assert first == second


@pytest.mark.parametrize("sampled", [False, True], ids=["all-pairs", "sampled"])
def test_modular_data_different_seed_gives_different_data(sampled: bool) -> None:
    counts: dict[str, Any] = {"n_train": 50, "n_test": 50} if sampled else {}
    first, second = modular_data(11, seed=0, **counts), modular_data(11, seed=1, **counts)
    assert not torch.equal(first.extras["pairs_train"], second.extras["pairs_train"])
    assert first != second


def test_modular_data_leaves_global_rng_untouched() -> None:
    state = torch.random.get_rng_state()
    modular_data(9, n_train=100, n_test=100)
    modular_data(9)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_modular_data_metadata_and_spec_are_json() -> None:
    data = modular_data(4, "-", test_fraction=0.25, seed=2)
    assert data.task == "classification" and data.n_classes == 4
    assert data.class_names == ("0", "1", "2", "3")
    assert json.loads(json.dumps(data.spec)) == {
        "kind": "modular", "modulus": 4, "operation": "-", "encoding": "one_hot",
        "n_train": None, "n_test": None, "test_fraction": 0.25, "seed": 2,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modulus": 1}, r"modulus must be an integer >= 2, got 1\. Pass e\.g\. modulus=2"),
        ({"modulus": 2.5}, r"modulus must be an integer >= 2, got 2\.5"),
        ({"modulus": True}, r"modulus must be an integer >= 2, got True"),
        ({"modulus": 5, "operation": "/"}, r"Unknown operation '/'; choose one of '\+', '-', '\*'"),
        ({"modulus": 5, "encoding": "binary"}, r"Unknown encoding 'binary'; choose one of 'one_hot', 'pairs'"),
        ({"modulus": 5, "test_fraction": 0.0}, r"test_fraction must be a number strictly between 0 and 1, got 0\.0"),
        ({"modulus": 5, "test_fraction": 1.5}, r"got 1\.5; pass e\.g\. test_fraction=0\.25"),
        ({"modulus": 5, "n_train": 10}, r"Got n_train=10 and n_test=None; pass both .* or neither"),
        ({"modulus": 5, "n_train": 0, "n_test": 5}, r"n_train must be an integer >= 1, got 0"),
        ({"modulus": 5, "seed": -1}, r"seed must be an integer in \[0, 2\*\*63 - 1\], got -1"),
    ],
)
def test_modular_data_invalid_arguments_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        modular_data(**kwargs)
