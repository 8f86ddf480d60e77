"""`mechscope train <target>`: train a built-in target and write its checkpoint."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from mechscope import targets
from mechscope.cli._options import FormatOpt, OutPathOpt, SeedOpt
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError

app = typer.Typer(help="Train a built-in target and write a checkpoint folder.", no_args_is_help=True)


class Operation(str, Enum):
    """Binary operation of the modular learner."""

    add = "+"
    sub = "-"
    mul = "*"


class Activation(str, Enum):
    """Hidden nonlinearity."""

    tanh = "tanh"
    relu = "relu"


class Function(str, Enum):
    """Function a TinyReLU learns (seed 002)."""

    sum = "sum"
    weighted = "weighted"
    product = "product"


def _report(result: targets.TrainedTarget, fmt: OutputFormat) -> None:
    scores = ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())
    text = f"{result.name}: {scores} ({result.epochs_run} epochs, {result.seconds:.1f}s)\ncheckpoint: {result.checkpoint}"
    emit(result.to_dict(), fmt, text)


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise CLIError(f"{flag} must be a positive integer; got {value}.")
    return value


@app.command(
    "modular-mlp",
    epilog="Examples:\n\n  mechscope train modular-mlp --out runs/mod2\n\n"
    "  mechscope train modular-mlp --modulus 5 --hidden 32 --format json",
)
def modular_mlp(
    modulus: Annotated[int, typer.Option(help="Modulus m >= 2.")] = 2,
    operation: Annotated[Operation, typer.Option(help="Binary operation.")] = Operation.add,
    layers: Annotated[int, typer.Option(help="Layers counted with input and output (7 = five hidden).")] = 7,
    hidden: Annotated[int, typer.Option(help="Units per hidden layer.")] = 5,
    activation: Annotated[Activation, typer.Option(help="Hidden nonlinearity.")] = Activation.tanh,
    seed: SeedOpt = 0,
    out: OutPathOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Seed 000's binary-operation learner on (a op b) mod m."""
    if modulus < 2:
        raise CLIError(f"--modulus must be >= 2; got {modulus}.")
    if layers < 3:
        raise CLIError(f"--layers counts input and output layers and must be >= 3; got {layers}.")
    result = targets.train_modular_mlp(
        out or Path(f"runs/modular-mlp-mod{modulus}"),
        modulus=modulus,
        operation=operation.value,
        n_layers=layers,
        hidden=_positive(hidden, "--hidden"),
        activation=activation.value,
        seed=seed,
    )
    _report(result, fmt)


@app.command(
    "tiny-relu",
    epilog="Examples:\n\n  mechscope train tiny-relu --function sum\n\n"
    "  mechscope train tiny-relu --function product --out runs/product --format json",
)
def tiny_relu(
    function: Annotated[Function, typer.Option(help="Function to learn.")] = Function.sum,
    inputs: Annotated[int, typer.Option(help="Number of inputs n.")] = 5,
    hidden: Annotated[int, typer.Option(help="Hidden ReLU units k.")] = 1,
    seed: SeedOpt = 0,
    out: OutPathOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Seed 002's Dense(k, relu) -> Dense(1) on sum, weighted sum + constant, or product."""
    result = targets.train_tiny_relu(
        out or Path(f"runs/tiny-relu-{function.value}"),
        function=function.value,
        n_inputs=_positive(inputs, "--inputs"),
        hidden=_positive(hidden, "--hidden"),
        seed=seed,
    )
    _report(result, fmt)


@app.command(
    "digit-cnn",
    epilog="Examples:\n\n  mechscope train digit-cnn --data mnist5k --gap\n\n"
    "  mechscope train digit-cnn --data idx:/data/mnist --out runs/mnist-full",
)
def digit_cnn(
    data: Annotated[str, typer.Option(help="digits (8x8), mnist5k (28x28) or idx:PATH (folder of MNIST idx files).")]
    = "mnist5k",
    gap: Annotated[bool, typer.Option("--gap/--no-gap", help="Global-average-pool head, so CAM applies exactly.")]
    = False,
    seed: SeedOpt = 0,
    out: OutPathOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """A small CNN classifier for handwritten digits."""
    if data not in ("digits", "mnist5k") and not data.startswith("idx:"):
        raise CLIError(f"--data must be digits, mnist5k or idx:PATH; got {data!r}.")
    name = "digit-cnn-gap" if gap else "digit-cnn"
    result = targets.train_digit_cnn(out or Path(f"runs/{name}"), data=data, gap=gap, seed=seed)
    _report(result, fmt)

