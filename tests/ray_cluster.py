"""A real Ray cluster of separate processes on this machine: a head and worker nodes joined over loopback.

Each node is `ray start ... --block` in its own process group; leaving the block stops them
all (SIGTERM, then SIGKILL for what is left), also when the test failed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}  # loopback only: no token


def running(pid: int | str) -> bool:
    """True while process `pid` runs (a zombie waiting to be reaped does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def running_in_group(pgid: int) -> list[str]:
    """Processes of process group `pgid` that still run."""
    pids = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    return [pid for pid in pids if running(pid)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def loopback_cluster(nodes: int = 2, cpus: int = 1, log_dir: Path | None = None) -> Iterator[str]:
    """Start a head and `nodes - 1` more nodes (`cpus` CPUs each); yield the head's HOST:PORT."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    started: list[subprocess.Popen[bytes]] = []
    logs = [open(os.devnull, "wb") if log_dir is None else open(log_dir / f"node-{i}.log", "wb")
            for i in range(nodes)]
    try:
        head = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", str(cpus),
                "--include-dashboard=false", "--disable-usage-stats", "--block"]
        started.append(subprocess.Popen(head, env=ENV, stdout=logs[0], stderr=subprocess.STDOUT,
                                        start_new_session=True))
        _wait_for(port, started[0])
        for i in range(1, nodes):
            # Every node on its own loopback address (127.0.0.2, ...), as machines of a cluster have their own.
            node = [RAY, "start", "--address", address, "--node-ip-address", f"127.0.0.{i + 1}", "--num-cpus",
                    str(cpus), "--block"]
            started.append(subprocess.Popen(node, env=ENV, stdout=logs[i], stderr=subprocess.STDOUT,
                                            start_new_session=True))
        _wait_for_nodes(address, nodes)
        yield address
    finally:
        for process in started:
            _stop(process)
        for log in logs:
            log.close()


def _wait_for(port: int, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"the Ray head exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("the Ray head did not start")


def _wait_for_nodes(address: str, nodes: int, timeout: float = 120) -> None:
    """Poll (in a subprocess, so this process never joins the cluster) until `nodes` nodes are alive."""
    code = ("import ray, time, sys\nray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)\n"
            "end = time.monotonic() + float(sys.argv[3])\n"
            "while sum(n['Alive'] for n in ray.nodes()) < int(sys.argv[2]) and time.monotonic() < end: time.sleep(0.5)\n"
            "print(sum(n['Alive'] for n in ray.nodes()))")
    out = subprocess.run([sys.executable, "-c", code, address, str(nodes), str(timeout)], env=ENV,
                         capture_output=True, text=True, timeout=timeout + 60)
    if out.stdout.strip().splitlines()[-1:] != [str(nodes)]:
        raise RuntimeError(f"the cluster at {address} did not reach {nodes} nodes: {out.stdout[-300:]}"
                           f"{out.stderr[-300:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a node's whole process group: SIGTERM, then SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                process.wait()
                return
            process.poll()
            time.sleep(0.2)
    process.wait()
