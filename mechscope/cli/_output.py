"""Print command results as text or as one JSON object."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import typer

from mechscope.serialize import to_json

__all__ = ["OutputFormat", "emit"]


class OutputFormat(str, Enum):
    """How a command prints its result."""

    text = "text"
    json = "json"


def emit(result: dict[str, Any], fmt: OutputFormat, text: str) -> None:
    """Print `text` for humans or `result` as one JSON object on stdout (converted by `to_json`)."""
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(to_json(result), indent=2))
    else:
        typer.echo(text)
