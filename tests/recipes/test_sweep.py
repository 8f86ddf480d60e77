from __future__ import annotations

import csv
import dataclasses
import json
import math
import random
import statistics
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import torch

from mechscope.data import modular_data
from mechscope.engine import RayEngine
from mechscope.errors import ConfigError, LimitError, OutputError
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded, train
from mechscope.probes import probe_modular_mlp
from mechscope.recipes import SweepGrid, SweepResult, reproduce_article, sweep_modular
from mechscope.recipes.sweep import SWEEP_FILES, SweepRow, is_sweep, sweep_point
from mechscope.devices import threads

SMALL = SweepGrid(moduli=(2, 3), seeds=(0, 2, 7), n_pairs=300)  # 6 points of 0.1-0.5 s each


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One thread for the hand-made oracles, as every grid point runs (restored afterwards)."""
    with threads(1):
        yield


@pytest.fixture(scope="module")
def small() -> SweepResult:
    return sweep_modular(SMALL)


class ShuffledEngine:
    """In process, but claims several workers and runs each batch of items in a shuffled order on two threads."""

    def __init__(self, workers: int, seed: int) -> None:
        self._workers, self.rng, self.orders = workers, random.Random(seed), []

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, fn: Callable[[Any, Any], Any], items: Sequence[Any], *, shared: Any, cache: Any = None,
            desc: str | None = None) -> list[Any]:
        order = list(range(len(items)))
        self.rng.shuffle(order)
        self.orders.append(order)
        results: dict[int, Any] = {}
        before = torch.get_num_threads()
        torch.set_num_threads(2)  # a worker with other settings than this process
        try:
            for i in order:
                results[i] = fn(shared, items[i])
        finally:
            torch.set_num_threads(before)
        return [results[i] for i in range(len(items))]


def _row(modulus: int, seed: int, **values: float) -> SweepRow:
    base = dict(hidden=5, epochs=10, test_accuracy=1.0, probe_a=1.0, probe_b=1.0, probe_output=1.0,
                probe_all_heads=1.0, baseline=0.25, control=0.5, selectivity=0.5, untrained=0.5)
    return SweepRow(modulus=modulus, seed=seed, **{**base, **values})  # type: ignore[arg-type]


def test_sweep_point_row_equals_the_point_trained_and_probed_by_hand():
    grid = SweepGrid(moduli=(3,), seeds=(2,), n_pairs=300)
    row = sweep_point(grid, (3, 2))
    data = modular_data(3, n_train=300, n_test=300, seed=2)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=3, hidden=5), 2)
    trained = train(model, data, progress=False)
    report = probe_modular_mlp(model.eval(), data, seeds=(2,)).report
    assert (row.modulus, row.seed, row.hidden, row.epochs) == (3, 2, 5, trained.epochs_run)
    assert row.test_accuracy == trained.metrics["test_accuracy"]
    assert (row.probe_a, row.probe_b, row.probe_output) == (report.heads["a"], report.heads["b"],
                                                             report.heads["output"])
    assert row.probe_all_heads == report.all_heads_accuracy
    assert (row.baseline, row.control, row.selectivity, row.untrained) == (
        report.baseline_accuracy, report.control_accuracy, report.selectivity, report.untrained_accuracy)


def test_sweep_point_at_the_article_size_equals_reproduce_article():
    grid = SweepGrid(moduli=(2,), seeds=(7,))  # the default 10,000 pairs: the article's setup
    row = sweep_point(grid, (2, 7))
    run = reproduce_article(2, seeds=(7,), seed=7)
    assert row.test_accuracy == run.target_accuracy
    assert [row.probe_a, row.probe_b, row.probe_output] == list(run.report.heads.values())
    assert (row.probe_all_heads, row.control, row.untrained) == (
        run.report.all_heads_accuracy, run.report.control_accuracy, run.report.untrained_accuracy)


def test_sweep_modular_rows_come_back_in_grid_order(small):
    assert [(r.modulus, r.seed) for r in small.rows] == list(SMALL.points)
    assert SMALL.points == ((2, 0), (2, 2), (2, 7), (3, 0), (3, 2), (3, 7))
    assert [r.hidden for r in small.rows] == [5] * 6


def test_sweep_modular_rows_do_not_depend_on_engine_workers_or_order(small):
    engine = ShuffledEngine(workers=2, seed=0)
    shuffled = sweep_modular(SMALL, engine=engine)
    assert shuffled.rows == small.rows  # every number exactly
    assert [len(order) for order in engine.orders] == [6]  # one task per point
    assert any(order != sorted(order) for order in engine.orders)


def test_sweep_modular_models_learn_their_task(small):
    assert all(r.test_accuracy == 1.0 for r in small.rows)
    assert all(0.0 <= r.probe_all_heads <= min(r.probe_a, r.probe_b, r.probe_output) for r in small.rows)
    assert all(r.selectivity == pytest.approx(r.probe_all_heads - r.control) for r in small.rows)


def test_summary_is_mean_and_sample_std_over_seeds_per_modulus():
    rows = (_row(2, 0, probe_a=0.5), _row(2, 1, probe_a=1.0), _row(2, 2, probe_a=0.75), _row(5, 0, hidden=32))
    result = SweepResult(SweepGrid(moduli=(2, 5), seeds=(0, 1, 2)), rows)
    two, five = result.summary
    assert (two.modulus, two.n_seeds, two.hidden, five.modulus, five.n_seeds, five.hidden) == (2, 3, 5, 5, 1, 32)
    assert two.mean["probe_a"] == 0.75
    assert two.std["probe_a"] == pytest.approx(0.25)
    assert five.std["probe_a"] == 0.0
    assert set(two.mean) == set(result.columns) - {"modulus", "seed", "hidden"}


def test_write_puts_agreeing_csv_and_json_and_a_figure(tmp_path):
    rows = (_row(2, 0, probe_a=1 / 3), _row(2, 1, untrained=float("nan")), _row(3, 0, baseline=0.1 + 0.2))
    result = SweepResult(SweepGrid(moduli=(2, 3), seeds=(0, 1)), rows)
    paths = result.write(tmp_path / "sweep")
    assert [p.name for p in paths] == list(SWEEP_FILES)
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == sorted(SWEEP_FILES)
    table = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    with open(tmp_path / "sweep" / "sweep.csv", newline="") as handle:
        read = [{k: float(v) for k, v in line.items()} for line in csv.DictReader(handle)]
    assert list(read[0]) == list(result.columns)
    for from_csv, from_json, row in zip(read, table["rows"], rows, strict=True):
        for name, value in dataclasses.asdict(row).items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(from_csv[name]) and from_json[name] is None
            else:
                assert from_csv[name] == from_json[name] == value  # floats round-trip exactly
    assert table["format"] == "mechscope-sweep" and table["grid"]["moduli"] == [2, 3]
    assert [s["modulus"] for s in table["summary"]] == [2, 3]
    assert table["summary"][0]["mean"]["probe_a"] == statistics.fmean([1 / 3, 1.0])
    assert (tmp_path / "sweep" / "sweep.png").read_bytes().startswith(b"\x89PNG")


def test_write_replaces_an_earlier_sweep_but_never_another_folder(tmp_path):
    first = SweepResult(SweepGrid(moduli=(2,), seeds=(0,)), (_row(2, 0),))
    first.write(tmp_path / "s")
    assert is_sweep(tmp_path / "s")
    second = SweepResult(SweepGrid(moduli=(2,), seeds=(0,)), (_row(2, 0, probe_a=0.5),))
    second.write(tmp_path / "s")
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["rows"][0]["probe_a"] == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporaries left beside it
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(OutputError, match="does not hold a mechscope sweep"):
        first.write(other)
    assert [p.name for p in other.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"moduli": (1, 2)}, ConfigError, r"moduli must hold integers from 2 to 10000, got 1 in \(1, 2\)"),
        ({"moduli": ()}, ConfigError, "moduli must hold integers from 2 to 10000, got none"),
        ({"seeds": ()}, ConfigError, r"seeds must hold integers from 0 to .*, got none; e.g. seeds=range\(20\)"),
        ({"seeds": (0, -1)}, ConfigError, "got -1"),
        ({"seeds": (0, 0)}, ConfigError, r"seeds must not repeat a value, got \(0, 0\)"),
        ({"moduli": 5}, ConfigError, "moduli must be a sequence of integers, got 5"),
        ({"n_pairs": 5}, ConfigError, "n_pairs must be an integer >= 10, got 5"),
        ({"operation": "/"}, ConfigError, "operation must be one of"),
        ({"seeds": range(20_000)}, LimitError, "number of grid points is 60000, above the limit"),
    ],
)
def test_sweep_grid_bad_settings_raise_with_the_fix(settings, error, message):
    with pytest.raises(error, match=message):
        SweepGrid(**settings)


def test_sweep_grid_stores_any_sequence_as_a_tuple():
    grid = SweepGrid(moduli=[3, 2], seeds=range(2))
    assert grid.moduli == (3, 2) and grid.seeds == (0, 1)
    assert grid == SweepGrid(moduli=(3, 2), seeds=(0, 1))


@pytest.mark.slow
@pytest.mark.ray
def test_sweep_on_two_ray_workers_gives_the_same_rows(small):
    pytest.importorskip("ray")
    with RayEngine(workers=2) as engine:
        on_ray = sweep_modular(SMALL, engine=engine)
    assert on_ray.rows == small.rows


def test_an_interrupted_sweep_trains_only_the_unfinished_points(small, tmp_path):
    from mechscope.cache import TaskCache

    cache = TaskCache(tmp_path)
    assert sweep_modular(SMALL, cache=cache).rows == small.rows and cache.misses == 6
    for entry in sorted(tmp_path.glob("*/*.json"))[:4]:  # as if the sweep had been killed before these finished
        entry.unlink()
    again = TaskCache(tmp_path)
    assert sweep_modular(SMALL, cache=again).rows == small.rows
    assert (again.hits, again.misses) == (2, 4)
