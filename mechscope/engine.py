"""Where independent pieces of work run: in this process, or as tasks on a Ray runtime.

An analysis that splits into independent tasks (shards of a dataset, chunks of units) hands
them to an `Engine`: `engine.map(fn, items, shared=obj)` returns `[fn(obj, item) for item in
items]`, in order. `LocalEngine` runs them here, one after another. `RayEngine` starts a local
Ray runtime with `workers` CPUs (or joins a cluster at `address`), puts `shared` (the model)
into the object store once, runs each item as a task (retried if its worker dies), and shuts
Ray down when its block ends, also on failure. Ray is imported only by `RayEngine`.

Example:
    >>> with open_engine(workers=2) as engine:            # workers=0 and no address: LocalEngine
    ...     parts = engine.map(score_shard, shards, shared=model)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from mechscope.errors import ConfigError

__all__ = ["Engine", "LocalEngine", "RayEngine", "open_engine", "RAY_INSTALL"]

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

RAY_INSTALL = "pip install 'mechscope[ray]' (or pip install ray)"
"""How to get Ray, for the messages that need it."""


class Engine(Protocol):
    """Runs `fn(shared, item)` for every item and returns the results in order."""

    @property
    def workers(self) -> int:
        """How many tasks can run at once."""

    def map(self, fn: Callable[[S, T], R], items: Sequence[T], *, shared: S) -> list[R]: ...


class LocalEngine:
    """Every task in this process, in order."""

    @property
    def workers(self) -> int:
        """One: tasks run one after another."""
        return 1

    def map(self, fn: Callable[[S, T], R], items: Sequence[T], *, shared: S) -> list[R]:
        """`[fn(shared, item) for item in items]`."""
        return [fn(shared, item) for item in items]


class RayEngine:
    """Tasks on a Ray runtime: a local one with `workers` CPUs, or the cluster at `address`.

    Use it as a context manager (`open_engine` does): Ray starts on entry and is shut down on
    exit, whatever happened inside.

    Raises:
        ConfigError: Ray is not installed, `workers` is not a positive integer, or the
            cluster at `address` cannot be reached.
    """

    def __init__(self, *, workers: int | None = None, address: str | None = None, max_retries: int = 3) -> None:
        if address is None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ConfigError(f"workers must be a positive integer, got {workers!r}; e.g. workers=2.")
        self._workers, self.address, self.max_retries = workers, address, max_retries
        self._ray: Any = None

    @property
    def workers(self) -> int:
        """CPUs of the runtime (known once it started)."""
        if self._ray is None:
            return self._workers or 1
        return max(int(self._ray.cluster_resources().get("CPU", 1)), 1)

    def __enter__(self) -> RayEngine:
        try:
            import ray
        except ImportError as err:
            raise ConfigError(f"running on workers needs Ray: {RAY_INSTALL}.") from err
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.address is not None:
            _check_reachable(self.address)
        try:
            if self.address is not None:
                ray.init(address=self.address, **{k: v for k, v in kwargs.items() if k != "include_dashboard"})
            else:
                ray.init(num_cpus=self._workers, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray runtime"
            raise ConfigError(f"could not start {where}: {' '.join(str(err).split())[:300]}") from err
        self._ray = ray
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    def map(self, fn: Callable[[S, T], R], items: Sequence[T], *, shared: S) -> list[R]:
        """Run `fn(shared, item)` as one task per item; `shared` is put into the object store once."""
        ray = self._ray
        if ray is None:
            raise ConfigError("RayEngine.map runs inside `with RayEngine(...)` (or `open_engine`).")
        handle = ray.put(shared)
        task = ray.remote(max_retries=self.max_retries, num_cpus=1)(fn)
        return list(ray.get([task.remote(handle, item) for item in items]))


def _check_reachable(address: str) -> None:
    """Fail fast (one line) when nothing listens at HOST:PORT; Ray itself would retry for minutes."""
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"a Ray address is HOST:PORT (or 'auto'), got {address!r}; e.g. 127.0.0.1:6379.")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except OSError as err:
        raise ConfigError(f"no Ray cluster answers at {address} ({err.strerror or err}); start one there with "
                          f"`ray start --head --port {port}`.") from err


@contextmanager
def open_engine(workers: int = 0, address: str | None = None) -> Iterator[Engine]:
    """The engine the options ask for: Ray with `workers` CPUs or at `address`, else this process."""
    if address is None and not workers:
        yield LocalEngine()
        return
    with RayEngine(workers=workers or None, address=address) as engine:
        yield engine
