"""`mechscope model import --model FILE.py:FACTORY --out DIR`: your own model as a checkpoint folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import torch
import typer

from mechscope.capture import select_output
from mechscope.cli._model import (
    AllowPickleOpt,
    ChannelsOpt,
    DataOpt,
    ImageSizeOpt,
    ModelArgOpt,
    NormalizeOpt,
    WeightsOpt,
    build_from_code,
    read_data,
)
from mechscope.cli._options import FormatOpt, OutputOpt, checked_out, output_of
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError
from mechscope.data import DataBundle
from mechscope.models.checkpoint import check_checkpoint_out, save_checkpoint
from mechscope.models.factory import TRUST_ENV, ModelFactory

EXAMPLES = (
    "Examples:\n\n  mechscope model import --model net.py:Net --weights net.safetensors --data images:photos "
    "--image-size 32 --out runs/net\n\n"
    "  mechscope model import --model mypkg.nets:make_resnet --model-arg depth=18 --weights r18.pt --allow-pickle "
    "--data npz:val.npz --out runs/r18\n\n"
    f"  Then: mechscope report build runs/net --out report/net --trust-code (or set {TRUST_ENV}=1)"
)

_BATCH = 256  # inputs per forward pass of the accuracy check


def import_model(
    model: Annotated[
        str,
        typer.Option("--model", metavar="MODULE_OR_FILE:FACTORY",
                     help="A function or class returning an nn.Module, in a module (pkg.nets:make) or a .py file "
                          "(net.py:Net)."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Checkpoint folder to write (new, or an earlier checkpoint).")],
    model_arg: ModelArgOpt = None,
    weights: WeightsOpt = None,
    allow_pickle: AllowPickleOpt = False,
    data: DataOpt = None,
    image_size: ImageSizeOpt = None,
    channels: ChannelsOpt = None,
    normalize: NormalizeOpt = None,
    output: OutputOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Write a checkpoint of your own model: its factory (by import path), weights and data spec.

    Commands then take the folder like any checkpoint; loading it imports your code, so they ask
    for --trust-code.
    """
    target = checked_out(out, check_checkpoint_out)
    if allow_pickle and weights is None:
        raise CLIError("--allow-pickle applies to a --weights file; add --weights FILE.pt.")
    bundle = read_data(data, image_size=image_size, channels=channels, normalize=normalize)
    ckpt = build_from_code(model, model_arg or [], weights, allow_pickle=allow_pickle)
    metrics = {} if bundle is None else _check_runs(ckpt.model, bundle, output_of(output))
    if bundle is not None and bundle.spec.get("kind") == "tensors":
        raise CLIError("--data must name files the checkpoint can read again (images:DIR, npz:FILE, ...).")
    factory = cast(ModelFactory, ckpt.factory)  # build_from_code records it
    save_checkpoint(target, ckpt.model, factory=factory, data_spec=None if bundle is None else bundle.spec,
                    metrics=metrics, extra={"weights_file": None if weights is None else str(weights)})
    n_params = sum(p.numel() for p in ckpt.model.parameters())
    result = {"checkpoint": str(target), "model_class": ckpt.model_class, "factory": factory.as_dict(),
              "parameters": n_params, "data_spec": None if bundle is None else bundle.spec, "metrics": metrics}
    lines = [f"checkpoint written: {target} ({ckpt.model_class}, {n_params:,} parameters, "
             f"{'random initial weights' if weights is None else 'weights from ' + str(weights)})"]
    if bundle is None:
        lines.append("no data recorded: pass --data to the commands that need inputs")
    else:
        lines.append(f"data: {data} ({bundle.x_train.shape[0]} train / {bundle.x_test.shape[0]} test, "
                     f"inputs {tuple(bundle.input_shape)})")
    lines += [f"{key}: {value:.4f}" for key, value in metrics.items()]
    lines.append(f"next: mechscope report build {target} --out report/{target.name} --trust-code")
    emit(result, fmt, "\n".join(lines))


def _check_runs(model: torch.nn.Module, bundle: DataBundle, output: Any) -> dict[str, float]:
    """Run the model on the test split (a clear error if it cannot); its accuracy for a classifier."""
    correct = 0
    with torch.no_grad():
        for start in range(0, bundle.x_test.shape[0], _BATCH):
            x = bundle.x_test[start:start + _BATCH]
            try:
                scores = select_output(model(x), output)
            except (RuntimeError, ValueError, TypeError, IndexError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise CLIError(
                    f"the model cannot run on the --data inputs of shape {tuple(x.shape[1:])}: {first}"
                ) from err
            if bundle.task != "classification" or scores.dim() != 2 or bundle.y_test.dim() != 1:
                return {}
            correct += int((scores.argmax(dim=1) == bundle.y_test[start:start + _BATCH]).sum())
    return {"test_accuracy": correct / bundle.x_test.shape[0]}
