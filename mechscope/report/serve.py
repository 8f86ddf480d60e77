"""Serve a report folder over HTTP on 127.0.0.1 only (the pages also open from disk)."""

from __future__ import annotations

import functools
import os
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mechscope.errors import ConfigError

__all__ = ["make_server", "HOST"]

HOST = "127.0.0.1"
"""The only address the server listens on: reports are never exposed beyond this machine."""


class _QuietHandler(SimpleHTTPRequestHandler):
    """Static files from one folder; no directory listings; no request log on stderr."""

    def list_directory(self, path: str | os.PathLike[str]) -> Any:
        self.send_error(404, "No index.html here")
        return None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return


def make_server(folder: str | os.PathLike[str], *, port: int = 8000) -> ThreadingHTTPServer:
    """An HTTP server for `folder` bound to 127.0.0.1:`port` (0 picks a free port); call serve_forever().

    Raises:
        ConfigError: `folder` is not a folder, or the port is out of range.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ConfigError(f"{str(root)!r} is not a folder; pass the --out folder of `mechscope report` or `tour`.")
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be in 0..65535; got {port}.")
    handler = functools.partial(_QuietHandler, directory=str(root))
    return ThreadingHTTPServer((HOST, port), handler)
