"""Engines: in-process and on a local Ray runtime; sharded dataset examples equal the one-pass search."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch

from mechscope.circuits.examples import dataset_examples, merge_examples
from mechscope.engine import LocalEngine, RayEngine, open_engine
from mechscope.errors import ConfigError
from tests.zoo import TinyResNet, TokenGRU


class ShardingEngine(LocalEngine):
    """In process, but claims several workers, so analyses split their work into tasks."""

    def __init__(self, workers: int) -> None:
        self._workers, self.calls = workers, 0

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, fn: Callable[[Any, Any], Any], items: Sequence[Any], *, shared: Any, cache: Any = None,
            desc: str | None = None) -> list[Any]:
        self.calls += len(items)
        return super().map(fn, items, shared=shared, cache=cache, desc=desc)


def _same(a: Any, b: Any) -> None:
    for name in a.layers:
        x, y = a[name], b[name]
        for which in ("top", "bottom"):
            rx, ry = getattr(x, which), getattr(y, which)
            assert torch.equal(rx.indices, ry.indices) and torch.equal(rx.values, ry.values), (name, which)
            assert (rx.positions is None) == (ry.positions is None)
            if rx.positions is not None:
                assert torch.equal(rx.positions, ry.positions)
        assert x.n_inputs == y.n_inputs


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_shards_merge_into_the_one_pass_result_exactly(workers: int) -> None:
    model = TinyResNet().eval()
    x = torch.randn(70, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    x[10:20] = x[0]  # ties: identical inputs score identically; dataset order must break them
    layers = ["layer1.0.relu:1", "layer2.1.conv2", "fc"]
    one = dataset_examples(model, x, layers, k=5, batch_size=8, progress=False)
    engine = ShardingEngine(workers)
    sharded = dataset_examples(model, x, layers, k=5, batch_size=8, progress=False, engine=engine)
    assert engine.calls > 1
    _same(one, sharded)


def test_tokens_shard_too() -> None:
    model = TokenGRU().eval()
    ids = torch.randint(0, 11, (40, 6), generator=torch.Generator().manual_seed(1))
    one = dataset_examples(model, ids, ["embed", "head"], k=3, batch_size=4, progress=False)
    _same(one, dataset_examples(model, ids, ["embed", "head"], k=3, batch_size=4, progress=False,
                                engine=ShardingEngine(4)))


def test_merge_needs_parts() -> None:
    from mechscope.errors import DataError

    with pytest.raises(DataError, match="at least one"):
        merge_examples([])


def test_local_engine_runs_in_order() -> None:
    with open_engine() as engine:
        assert isinstance(engine, LocalEngine)
        assert engine.map(lambda shared, item: shared + item, [1, 2, 3], shared=10) == [11, 12, 13]


def test_bad_worker_counts_are_refused() -> None:
    with pytest.raises(ConfigError, match="workers"):
        RayEngine(workers=0)


def test_workers_start_a_runtime_of_their_own_even_beside_a_running_cluster(monkeypatch) -> None:
    import types

    calls: list[dict[str, Any]] = []
    fake = types.SimpleNamespace(init=lambda **kwargs: calls.append(kwargs), shutdown=lambda: None)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # what ray.init() without an address would join
    with RayEngine(workers=2):
        pass
    assert calls[0]["address"] == "local" and calls[0]["num_cpus"] == 2


def test_ray_is_not_imported_without_workers() -> None:
    code = ("import sys, torch; from mechscope.circuits.examples import dataset_examples; "
            "from tests.zoo import DictNet; from mechscope.engine import open_engine\n"
            "with open_engine() as e: dataset_examples(DictNet(), torch.randn(4, 1, 8, 8), 'act', k=2, progress=False, "
            "engine=e)\nprint('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr


@pytest.mark.slow
@pytest.mark.ray
def test_a_local_ray_runtime_gives_the_one_pass_result() -> None:
    pytest.importorskip("ray")
    model = TinyResNet().eval()
    x = torch.randn(48, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    one = dataset_examples(model, x, ["layer2.1.relu:1"], k=4, batch_size=8, progress=False)
    with open_engine(workers=2) as engine:
        assert isinstance(engine, RayEngine) and engine.workers == 2
        sharded = dataset_examples(model, x, ["layer2.1.relu:1"], k=4, batch_size=8, progress=False, engine=engine)
    _same(one, sharded)
    import ray

    assert not ray.is_initialized()  # shut down when the block ends


def _die_once(marker: str, item: int) -> int:
    """Square `item`; the first time item 2 runs, kill the worker process that runs it."""
    import os
    from pathlib import Path

    if item == 2 and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)  # the worker dies mid-task, as if killed
    return item * item


def _node_of(_shared: None, item: int) -> tuple[int, str]:
    import time

    import ray

    time.sleep(1.0)  # long enough that both nodes take tasks
    return item, ray.get_runtime_context().get_node_id()


@pytest.mark.slow
@pytest.mark.ray
def test_a_killed_worker_is_survived(tmp_path) -> None:
    pytest.importorskip("ray")
    marker = tmp_path / "died"
    with RayEngine(workers=2) as engine:
        results = engine.map(_die_once, list(range(5)), shared=str(marker))
    assert results == [0, 1, 4, 9, 16]  # the task of the killed worker ran again, with the same result
    assert marker.is_file()  # and the worker did die


@pytest.mark.slow
@pytest.mark.ray
def test_a_two_node_cluster_on_loopback_runs_tasks_on_both_nodes() -> None:
    """A driver process joins a head and a second node (separate `ray start` processes) and uses both."""
    pytest.importorskip("ray")
    import json
    from pathlib import Path

    from tests.ray_cluster import ENV, loopback_cluster

    code = ("import json, sys\nfrom mechscope.engine import open_engine\nfrom tests.test_engine import _node_of\n"
            "with open_engine(address=sys.argv[1]) as engine:\n"
            "    print(json.dumps([engine.workers, engine.map(_node_of, list(range(6)), shared=None)]))\n"
            "import ray\nprint(ray.is_initialized())")
    with loopback_cluster(nodes=2, cpus=1) as address:
        out = subprocess.run([sys.executable, "-c", code, address], env=ENV, cwd=Path(__file__).parents[1],
                             capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    workers, done = json.loads(lines[-2])
    assert workers == 2 and [i for i, _ in done] == list(range(6))
    assert len({node for _, node in done}) == 2
    assert lines[-1] == "False"  # the driver left the cluster when its block ended


def test_the_watchdog_stops_what_a_killed_driver_started() -> None:
    """A driver killed with SIGKILL cannot shut Ray down; its watchdog stops every process the driver started."""
    import os
    import signal
    import time

    from tests.ray_cluster import running

    code = ("import subprocess, sys, time\nfrom mechscope.engine import _start_watchdog\n_start_watchdog()\n"
            "time.sleep(0.3)\nchild = subprocess.Popen(['sleep', '300'])\ntime.sleep(1.5)\n"
            "print(child.pid, flush=True)\ntime.sleep(300)")
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        child = int(driver.stdout.readline())  # type: ignore[union-attr]
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        end = time.monotonic() + 20
        while running(child) and time.monotonic() < end:
            time.sleep(0.2)
        assert not running(child)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass



def _fail_on_three(_shared: None, item: int) -> int:
    if item == 3:
        raise ValueError("no threes")
    return item


@pytest.mark.slow
@pytest.mark.ray
def test_a_failing_task_shuts_ray_down() -> None:
    pytest.importorskip("ray")
    import ray

    engine = RayEngine(workers=2, max_retries=0)
    with pytest.raises(ValueError, match="no threes"):
        with engine:
            engine.map(_fail_on_three, list(range(5)), shared=None)
    assert not ray.is_initialized() and engine._watchdog is None  # the runtime and its watchdog are gone
