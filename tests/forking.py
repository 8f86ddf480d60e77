"""Run many short Python scripts as separate processes without paying for the imports each time.

Tests that kill a writer at every step (`os._exit`, no cleanup, as with SIGKILL) need a fresh
process per step, and a fresh interpreter spends seconds importing torch before it does
anything. `forked_python` starts one interpreter, imports the given modules once, and then
forks a child per script: each child is a separate process that runs the script with its own
`sys.argv` and exits, and dies alone when the script kills it. The parent only imports and
forks (it runs no torch operation), so no thread pool is ever inherited by a child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SERVER = r'''
import io, json, os, sys, traceback
for name in json.loads(sys.argv[1]):
    __import__(name)
for line in sys.stdin:
    request = json.loads(line)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the script, send back what it printed, exit
        os.close(read_end)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # the parent's stdout carries the replies; nothing else may write there
        sys.stdin = open(os.devnull)
        sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
        sys.argv = ["-c", *request["argv"]]
        code = 0
        try:
            exec(compile(request["script"], "<script>", "exec"), {"__name__": "__main__"})
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        with os.fdopen(write_end, "w") as out:
            json.dump({"stdout": sys.stdout.getvalue(), "stderr": sys.stderr.getvalue()}, out)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        printed = pipe.read()
    _, status = os.waitpid(pid, 0)
    reply = json.loads(printed) if printed else {"stdout": "", "stderr": ""}
    reply["returncode"] = os.waitstatus_to_exitcode(status)
    print(json.dumps(reply), flush=True)
'''


class ForkedPython:
    """One interpreter with modules imported, forking a child per `run`."""

    def __init__(self, server: subprocess.Popen[str], errors: Path) -> None:
        self._server, self._errors = server, errors

    def run(self, script: str, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run `script` (as `python -c script *argv` would) in a forked child; wait for it to exit."""
        assert self._server.stdin is not None and self._server.stdout is not None
        self._server.stdin.write(json.dumps({"script": script, "argv": list(argv)}) + "\n")
        self._server.stdin.flush()
        line = self._server.stdout.readline()
        if not line:
            raise RuntimeError(f"the forking interpreter exited: {self._errors.read_text()}")
        reply = json.loads(line)
        return subprocess.CompletedProcess(["python", "-c", "<script>", *argv], reply["returncode"],
                                           reply["stdout"], reply["stderr"])


@contextmanager
def forked_python(*modules: str, cwd: str | Path | None = None) -> Iterator[ForkedPython]:
    """An interpreter (started in `cwd`) that has imported `modules`, to fork short scripts from."""
    if not hasattr(os, "fork"):  # pragma: no cover - POSIX only
        raise RuntimeError("forked_python needs os.fork")
    with tempfile.TemporaryDirectory() as folder:
        errors = Path(folder) / "stderr"
        with errors.open("w") as stderr:
            server = subprocess.Popen([sys.executable, "-c", _SERVER, json.dumps(modules)], cwd=cwd, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
            try:
                yield ForkedPython(server, errors)
            finally:
                assert server.stdin is not None
                server.stdin.close()
                server.wait(timeout=60)
                if server.stdout is not None:
                    server.stdout.close()
