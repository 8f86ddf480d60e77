"""`mechscope model layers CHECKPOINT`: every layer with its output shape."""

from __future__ import annotations

from mechscope.capture import describe_layers
from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import FormatOpt
from mechscope.cli._output import OutputFormat, emit

EXAMPLES = (
    "Examples:\n\n  mechscope model layers runs/digit-cnn\n\n  mechscope model layers runs/modular-mlp --format json\n\n"
    "  mechscope model layers --model net.py:Net --model-arg width=64 --data npz:data.npz"
)


@model_command
def layers(source: ModelSource, fmt: FormatOpt = OutputFormat.text) -> None:
    """List every layer (dotted name, type, output shape, parameters) of a model."""
    ckpt = source.load()
    example = ckpt.data().x_test[:2]
    rows = describe_layers(ckpt.model, example)
    width = max(len(row.name) for row in rows)
    lines = [f"{'layer':<{width}}  {'type':<18} {'output shape':<16} params"]
    for row in rows:
        shape = "-" if row.output_shape is None else "x".join(str(d) for d in row.output_shape)
        lines.append(f"{row.name:<{width}}  {row.type:<18} {shape:<16} {row.n_params}")
    emit(
        {"model_class": ckpt.model_class, "layers": [row.as_dict() for row in rows]},
        fmt,
        "\n".join(lines),
    )
