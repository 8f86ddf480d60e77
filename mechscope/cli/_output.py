"""Print command results as text or as one JSON object."""

from __future__ import annotations

import json
import math
from enum import Enum
from typing import Any

import typer

__all__ = ["OutputFormat", "emit", "to_jsonable"]


class OutputFormat(str, Enum):
    """How a command prints its result."""

    text = "text"
    json = "json"


def to_jsonable(value: Any) -> Any:
    """Convert tensors, numpy values, paths and NaN into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def emit(result: dict[str, Any], fmt: OutputFormat, text: str) -> None:
    """Print `text` for humans or `result` as one JSON object on stdout."""
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(to_jsonable(result), indent=2))
    else:
        typer.echo(text)
