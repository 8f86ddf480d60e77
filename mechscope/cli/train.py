"""`mechscope model train <target>`: train a built-in target and write its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mechscope.cli._model import DeviceOpt, device_of
from mechscope.cli._options import Choice, FormatOpt, OperationChoice, OutPathOpt, SeedOpt, checked_out
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError
from mechscope.limits import MAX_LAYERS, MAX_MODULUS, MAX_STEPS, MAX_WIDTH
from mechscope.models.checkpoint import check_checkpoint_out
from mechscope.data.functions import FunctionName
from mechscope.models.grokking_mlp import Combine, GrokkingMLPConfig
from mechscope.models.modular_mlp import Activation
from mechscope.models.grokking_train import GrokkingTrainConfig
from mechscope.recipes import builtin
from mechscope.models.grokking_transformer import GrokkingTransformerConfig
from mechscope.recipes.grokking import (
    TRANSFORMER_TRAIN_FRACTION,
    TRANSFORMER_TRAINING,
    train_grokking_mlp,
    train_grokking_transformer,
)
from mechscope.serialize import to_json

app = typer.Typer(help="Train a built-in target and write a checkpoint folder.", no_args_is_help=True)


class ActivationChoice(Choice, literal=Activation):
    """Hidden nonlinearity."""


class FunctionChoice(Choice, literal=FunctionName):
    """Function a TinyReLU learns (seed 002)."""


def _report(result: builtin.TrainedModel, fmt: OutputFormat) -> None:
    scores = ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())
    text = f"{result.name}: {scores} ({result.epochs_run} epochs, {result.seconds:.1f}s)\ncheckpoint: {result.checkpoint}"
    emit(to_json(result), fmt, text)


def _out(out: Path | None, default: str) -> Path:
    return checked_out(out or Path(default), check_checkpoint_out)


@app.command(
    "modular-mlp",
    epilog="Examples:\n\n  mechscope model train modular-mlp --out runs/mod2\n\n"
    "  mechscope model train modular-mlp --modulus 5 --hidden 32 --format json",
)
def modular_mlp(
    modulus: Annotated[int, typer.Option(min=2, max=MAX_MODULUS, help="Modulus m >= 2.")] = 2,
    operation: Annotated[OperationChoice, typer.Option(help="Binary operation.")] = OperationChoice("+"),
    layers: Annotated[
        int, typer.Option(min=3, max=MAX_LAYERS, help="Layers counted with input and output (7 = five hidden).")
    ] = 7,
    hidden: Annotated[int, typer.Option(min=1, max=MAX_WIDTH, help="Units per hidden layer.")] = 5,
    activation: Annotated[ActivationChoice, typer.Option(help="Hidden nonlinearity.")] = ActivationChoice("tanh"),
    seed: SeedOpt = 0,
    out: OutPathOpt = None,
    device: DeviceOpt = "auto",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Seed 000's binary-operation learner on (a op b) mod m."""
    result = builtin.train_modular_mlp(
        _out(out, f"runs/modular-mlp-mod{modulus}"),
        modulus=modulus,
        operation=operation.value,
        n_layers=layers,
        hidden=hidden,
        activation=activation.value,
        seed=seed,
        device=device_of(device),
    )
    _report(result, fmt)


@app.command(
    "tiny-relu",
    epilog="Examples:\n\n  mechscope model train tiny-relu --function sum\n\n"
    "  mechscope model train tiny-relu --function product --out runs/product --format json",
)
def tiny_relu(
    function: Annotated[FunctionChoice, typer.Option(help="Function to learn.")] = FunctionChoice("sum"),
    inputs: Annotated[int, typer.Option(min=1, max=MAX_WIDTH, help="Number of inputs n.")] = 5,
    hidden: Annotated[int, typer.Option(min=1, max=MAX_WIDTH, help="Hidden ReLU units k.")] = 1,
    seed: SeedOpt = 0,
    out: OutPathOpt = None,
    device: DeviceOpt = "auto",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Seed 002's Dense(k, relu) -> Dense(1) on sum, weighted sum + constant, or product."""
    result = builtin.train_tiny_relu(
        _out(out, f"runs/tiny-relu-{function.value}"),
        function=function.value,
        n_inputs=inputs,
        hidden=hidden,
        seed=seed,
        device=device_of(device),
    )
    _report(result, fmt)


@app.command(
    "digit-cnn",
    epilog="Examples:\n\n  mechscope model train digit-cnn --data mnist5k --gap\n\n"
    "  mechscope model train digit-cnn --data idx:/data/mnist --out runs/mnist-full",
)
def digit_cnn(
    data: Annotated[str, typer.Option(help="digits (8x8), mnist5k (28x28) or idx:PATH (folder of MNIST idx files).")]
    = "mnist5k",
    gap: Annotated[bool, typer.Option("--gap/--no-gap", help="Global-average-pool head, so CAM applies exactly.")]
    = False,
    seed: SeedOpt = 0,
    out: OutPathOpt = None,
    device: DeviceOpt = "auto",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """A small CNN classifier for handwritten digits."""
    if data not in ("digits", "mnist5k") and not data.startswith("idx:"):
        raise CLIError(f"--data must be digits, mnist5k or idx:PATH; got {data!r}.")
    name = "digit-cnn-gap" if gap else "digit-cnn"
    result = builtin.train_digit_cnn(_out(out, f"runs/{name}"), data=data, gap=gap, seed=seed,
                                     device=device_of(device))
    _report(result, fmt)


class CombineChoice(Choice, literal=Combine):
    """How GrokkingMLP joins the two operand embeddings."""


@app.command(
    "grokking-mlp",
    epilog="Examples:\n\n  mechscope model train grokking-mlp --modulus 59 --train-fraction 0.5\n\n"
    "  mechscope model train grokking-mlp --modulus 31 --train-fraction 0.6 --d-embed 32 --width 64 --lr 1e-2 --steps 2000",
)
def grokking_mlp(
    modulus: Annotated[int, typer.Option(min=2, max=MAX_MODULUS, help="Modulus p >= 2.")] = 59,
    train_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of the p*p pairs used for training, in (0, 1).")
    ] = 0.5,
    width: Annotated[int, typer.Option(min=1, max=MAX_WIDTH, help="ReLU units in the hidden layer.")] = 128,
    d_embed: Annotated[int, typer.Option(min=1, max=MAX_WIDTH, help="Embedding size per operand.")] = 64,
    combine: Annotated[CombineChoice, typer.Option(help="Join the embeddings by concat or sum.")] = CombineChoice("concat"),
    steps: Annotated[
        int, typer.Option(min=1, max=MAX_STEPS, help="Full-batch AdamW steps; 5000 lets p = 59 clean up to <= 8 key frequencies.")
    ] = 5000,
    lr: Annotated[float, typer.Option(min=0.0, max=1e3, help="AdamW learning rate, > 0.")] = 3e-3,
    weight_decay: Annotated[float, typer.Option(min=0.0, max=1e6, help="AdamW weight decay, >= 0.")] = 1.0,
    seed: SeedOpt = 0,
    out: OutPathOpt = None,
    device: DeviceOpt = "auto",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Embed-ReLU-unembed network that groks (a + b) mod p under full-batch AdamW."""
    if not 0.0 < train_fraction < 1.0:
        raise CLIError(f"--train-fraction must be in (0, 1); got {train_fraction}. Try 0.5.")
    if lr <= 0 or weight_decay < 0:
        raise CLIError(f"--lr must be > 0 and --weight-decay >= 0; got {lr} and {weight_decay}.")
    model_config = GrokkingMLPConfig(
        modulus=modulus, d_embed=d_embed, width=width,
        combine=combine.value,
    )
    train_config = GrokkingTrainConfig(steps=steps, lr=lr, weight_decay=weight_decay, seed=seed)
    result = train_grokking_mlp(
        _out(out, f"runs/grokking-mlp-p{modulus}"),
        model_config=model_config,
        train_config=train_config,
        train_fraction=train_fraction,
        seed=seed,
        device=device_of(device),
    )
    _report(result, fmt)


@app.command(
    "grokking-transformer",
    epilog="Examples:\n\n  mechscope model train grokking-transformer --modulus 59 --train-fraction 0.6\n\n"
    "  mechscope model train grokking-transformer --attention-rate 0 --out runs/pizza\n\n"
    "  mechscope model train grokking-transformer --modulus 23 --d-model 32 --d-mlp 64 --steps 800",
)
def grokking_transformer(
    modulus: Annotated[int, typer.Option(min=2, max=MAX_MODULUS, help="Modulus p >= 2.")] = 59,
    train_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of the p*p pairs used for training, in (0, 1).")
    ] = TRANSFORMER_TRAIN_FRACTION,
    attention_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="1 = softmax attention, 0 = uniform attention (pizza).")
    ] = 1.0,
    d_model: Annotated[int, typer.Option(min=1, max=MAX_WIDTH, help="Width of the residual stream.")] = 128,
    n_heads: Annotated[int, typer.Option(min=1, max=MAX_WIDTH, help="Attention heads per block.")] = 4,
    d_mlp: Annotated[int, typer.Option(min=1, max=MAX_WIDTH, help="MLP neurons per block.")] = 512,
    n_layers: Annotated[int, typer.Option(min=1, max=MAX_LAYERS, help="Attention + MLP blocks.")] = 1,
    layer_norm: Annotated[bool, typer.Option(help="LayerNorm before attention, MLP and unembed.")] = False,
    steps: Annotated[int, typer.Option(min=1, max=MAX_STEPS, help="Full-batch AdamW steps.")] = (
        TRANSFORMER_TRAINING.steps
    ),
    lr: Annotated[float, typer.Option(min=0.0, max=1e3, help="AdamW learning rate, > 0.")] = TRANSFORMER_TRAINING.lr,
    weight_decay: Annotated[float, typer.Option(min=0.0, max=1e6, help="AdamW weight decay, >= 0.")] = (
        TRANSFORMER_TRAINING.weight_decay
    ),
    seed: SeedOpt = 0,
    out: OutPathOpt = None,
    device: DeviceOpt = "auto",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """One-block transformer on `a b =` that groks (a + b) mod p (Nanda et al.; Zhong et al.'s attention rate)."""
    if not 0.0 < train_fraction < 1.0:
        raise CLIError(f"--train-fraction must be in (0, 1); got {train_fraction}. Try 0.6.")
    if lr <= 0:
        raise CLIError(f"--lr must be > 0; got {lr}.")
    if d_model % n_heads:
        raise CLIError(f"--d-model ({d_model}) must be a multiple of --n-heads ({n_heads}).")
    model_config = GrokkingTransformerConfig(modulus=modulus, d_model=d_model, n_heads=n_heads, d_mlp=d_mlp,
                                             n_layers=n_layers, attention_rate=attention_rate, layer_norm=layer_norm)
    train_config = GrokkingTrainConfig(steps=steps, lr=lr, weight_decay=weight_decay, seed=seed,
                                       betas=TRANSFORMER_TRAINING.betas)
    result = train_grokking_transformer(
        _out(out, f"runs/grokking-transformer-p{modulus}-r{attention_rate:g}"),
        model_config=model_config,
        train_config=train_config,
        train_fraction=train_fraction,
        seed=seed,
        device=device_of(device),
    )
    _report(result, fmt)
