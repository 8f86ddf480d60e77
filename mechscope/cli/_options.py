"""Options shared by several commands, as Annotated aliases, and the choice enums they are built from."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum, EnumMeta
from pathlib import Path
from typing import Annotated, Any, get_args

import torch
import typer

from mechscope.cli._output import OutputFormat
from mechscope.cli.errors import CLIError
from mechscope.atomic import check_output
from mechscope.cache import TaskCache, default_cache_folder
from mechscope.data.bundle import DataPart
from mechscope.data.modular import Operation
from mechscope.errors import ConfigError, OutputError
from mechscope.limits import MAX_SEED

__all__ = [
    "CheckpointArg",
    "FormatOpt",
    "OutDirOpt",
    "OutPathOpt",
    "FiguresOpt",
    "SeedOpt",
    "ForceOpt",
    "QuickOpt",
    "checked_out",
    "figures_folder",
    "Choice",
    "DataPartChoice",
    "OperationChoice",
    "split_of",
    "OutputOpt",
    "WorkersOpt",
    "RayAddressOpt",
    "CacheOpt",
    "NoCacheOpt",
    "task_cache",
    "output_of",
]

CheckpointArg = Annotated[
    Path, typer.Argument(help="Checkpoint folder written by `mechscope train` (checkpoint.json + model.safetensors).")
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="Print text for people or one JSON object.")]
SeedOpt = Annotated[
    int, typer.Option("--seed", min=0, max=MAX_SEED, help="Random seed: same seed, same weights and data split.")
]
OutPathOpt = Annotated[Path | None, typer.Option("--out", help="Where to write the checkpoint folder.")]
OutDirOpt = Annotated[Path, typer.Option("--out", help="Folder for everything the command writes.")]


class _ChoiceMeta(EnumMeta):
    """Make an enum's members from the values of the Literal given as its `literal=` class keyword."""

    def __new__(metacls, cls: str, bases: tuple[type, ...], classdict: Any, **kwds: Any) -> Any:
        for value in get_args(kwds.pop("literal", None)):
            classdict[value] = value  # member name = value, so "+" is a member too
        return super().__new__(metacls, cls, bases, classdict, **kwds)


class Choice(str, Enum, metaclass=_ChoiceMeta):
    """A command-line choice derived from the library's Literal: typer takes enums, not Literals.

    `class PoolingChoice(Choice, literal=Pooling)` has one member per value of `Pooling`, in its
    order (the order `--help` lists them). Members have no attribute names a type checker knows:
    write a default as `PoolingChoice("kernels")` and read the chosen value with `.value`.
    """

    def __init_subclass__(cls, *, literal: Any = None, **kwargs: Any) -> None:
        # The metaclass consumes `literal`; this signature tells type checkers the keyword exists.
        super().__init_subclass__(**kwargs)


class DataPartChoice(Choice, literal=DataPart):
    """Which part of the data a command reads: all (train first), the training split or the test split."""


class OperationChoice(Choice, literal=Operation):
    """Binary operation of the modular learner."""


def split_of(bundle: Any, split: DataPartChoice) -> tuple[Any, Any]:
    """The inputs and targets of `split` of a DataBundle."""
    if split.value == "train":
        return bundle.x_train, bundle.y_train
    if split.value == "test":
        return bundle.x_test, bundle.y_test
    return bundle.all_inputs(), torch.cat([bundle.y_train, bundle.y_test])


WorkersOpt = Annotated[
    int, typer.Option("--workers", min=0, max=4096,
                      help="Run the work as tasks on a local Ray runtime with this many CPUs (0: this process). "
                           "Needs Ray: pip install 'mechscope[ray]'.")
]
RayAddressOpt = Annotated[
    str | None, typer.Option("--ray-address", metavar="HOST:PORT",
                             help="Run the work on the Ray cluster at this address (`ray start --head` there).")
]

CacheOpt = Annotated[
    Path | None, typer.Option("--cache", metavar="DIR",
                              help="Keep every finished task here, so a rerun after an interruption resumes where it "
                                   "stopped (default with --workers or --ray-address: $MECHSCOPE_CACHE, else "
                                   "~/.cache/mechscope/tasks; otherwise none).")
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Keep no finished tasks, even on Ray.")]


def task_cache(folder: Path | None, off: bool, workers: int, address: str | None) -> TaskCache | None:
    """The task cache the options ask for: `--cache DIR`, the default one on Ray, or none."""
    if off:
        if folder is not None:
            raise ConfigError("--cache and --no-cache contradict each other; give one.")
        return None
    if folder is not None:
        return TaskCache(folder)
    return TaskCache(default_cache_folder()) if workers or address else None


OutputOpt = Annotated[
    str | None,
    typer.Option("--output", metavar="KEY|INDEX",
                 help="Which output of a model returning a dict or tuple to explain (default: its only tensor, "
                      "or 'logits')."),
]


def output_of(text: str | None) -> str | int | None:
    """The --output value as select_output takes it: an index when it is an integer, else a key."""
    if text is None:
        return None
    stripped = text.strip()
    return int(stripped) if stripped.lstrip("-").isdigit() and len(stripped) < 10 else text


def figures_folder(value: Path | None) -> Path | None:
    """Check a figures folder while parsing, before any work: a folder (new or existing), never a file."""
    if value is not None:
        try:
            check_output(value, owned=lambda path: True, what="figures")  # figures join whatever is in the folder
        except OutputError as err:
            raise typer.BadParameter(str(err)) from None
    return value


FiguresOpt = Annotated[
    Path | None,
    typer.Option("--out", callback=figures_folder,
                 help="Folder for the PNG figures (created if missing; a file mechscope did not write is never "
                      "replaced)."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo finished steps instead of reusing their artifacts.")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="Smaller runs: a fast look rather than the full job.")]


def checked_out(path: Path, check: Callable[[Path], Path], *, flag: str = "--out") -> Path:
    """Run an output check before any work; a path that may not be written is a bad argument (exit 2)."""
    try:
        return check(path)
    except OutputError as err:
        raise CLIError(f"{flag}: {err}") from err
