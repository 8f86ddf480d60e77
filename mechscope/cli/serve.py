"""`mechscope report serve DIR`: serve a report folder on 127.0.0.1 (the pages also open from disk)."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Annotated

import typer

from mechscope.cli.errors import CLIError
from mechscope.report import make_server
from mechscope.report.serve import HOST

EXAMPLES = "Examples:\n\n  mechscope report serve report/digit-cnn\n\n  mechscope report serve tour --port 8765"

MAX_SECONDS = 7 * 24 * 3600
"""Longest --seconds accepted (one week); serve without --seconds to run until Ctrl-C."""


def serve(
    folder: Annotated[Path, typer.Argument(help="A folder written by `mechscope report` or `mechscope tour`.")],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0 picks a free one).")] = 8000,
    seconds: Annotated[
        float, typer.Option("--seconds", help="Stop after this many seconds, at most 604800 (a week); 0: until "
                            "Ctrl-C.")
    ] = 0.0,
) -> None:
    """Serve a report folder on 127.0.0.1 only, until interrupted (Ctrl-C) or --seconds pass."""
    if not 0 <= port <= 65535:
        raise CLIError(f"--port must be in 0..65535; got {port}.")
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS):
        raise CLIError(f"--seconds must be a number from 0 to {MAX_SECONDS} (one week; 0 serves until Ctrl-C); "
                       f"got {seconds}.")
    if not (folder / "index.html").is_file():
        raise CLIError(f"{folder} holds no index.html; pass the --out folder of `mechscope report` or `tour`.")
    server = make_server(folder, port=port)
    typer.echo(f"serving {folder} at http://{HOST}:{server.server_address[1]}/ (Ctrl-C stops)")
    timer = threading.Timer(seconds, server.shutdown) if seconds else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        if timer is not None:
            timer.cancel()
        server.server_close()
