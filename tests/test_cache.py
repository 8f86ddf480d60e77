"""The task cache: results stored without pickle, keyed by everything they depend on, reused on a rerun."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mechscope.cache import TaskCache, default_cache_folder, fingerprint
from mechscope.circuits.examples import dataset_examples
from mechscope.engine import LocalEngine
from mechscope.errors import ConfigError
from mechscope.featurevis import RenderConfig
from tests.zoo import TinyResNet

RUNS: list[int] = []


def _square(offset: int, item: int) -> dict[str, Any]:
    RUNS.append(item)
    return {"item": item, "value": torch.tensor([float(item) ** 2 + offset])}


def _count(_shared: object, item: int) -> int:
    RUNS.append(item)
    return item


def _same(a: Any, b: Any) -> None:
    """Deep equality with tensors compared exactly (dtype, shape, values, NaN in place)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif hasattr(a, "__dataclass_fields__"):
        for name in a.__dataclass_fields__:
            _same(getattr(a, name), getattr(b, name))
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_results_round_trip_exactly(tmp_path: Path) -> None:
    model = TinyResNet().eval()
    x = torch.randn(12, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    examples = dataset_examples(model, x, ["layer1.0.relu:1", "fc"], k=3, progress=False)
    value = {
        "examples": examples,
        "config": RenderConfig(steps=3),
        "numbers": (1, 2.5, float("nan"), float("-inf"), True, None, "text"),
        3: [torch.zeros(0, 4), torch.tensor([True, False]), torch.arange(6, dtype=torch.int16).reshape(2, 3)],
        (1, "a"): np.linspace(0, 1, 5),
        "path": Path("a/b"),
        "half": torch.randn(3, dtype=torch.bfloat16),
    }
    cache = TaskCache(tmp_path)
    cache.store("a" * 40, value)
    found, back = cache.load("a" * 40)
    assert found
    _same(value, back)
    assert {p.suffix for p in tmp_path.rglob("*") if p.is_file()} == {".json", ".safetensors"}  # never a pickle


def test_foreign_types_are_refused_and_never_loaded(tmp_path: Path) -> None:
    cache = TaskCache(tmp_path)
    with pytest.raises(ConfigError, match="without pickle"):
        cache.store("b" * 40, {"x": object()})
    from fractions import Fraction

    with pytest.raises(ConfigError, match="without pickle"):
        cache.store("b" * 40, Fraction(1, 3))
    # A file that names a class from elsewhere is a miss: nothing outside mechscope is imported or built.
    where = tmp_path / "cc"
    where.mkdir()
    (where / ("c" * 40 + ".json")).write_text(json.dumps({
        "format": "mechscope-task/1", "tensors": False,
        "value": {"dataclass": "subprocess:CompletedProcess", "fields": {"args": "x"}}}))
    assert cache.load("c" * 40) == (False, None)


def test_a_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    cache = TaskCache(tmp_path)
    cache.store("d" * 40, {"t": torch.ones(3)})
    (tmp_path / "dd" / ("d" * 40 + ".safetensors")).write_bytes(b"not a tensor file")
    assert cache.load("d" * 40) == (False, None)
    assert cache.misses == 1 and cache.hits == 0


def test_fingerprint_is_the_same_in_another_process() -> None:
    code = ("import torch; from mechscope.cache import fingerprint; from tests.zoo import TinyResNet; "
            "torch.manual_seed(3); m = TinyResNet(); "
            "print(fingerprint(m, torch.arange(5.0), {'k': 3, 'f': 0.1}, ('a', None)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    torch.manual_seed(3)
    assert out == fingerprint(TinyResNet(), torch.arange(5.0), {"k": 3, "f": 0.1}, ("a", None))


def test_fingerprint_changes_with_any_input() -> None:
    torch.manual_seed(0)
    model = TinyResNet()
    base = fingerprint(model, torch.arange(4.0))
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-6
    assert fingerprint(model, torch.arange(4.0)) != base
    assert fingerprint(torch.arange(4.0)) != fingerprint(torch.arange(4))  # dtype
    assert fingerprint(torch.zeros(2, 3)) != fingerprint(torch.zeros(3, 2))  # shape
    assert fingerprint([1, 2]) != fingerprint((1, 2)) != fingerprint("12")
    assert fingerprint(0.1) != fingerprint(math.nextafter(0.1, 1.0))
    with pytest.raises(ConfigError, match="cannot fingerprint"):
        fingerprint(object())


def test_a_rerun_takes_every_task_from_the_cache(tmp_path: Path) -> None:
    cache = TaskCache(tmp_path).scoped("model-a")
    RUNS.clear()
    first = LocalEngine().map(_square, [1, 2, 3], shared=10, cache=cache)
    assert RUNS == [1, 2, 3] and cache.misses == 3 and cache.hits == 0
    again = LocalEngine().map(_square, [3, 1, 2, 4], shared=10, cache=cache)
    assert RUNS == [1, 2, 3, 4]  # only the new item ran
    assert [r["item"] for r in again] == [3, 1, 2, 4]
    _same(first[0], again[1])
    other = TaskCache(tmp_path).scoped("model-b")  # another scope: nothing shared
    LocalEngine().map(_square, [1], shared=10, cache=other)
    assert RUNS[-1] == 1 and other.misses == 1
    assert len(cache) == 5


def test_the_default_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MECHSCOPE_CACHE", str(tmp_path / "here"))
    assert default_cache_folder() == tmp_path / "here"
    monkeypatch.delenv("MECHSCOPE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_folder() == tmp_path / "mechscope" / "tasks"


def test_tasks_whose_inputs_cannot_be_hashed_run_uncached_with_a_warning(tmp_path: Path) -> None:
    cache = TaskCache(tmp_path)
    RUNS.clear()
    with pytest.warns(RuntimeWarning, match="not kept in the task cache"):
        out = LocalEngine().map(_count, [1, 2], shared=object(), cache=cache)
    assert out == [1, 2] and RUNS == [1, 2] and len(cache) == 0
