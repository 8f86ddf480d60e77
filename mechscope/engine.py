"""Where independent pieces of work run: in this process, or as tasks on a Ray runtime.

An analysis that splits into independent tasks (shards of a dataset, chunks of units) hands
them to an `Engine`: `engine.map(fn, items, shared=obj)` returns `[fn(obj, item) for item in
items]`, in order. `LocalEngine` runs them here, one after another. `RayEngine` starts a local
Ray runtime with `workers` CPUs (or joins a cluster at `address`), puts `shared` (the model)
into the object store once, runs each item as a task (retried if its worker dies), and shuts
Ray down when its block ends, also on failure. Ray is imported only by `RayEngine`.

With `cache=` (a `mechscope.cache.TaskCache`), a task whose result is stored is not run again,
and each task that runs is stored the moment it finishes (by the driver, in finishing order),
so a run that is killed resumes from its finished tasks.

Example:
    >>> with open_engine(workers=2) as engine:            # workers=0 and no address: LocalEngine
    ...     parts = engine.map(score_shard, shards, shared=model)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from tqdm.auto import tqdm

from mechscope.cache import TaskCache
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

    def map(self, fn: Callable[[S, T], R], items: Sequence[T], *, shared: S, cache: TaskCache | None = None,
            desc: str | None = None) -> list[R]: ...


class LocalEngine:
    """Every task in this process, in order."""

    @property
    def workers(self) -> int:
        """One: tasks run one after another."""
        return 1

    def map(self, fn: Callable[[S, T], R], items: Sequence[T], *, shared: S, cache: TaskCache | None = None,
            desc: str | None = None) -> list[R]:
        """`[fn(shared, item) for item in items]`, stored results taken from `cache`; `desc` names a progress bar."""
        pending = _Pending(fn, items, shared, cache, desc)
        for i in pending.todo():
            pending.done(i, fn(shared, items[i]))
        return pending.results()


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
        self._shared: tuple[object, Any] | None = None  # (object, its handle) put last
        self._watchdog: subprocess.Popen[bytes] | None = None  # stops the local runtime if this process is killed

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
        if self.address is None:
            self._watchdog = _start_watchdog()  # watching before Ray starts a single process
        try:
            if self.address is not None:
                ray.init(address=self.address, **{k: v for k, v in kwargs.items() if k != "include_dashboard"})
            else:
                # "local": a runtime of our own, never the latest cluster started on this machine
                # (which ray.init() would join, found in RAY_ADDRESS or /tmp/ray/ray_current_cluster).
                ray.init(address="local", num_cpus=self._workers, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            ray.shutdown()  # whatever part of the runtime did start
            self.__exit__()
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray runtime"
            raise ConfigError(f"could not start {where}: {' '.join(str(err).split())[:300]}") from err
        self._ray = ray
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ray is not None:
            self._shared = None
            self._ray.shutdown()
            self._ray = None
        if self._watchdog is not None:
            self._watchdog.terminate()  # a driver that ends normally has shut Ray down itself
            self._watchdog.wait()
            self._watchdog = None

    def map(self, fn: Callable[[S, T], R], items: Sequence[T], *, shared: S, cache: TaskCache | None = None,
            desc: str | None = None) -> list[R]:
        """Run `fn(shared, item)` as one task per item not in `cache`; `shared` goes into the object store once.

        Results are collected (and stored in `cache`) as tasks finish; `desc` names a progress bar.
        """
        ray = self._ray
        if ray is None:
            raise ConfigError("RayEngine.map runs inside `with RayEngine(...)` (or `open_engine`).")
        pending = _Pending(fn, items, shared, cache, desc)
        todo = pending.todo()
        if not todo:
            return pending.results()
        handle = self._put(shared)
        task = ray.remote(max_retries=self.max_retries, num_cpus=1)(fn)
        running = {task.remote(handle, items[i]): i for i in todo}
        while running:
            finished, _ = ray.wait(list(running), num_returns=1)
            for ref in finished:
                pending.done(running.pop(ref), ray.get(ref))
        return pending.results()

    def _put(self, shared: object) -> Any:
        """The object-store handle of `shared`, put once for all the maps that share it."""
        if self._shared is None or self._shared[0] is not shared:
            self._shared = (shared, self._ray.put(shared))
        return self._shared[1]


class _Pending:
    """The results of one map: taken from the cache, or filled in (and stored) as tasks finish."""

    def __init__(self, fn: Callable[..., Any], items: Sequence[Any], shared: object, cache: TaskCache | None,
                 desc: str | None) -> None:
        self.cache, self.keys = None, []
        if cache is not None:
            try:  # keys depend on the shared object too
                self.cache = cache.scoped(shared)
                self.keys = [self.cache.key(fn, item) for item in items]
            except ConfigError as err:  # e.g. a user's output picker that cannot be hashed: run, keep nothing
                warnings.warn(f"the tasks of {getattr(fn, '__name__', fn)} are not kept in the task cache: {err}",
                              RuntimeWarning, stacklevel=3)
                self.cache, self.keys = None, []
        self.values: list[Any] = [None] * len(items)
        self.missing: list[int] = []
        for i in range(len(items)):
            found, value = self.cache.load(self.keys[i]) if self.cache is not None else (False, None)
            if found:
                self.values[i] = value
            else:
                self.missing.append(i)
        self.bar = tqdm(total=len(self.missing), desc=desc, unit="task", leave=False,
                        disable=True if desc is None or not self.missing else None)

    def todo(self) -> list[int]:
        """Positions of the items to run."""
        return list(self.missing)

    def done(self, i: int, value: Any) -> None:
        """Record (and store) the result of item `i`."""
        self.values[i] = value
        if self.cache is not None:
            self.cache.store(self.keys[i], value)
        self.bar.update()

    def results(self) -> list[Any]:
        """Every item's result, in item order."""
        self.bar.close()
        return self.values


_WATCHDOG = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which shuts Ray down itself
driver, me = os.getppid(), os.getpid()
group = os.getpgid(driver)

def table():
    rows = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/" + name + "/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            rows[int(name)] = (int(fields[1]), int(fields[2]), fields[19], comm)  # parent, group, start, name
    return rows

born = table()[me][2]
seen = {}
while os.getppid() == driver:  # the driver lives: remember every process it started, and theirs
    rows, todo = table(), [driver]
    while todo:
        parent = todo.pop()
        for pid, (ppid, _, start, _) in rows.items():
            if ppid == parent and pid != me and pid not in seen:
                seen[pid] = start
                todo.append(pid)
    for pid, (_, pgid, start, comm) in rows.items():  # Ray's agents, even once their parent let them go
        if pgid == group and comm.startswith("ray::") and int(start) >= int(born):
            seen.setdefault(pid, start)
    time.sleep(0.5)
for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 0.0)):  # the driver was killed: stop what it left
    alive = [pid for pid, start in seen.items() if table().get(pid, (0, 0, None))[2] == start]
    for pid in alive:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    time.sleep(wait)
"""


def _start_watchdog() -> subprocess.Popen[bytes] | None:
    """A process that stops this driver's local Ray runtime if the driver is killed (Linux: reads /proc).

    Ray's own processes outlive a driver killed with SIGKILL (its agents stay up); the watchdog
    remembers every process the driver started and, once the driver is gone, terminates them.
    """
    if not os.path.isdir("/proc"):
        return None
    return subprocess.Popen([sys.executable, "-c", _WATCHDOG], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


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
