"""The convolutional-probe article end to end, and the same pipeline for any model.

Seed 000 trains a 7-layer tanh network on (a + b) mod 2, records its five hidden layers
on the 10,000 test pairs as 5 x 5 activation images (rounded to 2 decimals), and trains
a convolutional probe (3 kernels of 2 x 2, max over kernels, tanh, two hidden layers of
30, one softmax per group) to recover a, b and the network's own output from them, on a
90/10 split. `reproduce_article` does all of it in one call and adds what a probing
claim needs: a majority baseline, a control task, selectivity, an untrained copy, and
the spread over seeds.

Example:
    >>> run = reproduce_article(modulus=2)
    >>> run.report.heads, run.report.all_heads_accuracy
    ({'a': 1.0, 'b': 1.0, 'output': 1.0}, 1.0)
    >>> save_probe_figures(run, "figures/")
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mechscope.capture import LayerSpec, eval_mode, model_device, resolve_layers
from mechscope.data import DataBundle, modular_data
from mechscope.errors import DataError, UnsupportedModelError
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded, evaluate, train
from mechscope.probes.activation_image import ActivationImage, activation_image
from mechscope.probes.base import Probe
from mechscope.probes.control import untrained_copy
from mechscope.probes.conv import ConvProbe
from mechscope.probes.rigor import ProbeReport, Split, evaluate_probe
from mechscope.probes.targets import Targets, TargetsLike, as_targets, categorical

__all__ = [
    "ProbeRun",
    "probe_model",
    "probe_modular_mlp",
    "reproduce_article",
    "save_probe_figures",
    "hidden_layers",
    "article_hidden",
    "modular_targets",
    "representative_cases",
]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ProbeRun:
    """A probed model: the report, the activation image and a fitted probe for the pictures.

    Attributes:
        report: Accuracy per head, all heads, baseline, control, selectivity, untrained copy, seeds.
        image: The activation images the probe read (held-out and training examples together).
        probe: The probe fitted on the first seed's training split.
        targets: The target groups that were decoded (one value per example of `image`).
        case_indices: One representative example (index into `image`) per distinct case.
        case_titles: A title per case, e.g. "0 + 1 = 1".
        types: Input type per example used by the control task (None: distinct model inputs).
        target_accuracy: Held-out accuracy of the probed model itself, if known.
        info: What was probed (model class, modulus, layers ...), JSON-friendly.
    """

    report: ProbeReport
    image: ActivationImage
    probe: Probe
    targets: Targets
    case_indices: Tensor
    case_titles: tuple[str, ...]
    types: Tensor | None = None
    target_accuracy: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON (see ProbeReport.to_dict)."""
        return self.report.to_dict()


def hidden_layers(model: nn.Module) -> list[str]:
    """The article's rows: every hidden block `hidden.0` ... of a ModularMLP.

    Raises:
        UnsupportedModelError: `model` is not a ModularMLP (pass layers explicitly instead).
    """
    if not isinstance(model, ModularMLP):
        raise UnsupportedModelError(
            f"default probe layers exist only for ModularMLP, got {type(model).__name__}; pass layers=[...] "
            "(list them with mechscope.layer_names(model) or `mechscope layers CHECKPOINT`)."
        )
    return [f"hidden.{i}" for i in range(model.config.n_hidden_layers)]


def article_hidden(modulus: int) -> int:
    """Hidden width of the target for `modulus`: 5 (the article) up to mod 3, 32 from mod 4 on.

    Five units per layer suffice for mod 2 and 3; larger moduli are trained wider (as
    `mechscope train modular-mlp --modulus 5 --hidden 32`), which widens the image to 5 x 32.
    """
    return 5 if modulus <= 3 else 32


def modular_targets(pairs: Tensor, outputs: Tensor) -> Targets:
    """The article's three groups: operand `a`, operand `b`, and the network's `output` class."""
    if pairs.dim() != 2 or pairs.shape[1] != 2 or pairs.shape[0] != outputs.shape[0]:
        raise DataError(
            f"need pairs (batch, 2) and outputs (batch,) of equal length, got {tuple(pairs.shape)} and "
            f"{tuple(outputs.shape)}."
        )
    return Targets([categorical("a", pairs[:, 0]), categorical("b", pairs[:, 1]), categorical("output", outputs)])


def representative_cases(cases: Tensor) -> Tensor:
    """Index of the first example of every distinct row of `cases` (batch, k), in sorted case order."""
    flat = cases.reshape(cases.shape[0], -1)
    _, inverse = torch.unique(flat, dim=0, return_inverse=True)
    n_cases = int(inverse.max()) + 1
    positions = torch.arange(flat.shape[0], device=flat.device)
    first = torch.full((n_cases,), flat.shape[0], dtype=torch.long, device=flat.device).scatter_reduce(
        0, inverse, positions, reduce="amin"
    )
    return first


def probe_model(
    model: nn.Module,
    inputs: Tensor,
    targets: TargetsLike,
    *,
    layers: LayerSpec,
    probe: Probe | None = None,
    types: Tensor | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.1,
    split: Split = "examples",
    decimals: int | None = None,
    use_untrained: bool = True,
    progress: bool = False,
) -> ProbeRun:
    """Record `layers` of `model` on `inputs` as activation images and probe them with controls.

    Args:
        model: Any module.
        inputs: Model inputs (batch, ...).
        targets: What to decode (tensor, dict name -> tensor, or Targets), one per input.
        layers: Image rows, in order.
        probe: Unfitted probe; default the article's ConvProbe, its 2 x 2 kernels clipped to
            the image when it has a single row or column (one hidden layer), with a note.
        types: Input type per example for the control task; default the distinct rows of `inputs`.
        seeds: Seeds (split, initialisation, control labels, untrained copy).
        test_fraction: Held-out share (the article: 0.1).
        split: "examples" (the article) or "types" (hold out whole input types; see evaluate_probe).
        decimals: Round activations (the article: 2).
        use_untrained: Also probe an untrained copy of `model` (fresh weights per seed).
        progress: Show progress bars.

    Returns:
        ProbeRun; cases are the distinct combinations of the categorical targets.

    Raises:
        LayerNameError: A layer does not exist.
        DataError: Lengths differ, activations hold NaN/inf, or a group has one class.
    """
    names = resolve_layers(model, layers)
    real = as_targets(targets)
    if len(real) != inputs.shape[0]:
        raise DataError(f"inputs hold {inputs.shape[0]} examples but the targets {len(real)}; pass one per input.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = activation_image(model, names, inputs, decimals=decimals)
    for warning in caught:  # re-emitted so they point at the caller, not at this module
        warnings.warn(warning.message, stacklevel=2)
    notes = list(image.notes)
    if probe is None:
        probe, clipped = _article_probe(image)
        notes += [clipped] if clipped else []

    def untrained(seed: int) -> Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # same padding as the trained image, already reported
            return activation_image(untrained_copy(model, seed=seed), names, inputs, decimals=decimals).images

    report = evaluate_probe(
        probe,
        image.images,
        real,
        types=inputs if types is None else types,
        seeds=seeds,
        test_fraction=test_fraction,
        untrained=untrained if use_untrained else None,
        split=split,
        progress=progress,
    )
    report = _with_notes(report, notes)
    labels = [g.values for g in real if g.kind == "categorical"]
    cases = torch.stack(labels, dim=1) if labels else torch.zeros(len(real), 1, dtype=torch.long)
    indices = representative_cases(cases)
    titles = tuple(
        ", ".join(f"{g.name} {int(g.values[i])}" for g in real if g.kind == "categorical") for i in indices.tolist()
    )
    fitted = report.runs[0].probe
    if fitted is None:  # evaluate_probe always keeps the fitted probe; guard for type checkers
        raise DataError("no fitted probe was returned; run evaluate_probe with at least one seed.")
    info = {"model_class": type(model).__name__, "layers": names}
    return ProbeRun(report, image, fitted, real, indices, titles, types, None, info)


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
    """The article's probe on a trained ModularMLP, over its held-out pairs.

    Targets are `a`, `b` and the model's own predicted `output`; the control task gives
    each distinct pair (a, b) its random labels. Cases are the distinct (a, b, output)
    triples, titled like "0 + 1 = 1".

    Args:
        model: A trained ModularMLP.
        data: Its modular data (the held-out split `x_test` is probed, as in the article).
        layers: Image rows; default every hidden block.
        probe: Unfitted probe; default the article's ConvProbe (kernels clipped to the image, see probe_model).
        seeds: Seeds of the repeated runs.
        test_fraction: Held-out share of the probe's split (the article: 0.1).
        split: "examples" (the article) or "types" (hold out whole (a, b) pairs).
        decimals: Rounding of the activations (the article: 2; None keeps full precision).
        use_untrained: Also probe untrained copies of the model.
        progress: Show progress bars.

    Raises:
        UnsupportedModelError: `model` is not a ModularMLP.
        DataError: `data` is not modular data.
    """
    if not isinstance(model, ModularMLP):
        raise UnsupportedModelError(
            f"probe_modular_mlp needs a ModularMLP, got {type(model).__name__}; use probe_model(...) for other models."
        )
    if "pairs_test" not in data.extras:
        raise DataError(
            "data has no 'pairs_test' extra; build it with modular_data(...) (or load the checkpoint's own data)."
        )
    pairs = data.extras["pairs_test"]
    with eval_mode(model), torch.no_grad():
        outputs = model(data.x_test.to(model_device(model))).argmax(dim=1).cpu()
    run = probe_model(
        model,
        data.x_test,
        modular_targets(pairs, outputs),
        layers=hidden_layers(model) if layers is None else layers,
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


def reproduce_article(
    modulus: int = 2,
    operation: Literal["+", "-", "*"] = "+",
    *,
    hidden: int | None = None,
    probe: Probe | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    split: Split = "examples",
    seed: int = 0,
    progress: bool = False,
) -> ProbeRun:
    """Train the article's target on 10,000 random pairs, then probe it (`probe_modular_mlp`).

    Args:
        modulus: m; the article uses 2.
        operation: "+", "-" or "*".
        hidden: Units per hidden layer; default `article_hidden(modulus)` (5, or 32 from mod 4).
        probe: Unfitted probe; default the article's ConvProbe.
        seeds: Seeds of the probe runs.
        split: "examples" (the article) or "types" (hold out whole (a, b) pairs).
        seed: Seed of the target's data and initial weights.
        progress: Show progress bars.

    Returns:
        ProbeRun with `target_accuracy` the target's own held-out accuracy.
    """
    width = article_hidden(modulus) if hidden is None else hidden
    data = modular_data(modulus, operation, n_train=10_000, n_test=10_000, seed=seed)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=modulus, hidden=width), seed)
    train(model, data, progress=progress)
    model.eval()
    run = probe_modular_mlp(model, data, probe=probe, seeds=seeds, split=split, progress=progress)
    accuracy = evaluate(model, data.x_test, data.y_test, "classification")["test_accuracy"]
    return replace(run, target_accuracy=accuracy)


def save_probe_figures(run: ProbeRun, out_dir: PathLike, *, max_cases: int | None = 25) -> list[Path]:
    """Write the run's pictures as PNGs into `out_dir` and return their paths.

    Always `probe_accuracy.png` (task vs baseline, control and untrained copy); for a
    ConvProbe also `kernels.png` (the learned kernels) and `kernel_responses.png` (each
    kernel's response to one example per case: rows = cases, columns = kernels).

    Args:
        run: A ProbeRun.
        out_dir: Folder (created if missing); files are written atomically.
        max_cases: Show at most this many cases (None: all).
    """
    from mechscope.plots._style import save_figure
    from mechscope.plots.probes import plot_kernel_responses, plot_kernels, plot_probe_report

    out = Path(out_dir)
    paths = [save_figure(plot_probe_report(run.report), out / "probe_accuracy.png")]
    if isinstance(run.probe, ConvProbe):
        height, width = run.image.images.shape[1:]
        paths.append(save_figure(plot_kernels(run.probe.kernels_), out / "kernels.png"))
        indices = run.case_indices if max_cases is None else run.case_indices[:max_cases]
        responses = run.probe.kernel_responses(run.image.images[indices])
        title = f"Kernel-filtered activation images ({height} layers x {width} units), one example per case"
        paths.append(
            save_figure(
                plot_kernel_responses(responses, run.case_titles[: len(indices)], title=title),
                out / "kernel_responses.png",
            )
        )
    return paths


def _article_probe(image: ActivationImage) -> tuple[ConvProbe, str | None]:
    """The article's ConvProbe, its kernels no larger than the image; a note when they had to shrink."""
    height, width = image.images.shape[1:]
    rows, cols = min(2, height), min(2, width)
    if (rows, cols) == (2, 2):
        return ConvProbe(), None
    return ConvProbe(kernel_size=(rows, cols)), (
        f"kernels of {rows} x {cols} instead of the article's 2 x 2: the activation image has only {height} row(s) "
        f"(layers) and {width} column(s) (units)"
    )


def _with_notes(report: ProbeReport, notes: Sequence[str]) -> ProbeReport:
    return replace(report, notes=tuple(report.notes) + tuple(notes))
