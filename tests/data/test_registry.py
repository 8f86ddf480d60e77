"""load_data: every kind's spec survives JSON and rebuilds an equal bundle; bad specs raise ConfigError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from mechscope.data import DataBundle, digits_data, function_data, load_data, modular_data
from mechscope.data.registry import DATA_BUILDERS
from mechscope.errors import ConfigError


def _round_trip(bundle: DataBundle) -> DataBundle:
    return load_data(json.loads(json.dumps(bundle.spec)))


@pytest.mark.parametrize(
    "build",
    [
        lambda: modular_data(2),
        lambda: modular_data(7, "*", encoding="pairs", test_fraction=0.3, seed=5),
        lambda: modular_data(5, "-", n_train=200, n_test=100, seed=1),
        lambda: function_data("sum", n_train=100, n_test=20),
        lambda: function_data("weighted", n_inputs=3, n_train=100, n_test=20, seed=9),
        lambda: function_data("weighted", coefficients=[0.1, 0.2], constant=1 / 3, n_inputs=2, n_train=50, n_test=5),
        lambda: function_data("product", n_train=100, n_test=20, seed=2),
        lambda: digits_data("digits", seed=3),
        lambda: digits_data("mnist5k", test_fraction=0.1),
    ],
    ids=["mod2", "mod7-pairs", "mod5-sampled", "sum", "weighted", "weighted-given", "product", "digits", "mnist5k"],
)
def test_load_data_rebuilds_equal_bundle_from_json_spec(build: Any) -> None:
    bundle = build()
    assert _round_trip(bundle) == bundle


def test_load_data_rebuilds_idx_bundle(mnist_dir: Path) -> None:
    bundle = digits_data(f"idx:{mnist_dir}")
    assert _round_trip(bundle) == bundle


def test_load_data_does_not_mutate_spec() -> None:
    spec = modular_data(3).spec
    copy = dict(spec)
    load_data(spec)
    assert spec == copy


def test_load_data_changed_seed_gives_different_bundle() -> None:
    bundle = modular_data(6)
    assert load_data({**bundle.spec, "seed": 1}) != bundle


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "modulr", "modulus": 2}, r"Unknown data kind 'modulr'; choose one of 'modular', .* mean 'modular'\?"),
        ({"modulus": 2}, r"Data spec \{'modulus': 2\} has no 'kind'; add one of 'modular', 'function', 'digits'"),
        ({"kind": "modular", "modulus": 2, "width": 3}, r"unknown keys \['width'\]; modular_data takes"),
        ({"kind": "modular", "modulus": 1}, r"modulus must be an integer >= 2"),
        ("modular", r"A data spec is a dict such as bundle\.spec, got str"),
    ],
)
def test_load_data_bad_spec_raises_config_error(spec: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_data(spec)


def test_load_data_in_memory_tensors_spec_explains_how_to_save() -> None:
    data = DataBundle.from_tensors(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ConfigError, match=r"^This data spec describes a bundle built from in-memory tensors "
                       r"\(DataBundle\.from_tensors\), which cannot be rebuilt from its spec; save the data with "
                       r"bundle\.save\('data\.safetensors'\)"):
        load_data(json.loads(json.dumps(data.spec)))


def test_load_data_knows_the_file_kinds() -> None:
    assert {"npz", "safetensors", "images"} <= set(DATA_BUILDERS)
    message = r"^Data spec for kind 'npz' has unknown keys \['image_size'\]; npz_data takes \['path', 'seed', "
    with pytest.raises(ConfigError, match=message):
        load_data({"kind": "npz", "path": "d.npz", "image_size": 28})


def test_load_data_rebuilds_saved_bundle(tmp_path: Path) -> None:
    saved = modular_data(4, encoding="pairs").save(tmp_path / "mod4.safetensors")
    assert _round_trip(saved) == saved
    assert saved.x_train.dtype == torch.int64 and saved.n_classes == 4
