"""Options shared by several commands, as Annotated aliases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from mechscope.cli._output import OutputFormat
from mechscope.cli.errors import CLIError
from mechscope.errors import OutputError

__all__ = ["CheckpointArg", "FormatOpt", "OutDirOpt", "OutPathOpt", "SeedOpt", "ForceOpt", "QuickOpt", "checked_out"]

CheckpointArg = Annotated[
    Path, typer.Argument(help="Checkpoint folder written by `mechscope train` (checkpoint.json + model.safetensors).")
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="Print text for people or one JSON object.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed: same seed, same weights and data split.")]
OutPathOpt = Annotated[Path | None, typer.Option("--out", help="Where to write the checkpoint folder.")]
OutDirOpt = Annotated[Path, typer.Option("--out", help="Folder for everything the command writes.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo finished steps instead of reusing their artifacts.")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="Smaller runs: a fast look rather than the full job.")]


def checked_out(path: Path, check: Callable[[Path], Path], *, flag: str = "--out") -> Path:
    """Run an output check before any work; a path that may not be written is a bad argument (exit 2)."""
    try:
        return check(path)
    except OutputError as err:
        raise CLIError(f"{flag}: {err}") from err
