"""Probing a ModularMLP: its hidden blocks as one activation image, decoding a, b and its own output.

The image has one row per hidden block (`hidden.0`, `hidden.1`, ...) and one column per
unit, read on the held-out pairs of the model's modular data; the labels are the operands
`a`, `b` and the class the model predicts, and the control task gives each distinct pair
(a, b) its own random labels. Seed 000's probe reproduction (`mechscope.recipes`) runs this
on its trained model.

Example:
    >>> run = probe_modular_mlp(model, data)
    >>> run.report.heads, run.case_titles[:2]
    ({'a': 1.0, 'b': 1.0, 'output': 1.0}, ('0 + 0 = 0', '0 + 1 = 1'))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.names import LayerSpec
from mechscope.data import DataBundle
from mechscope.errors import DataError, UnsupportedModelError
from mechscope.models import ModularMLP
from mechscope.probes.base import Probe
from mechscope.probes.by_layer import ProbeRun, probe_activation_image
from mechscope.probes.rigor import Split
from mechscope.probes.labels import Labels, categorical

__all__ = ["hidden_layers", "modular_labels", "probe_modular_mlp"]


def hidden_layers(model: nn.Module) -> list[str]:
    """Every hidden block `hidden.0` ... of a ModularMLP: the rows of its activation image.

    Raises:
        UnsupportedModelError: `model` is not a ModularMLP (pass layers explicitly instead).
    """
    if not isinstance(model, ModularMLP):
        raise UnsupportedModelError(
            f"default probe layers exist only for ModularMLP, got {type(model).__name__}; pass layers=[...] "
            "(list them with mechscope.layer_names(model) or `mechscope layers CHECKPOINT`)."
        )
    return [f"hidden.{i}" for i in range(model.config.n_hidden_layers)]


def modular_labels(pairs: Tensor, outputs: Tensor) -> Labels:
    """Three groups: operand `a`, operand `b` and the network's `output` class."""
    if pairs.dim() != 2 or pairs.shape[1] != 2 or pairs.shape[0] != outputs.shape[0]:
        raise DataError(
            f"need pairs (batch, 2) and outputs (batch,) of equal length, got {tuple(pairs.shape)} and "
            f"{tuple(outputs.shape)}."
        )
    return Labels([categorical("a", pairs[:, 0]), categorical("b", pairs[:, 1]), categorical("output", outputs)])


def probe_modular_mlp(
    model: ModularMLP,
    data: DataBundle,
    *,
    layers: LayerSpec | None = None,
    probe: Probe | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.1,
    split: Split = "examples",
    decimals: int | None = 2,
    use_untrained: bool = True,
    progress: bool = False,
) -> ProbeRun:
    """Probe a trained ModularMLP's activation image over its held-out pairs (`probe_activation_image`).

    Labels are `a`, `b` and the model's own predicted `output`; the control task gives
    each distinct pair (a, b) its random labels. Cases are the distinct (a, b, output)
    triples, titled like "0 + 1 = 1".

    Args:
        model: A trained ModularMLP.
        data: Its modular data (the held-out split `x_test` is probed).
        layers: Image rows; default every hidden block.
        probe: Unfitted probe; default a ConvProbe (kernels clipped to the image, see probe_activation_image).
        seeds: Seeds of the repeated runs.
        test_fraction: Held-out share of the probe's split.
        split: "examples" or "types" (hold out whole (a, b) pairs).
        decimals: Rounding of the activations (None keeps full precision).
        use_untrained: Also probe untrained copies of the model.
        progress: Show progress bars.

    Raises:
        UnsupportedModelError: `model` is not a ModularMLP.
        DataError: `data` is not modular data.
    """
    if not isinstance(model, ModularMLP):
        raise UnsupportedModelError(
            f"probe_modular_mlp needs a ModularMLP, got {type(model).__name__}; use probe_activation_image(...) for "
            "other models."
        )
    if "pairs_test" not in data.extras:
        raise DataError(
            "data has no 'pairs_test' extra; build it with modular_data(...) (or load the checkpoint's own data)."
        )
    pairs = data.extras["pairs_test"]
    with eval_mode(model), torch.no_grad():
        outputs = model(data.x_test.to(model_device(model))).argmax(dim=1).cpu()
    run = probe_activation_image(
        model,
        data.x_test,
        modular_labels(pairs, outputs),
        hidden_layers(model) if layers is None else layers,
        probe=probe,
        types=pairs,
        seeds=seeds,
        test_fraction=test_fraction,
        split=split,
        decimals=decimals,
        use_untrained=use_untrained,
        progress=progress,
    )
    op = str(data.extras.get("operation", "+"))
    titles = tuple(f"{int(pairs[i, 0])} {op} {int(pairs[i, 1])} = {int(outputs[i])}" for i in run.case_indices.tolist())
    accuracy = float((outputs == data.y_test.cpu()).float().mean())
    info = {**run.info, "modulus": model.config.modulus, "operation": op, "hidden": model.config.hidden}
    return replace(run, case_titles=titles, target_accuracy=accuracy, info=info)
