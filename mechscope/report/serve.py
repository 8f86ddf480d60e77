"""Serve a report folder over HTTP on 127.0.0.1 only (the pages also open from disk).

Only files inside the folder are served. Each request path is checked before the standard
handler sees it: a NUL or other control character, an encoded '/' or '\\', a '.' or '..'
segment, percent escapes that are not UTF-8, or a path longer than `MAX_PATH` characters
are answered 400; a missing file, a folder without index.html, or a link that leads
outside the folder are answered 404. Nothing is logged per request, and a request that
fails never prints a traceback.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote

from mechscope.errors import ConfigError, OutputError

__all__ = ["make_server", "HOST", "MAX_PATH"]

HOST = "127.0.0.1"
"""The only address the server listens on: reports are never exposed beyond this machine."""

MAX_PATH = 2048
"""Longest request path (before the query string) that is looked up; longer ones get 400."""


class _QuietHandler(SimpleHTTPRequestHandler):
    """Static files from one folder; no directory listings; no request log on stderr."""

    def send_head(self) -> BytesIO | BinaryIO | None:
        status = _check_path(self.path, Path(self.directory))
        if status is not None:
            self.send_error(status)
            return None
        return super().send_head()

    def list_directory(self, path: str | os.PathLike[str]) -> Any:
        self.send_error(HTTPStatus.NOT_FOUND, "No index.html here")
        return None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that reports a failed request in one line, never a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):  # the browser went away mid-answer: nothing to say
            return
        sys.stderr.write(f"mechscope serve: could not answer a request from {client_address[0]}: "
                         f"{type(error).__name__}: {error}\n")


def make_server(folder: str | os.PathLike[str], *, port: int = 8000) -> ThreadingHTTPServer:
    """An HTTP server for `folder` bound to 127.0.0.1:`port` (0 picks a free port); call serve_forever().

    Raises:
        ConfigError: `folder` is not a folder, or the port is out of range.
        OutputError: the OS refused the port: another program listens on it, or this user
            may not open it (an OSError, so `except OSError` catches it too).
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ConfigError(f"{str(root)!r} is not a folder; pass the --out folder of `mechscope report` or `tour`.")
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be in 0..65535; got {port}.")
    handler = functools.partial(_QuietHandler, directory=str(root))
    try:
        return _Server((HOST, port), handler)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            reason = "is already in use (another server?)"
        else:
            reason = f"cannot be opened: {err.strerror or err}"
        raise OutputError(f"port {port} on {HOST} {reason}; choose another port, or 0 to pick a free one.") from None


def _check_path(request_path: str, root: Path) -> int | None:
    """The error status for a request path that must not be looked up, or None when it may be."""
    path = request_path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/") or len(path) > MAX_PATH:
        return HTTPStatus.BAD_REQUEST
    names = []
    for segment in path.split("/"):
        try:
            name = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            return HTTPStatus.BAD_REQUEST
        if name in (".", "..") or "/" in name or "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
            return HTTPStatus.BAD_REQUEST
        if name:
            names.append(name)
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, *names))
    candidates = [target]
    if os.path.isdir(target):
        candidates.append(os.path.realpath(os.path.join(target, "index.html")))
    if not all(c == real_root or c.startswith(real_root + os.sep) for c in candidates):
        return HTTPStatus.NOT_FOUND  # a link out of the folder: as if it were not there
    return None
