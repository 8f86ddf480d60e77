"""The model a command analyses: a checkpoint folder or user code (`--model`), its data (`--data`) and device.

Every command that runs a model is decorated with `model_command`: it declares one
parameter `source: ModelSource` and calls `source.load()` once its own flags are checked,
which gives the model (in eval mode, on the chosen device) with the data to analyse. The
command line gets the same options everywhere: CHECKPOINT or --model/--model-arg/--weights/
--allow-pickle, --trust-code, --data with its image options, and --device.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import torch
import typer

from mechscope.cli.errors import CLIError
from mechscope.devices import DEVICE_CHOICES, resolve_device
from mechscope.errors import ConfigError, DataError
from mechscope.models.checkpoint import Checkpoint, load_checkpoint
from mechscope.models.factory import TRUST_ENV, ModelFactory, parse_model_args
from mechscope.models.weights import PICKLE_SUFFIXES, load_weights

__all__ = ["model_command", "ModelSource", "open_model", "DATA_HELP", "DeviceOpt", "device_of", "ModelOpt", "ModelArgOpt",
           "WeightsOpt", "AllowPickleOpt", "DataOpt", "ImageSizeOpt", "ChannelsOpt", "NormalizeOpt"]

DATA_HELP = (
    "Data to analyse instead of the checkpoint's own: images:DIR (one sub-folder per class), npz:FILE or "
    "safetensors:FILE (arrays x, y, optional x_test, y_test), SPEC.json, digits, mnist5k or idx:DIR."
)

CheckpointArgument = Annotated[
    Path | None,
    typer.Argument(
        help="Checkpoint folder written by `mechscope train` or `mechscope import-model` (or use --model).",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", metavar="MODULE_OR_FILE:FACTORY",
                 help="Your own model: a function or class returning an nn.Module, in a module (pkg.nets:make) or "
                      "a .py file (net.py:Net). Runs that code."),
]
ModelArgOpt = Annotated[
    list[str] | None,
    typer.Option("--model-arg", metavar="KEY=VALUE",
                 help="Keyword argument of the --model factory (JSON value or text); repeat for several."),
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option("--weights", metavar="FILE",
                 help="State dict for --model: .safetensors, or .pt/.pth/.bin with --allow-pickle."),
]
AllowPickleOpt = Annotated[
    bool,
    typer.Option("--allow-pickle",
                 help="Read a pickle-based --weights file (torch.load with weights_only=True)."),
]
TrustCodeOpt = Annotated[
    bool,
    typer.Option("--trust-code",
                 help=f"Import the user code an imported checkpoint records (or set {TRUST_ENV}=1)."),
]
DataOpt = Annotated[str | None, typer.Option("--data", metavar="SOURCE", help=DATA_HELP)]
ImageSizeOpt = Annotated[
    str | None,
    typer.Option("--image-size", metavar="N|HxW",
                 help="Resize images:DIR data to N x N or H x W pixels (default: their own size, if all agree)."),
]
ChannelsOpt = Annotated[
    str | None, typer.Option("--channels", metavar="grey|rgb", help="Colour of images:DIR data (default: the first image's).")
]
NormalizeOpt = Annotated[
    str | None,
    typer.Option("--normalize", metavar="auto|none|MEAN/STD",
                 help="images:DIR normalisation: auto (per-channel mean/std of the training split, the default), "
                      "none (values in [0, 1]), or MEAN/STD per channel, e.g. 0.5,0.5,0.5/0.25,0.25,0.25."),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", metavar=DEVICE_CHOICES, help="Where the model runs (auto: CUDA when available).")
]

F = TypeVar("F", bound=Callable[..., Any])
_OPTIONS: list[tuple[str, Any, Any]] = [
    ("checkpoint", CheckpointArgument, None),
    ("model", ModelOpt, None),
    ("model_arg", ModelArgOpt, None),
    ("weights", WeightsOpt, None),
    ("allow_pickle", AllowPickleOpt, False),
    ("trust_code", TrustCodeOpt, False),
    ("data", DataOpt, None),
    ("image_size", ImageSizeOpt, None),
    ("channels", ChannelsOpt, None),
    ("normalize", NormalizeOpt, None),
    ("device", DeviceOpt, "auto"),
]


@dataclass(frozen=True)
class ModelSource:
    """The model options of one command line; `load()` opens what they name."""

    options: dict[str, Any]

    @property
    def label(self) -> str:
        """How messages and results name the model: the checkpoint folder or the --model text."""
        return str(self.options["checkpoint"] if self.options["checkpoint"] is not None else self.options["model"])

    def load(self) -> Checkpoint:
        """See `open_model`."""
        return open_model(**self.options)


def model_command(command: F) -> F:
    """Replace the command's `source: ModelSource` parameter by the model options (same flags on every command)."""
    signature = inspect.signature(command, eval_str=True)
    if "source" not in signature.parameters:
        raise TypeError(f"{command.__name__} must take a `source: ModelSource` parameter")
    params: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        if param.name == "source":
            params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                         default=default) for name, annotation, default in _OPTIONS]
        else:  # keyword-only: typer passes keywords, and defaults may then precede required options
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def run(**kwargs: Any) -> Any:
        options = {name: kwargs.pop(name) for name, _, _ in _OPTIONS}
        return command(source=ModelSource(options), **kwargs)

    run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    return run  # type: ignore[return-value]


def open_model(
    checkpoint: Path | None = None,
    *,
    model: str | None = None,
    model_arg: list[str] | None = None,
    weights: Path | None = None,
    allow_pickle: bool = False,
    trust_code: bool = False,
    data: str | None = None,
    image_size: str | None = None,
    channels: str | None = None,
    normalize: str | None = None,
    device: str = "auto",
) -> Checkpoint:
    """Load what the options name: the model in eval mode on its device, with the data to analyse.

    Raises:
        CLIError: the options contradict each other or a value is malformed (exit 2).
    """
    where = device_of(device)
    if (checkpoint is None) == (model is None):
        raise CLIError(
            "give a checkpoint folder or --model MODULE_OR_FILE:FACTORY (one of them); e.g. "
            "`mechscope model layers runs/digit-cnn` or `mechscope model layers --model net.py:Net --data npz:data.npz`."
        )
    if model is None and (model_arg or weights is not None):
        raise CLIError("--model-arg and --weights go with --model; a checkpoint folder holds its own weights.")
    if allow_pickle and (weights is None or Path(weights).suffix.lower() not in PICKLE_SUFFIXES):
        raise CLIError(f"--allow-pickle applies to a --weights file ending in {', '.join(PICKLE_SUFFIXES)} only.")
    bundle = read_data(data, image_size=image_size, channels=channels, normalize=normalize)
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint, trust_code=trust_code or None)
    else:
        ckpt = build_from_code(str(model), model_arg or [], weights, allow_pickle=allow_pickle)
    if bundle is not None:
        ckpt = ckpt.with_data(bundle)
    ckpt.model.to(where).eval()
    return ckpt


def build_from_code(model: str, model_arg: list[str], weights: Path | None, *, allow_pickle: bool) -> Checkpoint:
    """A checkpoint-like record of the model `--model` builds (naming it on the command line trusts it)."""
    if weights is not None and Path(weights).suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise CLIError(
            f"--weights {str(weights)!r} is a pickle-based PyTorch file, and unpickling can run code; convert it to "
            ".safetensors or add --allow-pickle (read with torch.load(weights_only=True))."
        )
    try:
        factory = ModelFactory.parse(model, parse_model_args(model_arg))
    except ConfigError as err:
        raise CLIError(f"--model: {err}") from err
    built = factory.build(trust_code=True)
    if weights is not None:
        load_weights(built, weights, allow_pickle=allow_pickle)
    return Checkpoint(path=Path(factory.source), model=built.eval(), model_class=type(built).__name__, config={},
                      data_spec=None, factory=factory)


def read_data(data: str | None, *, image_size: str | None, channels: str | None, normalize: str | None) -> Any:
    """The DataBundle `--data` names (None without --data)."""
    if data is None:
        if image_size is not None or channels is not None or normalize is not None:
            raise CLIError("--image-size, --channels and --normalize describe --data images:DIR; add --data.")
        return None
    from mechscope.data.sources import data_from_source

    try:
        return data_from_source(data, image_size=_size(image_size), channels=channels, normalize=_norm(normalize))
    except (ConfigError, DataError) as err:  # a --data value to change
        raise CLIError(f"--data: {err}") from err


def device_of(text: str) -> torch.device:
    """The --device value as a torch.device; unavailable or unknown devices are a bad argument."""
    try:
        return resolve_device(text)
    except ConfigError as err:
        raise CLIError(f"--device: {err}") from err


def _size(text: str | None) -> int | tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) in (1, 2) and all(p.strip().isdigit() and 1 <= int(p) <= 4096 for p in parts):
        return int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    raise CLIError(f"--image-size must be N or HxW with sides from 1 to 4096, e.g. 28 or 32x48; got {text!r}.")


def _norm(text: str | None) -> Any:
    if text is None or text in ("auto", "none"):
        return text
    mean, slash, std = text.partition("/")
    try:
        values = [[float(v) for v in part.split(",")] for part in (mean, std)]
    except ValueError:
        values = []
    if not slash or len(values) != 2 or len(values[0]) != len(values[1]) or any(s <= 0 for s in values[1]) \
            or not all(v == v and abs(v) < float("inf") for v in values[0] + values[1]):
        raise CLIError(f"--normalize must be auto, none or MEAN/STD per channel (std > 0), e.g. 0.5/0.25 or "
                       f"0.5,0.5,0.5/0.2,0.2,0.2; got {text!r}.")
    return {"mean": values[0], "std": values[1]}
