"""The probing pipeline: record layers, turn their activations into features, fit probes with controls.

Every probing question here runs the same three steps:

1. record the layers of the model, and of an untrained copy per seed, on the inputs;
2. turn the activations into features: layer by layer through a `Features` hook
   (`flat_features`, the default, or `unit_means`: one feature per unit), or several
   layers stacked as the rows of one activation image;
3. fit probes held-out with the controls of `evaluate_probe`: majority baseline,
   control task, selectivity, untrained copy, spread over seeds.

`probe_by_layer` fits one probe per layer and label group (where in the network each
label becomes decodable); `probe_activation_image` fits one probe on the image of
several layers, all groups at once (what the layers say together, with one example per
case to picture).

Example:
    >>> table = probe_by_layer(model, data.x_test, {"a": a, "b": b, "output": out},
    ...                        ["hidden.0", "hidden.2", "hidden.4"], types=pairs)
    >>> print(table.format())
    >>> run = probe_activation_image(model, data.x_test, {"a": a, "b": b}, ["hidden.0", "hidden.1"], types=pairs)
    >>> run.report.all_heads_accuracy
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.cache import TaskCache
from mechscope.capture import ActivationStore, record
from mechscope.capture.names import LayerSpec, resolve_layers
from mechscope.capture.units import layer_unit_axes
from mechscope.engine import Engine, LocalEngine
from mechscope.errors import DataError
from mechscope.probes.activation_image import ActivationImage, stack_activations
from mechscope.probes.base import Probe
from mechscope.probes.control import input_types, untrained_copy
from mechscope.probes.conv import ConvProbe
from mechscope.probes.linear import LinearProbe
from mechscope.probes.rigor import ProbeReport, Split, evaluate_probe, merge_reports
from mechscope.probes.labels import GroupKind, Labels, LabelsLike, as_labels

__all__ = [
    "Features",
    "flat_features",
    "unit_means",
    "LayerScore",
    "LayerProbeTable",
    "probe_by_layer",
    "ProbeRun",
    "probe_activation_image",
    "representative_cases",
]

Features = Callable[[str, Tensor], Tensor]
"""Turn one layer's activations (batch, ...) into probe features (batch, n_features); gets the layer name too."""

_BATCH = 4096  # inputs per recording pass


def flat_features(layer: str, value: Tensor) -> Tensor:
    """Every value of the layer's output as a feature, flattened to (batch, n_features) float32 (the default)."""
    return value.reshape(value.shape[0], -1).float()


def unit_means(model: nn.Module) -> Features:
    """One feature per unit: its mean over the layer's other axes (the positions of a conv map or a sequence).

    A linear probe on every position of an early conv layer costs seconds per fit and
    mostly reads the input again; the unit means ask what each channel says. Layers of
    (batch, unit) pass through unchanged.

    Example:
        >>> table = probe_by_layer(cnn, x, {"label": y}, ["relu1", "relu2"], features=unit_means(cnn))
    """

    def means(layer: str, value: Tensor) -> Tensor:  # (batch, unit)
        if value.dim() <= 2:
            return value.float()
        return layer_unit_axes(model, layer, tuple(value.shape)).units_first(value).flatten(2).mean(dim=2).float()

    return means


@dataclass(frozen=True)
class LayerScore:
    """Held-out score of one probe on one layer for one label group (means and stds over seeds).

    Attributes:
        layer: Layer name.
        label: Label group name.
        kind: "categorical" (scores are accuracies) or "continuous" (scores are R^2).
        score: Mean held-out score on the real task.
        score_std: Its standard deviation over seeds.
        baseline: Majority-class accuracy (R^2 of the training mean for continuous groups).
        control: Mean score on the control task.
        selectivity: score - control (mean over seeds).
        untrained: Mean score on an untrained copy (None when not run).
    """

    layer: str
    label: str
    kind: GroupKind
    score: float
    score_std: float
    baseline: float
    control: float
    selectivity: float
    untrained: float | None


@dataclass(frozen=True)
class LayerProbeTable:
    """Scores for every (layer, label) pair; draw it with `mechscope.plots.probes.plot_accuracy_by_layer`.

    Attributes:
        rows: One LayerScore per layer and label, layers in order.
        layers: Layer names in order.
        labels: Label group names in order.
        probe: repr of the probe used.
        seeds: Seeds run.
    """

    json_skip: ClassVar[frozenset[str]] = frozenset({"layers", "labels"})  # both are in the rows

    rows: tuple[LayerScore, ...]
    layers: tuple[str, ...]
    labels: tuple[str, ...]
    probe: str
    seeds: tuple[int, ...]

    def get(self, layer: str, label: str) -> LayerScore:
        """The row of `layer` and `label`."""
        for row in self.rows:
            if row.layer == layer and row.label == label:
                return row
        raise DataError(
            f"no row for layer {layer!r} and label {label!r}; layers {self.layers}, labels {self.labels}."
        )

    def format(self) -> str:
        """A text table: one line per layer and label."""
        width = max(len(r.layer) for r in self.rows)
        lines = [
            f"{'layer':<{width}}  {'label':<10} {'score':>17} {'baseline':>9} {'control':>8} {'select.':>8} "
            f"{'untrained':>9}"
        ]
        for r in self.rows:
            untrained = "-" if r.untrained is None else f"{r.untrained:.3f}"
            lines.append(
                f"{r.layer:<{width}}  {r.label:<10} {r.score:>8.3f} +/- {r.score_std:.3f} {r.baseline:>9.3f} "
                f"{r.control:>8.3f} {r.selectivity:>8.3f} {untrained:>9}"
            )
        return "\n".join(lines)


def probe_by_layer(
    model: nn.Module,
    inputs: Tensor,
    labels: LabelsLike,
    layers: LayerSpec,
    *,
    features: Features | None = None,
    probe: Probe | None = None,
    types: Tensor | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.2,
    split: Split = "examples",
    use_untrained: bool = True,
    progress: bool = False,
    engine: Engine | None = None,
    cache: TaskCache | None = None,
) -> LayerProbeTable:
    """Fit one probe per layer and per label group and score each held-out with controls.

    Args:
        model: Any module.
        inputs: Model inputs (batch, ...).
        labels: Label groups, one value per input.
        layers: Layers to probe.
        features: Turns a layer's activations into the probe's features; None uses
            `flat_features` (every value); `unit_means(model)` gives one feature per unit.
        probe: Unfitted probe, cloned for every fit; default LinearProbe().
        types: Input type per example for the control task; default distinct rows of `inputs`.
        seeds: Seeds of the repeated splits.
        test_fraction: Held-out share of each split.
        split: "examples" or "types" (hold out whole input types; see evaluate_probe).
        use_untrained: Also probe untrained copies (fresh weights per seed).
        progress: Show a progress bar over the (layer, seed) fits.
        engine: Where the fits run (`mechscope.engine`): one task per layer and seed, each
            recording its layer (and an untrained copy's) and fitting every label group;
            the table is the same on any engine.
        cache: Keep each finished (layer, seed) task (`mechscope.cache.TaskCache`).

    Returns:
        LayerProbeTable (draw it with mechscope.plots.probes.plot_accuracy_by_layer).

    Raises:
        LayerNameError: A layer does not exist.
        DataError: Lengths differ, activations hold NaN/inf, or a group has one class.
    """
    names, real = _layers_and_labels(model, inputs, labels, layers)
    seeds = tuple(int(s) for s in seeds)
    job = _LayerJob(model, inputs, real, flat_features if features is None else features,
                    LinearProbe() if probe is None else probe, _type_ids(inputs if types is None else types),
                    test_fraction, split, use_untrained)
    items = [(layer, seed) for layer in names for seed in seeds]
    parts = (engine or LocalEngine()).map(_layer_seed_task, items, shared=job, cache=cache,
                                          desc="probe by layer" if progress else None)
    kinds = real.kinds
    rows = []
    for i, layer in enumerate(names):
        mine = parts[i * len(seeds):(i + 1) * len(seeds)]
        for group in real:
            report = merge_reports([part[group.name] for part in mine])
            rows.append(_layer_score(layer, group.name, kinds[group.name], report))
    return LayerProbeTable(tuple(rows), tuple(names), tuple(real.names), repr(job.probe), seeds)


@dataclass(frozen=True)
class _LayerJob:
    """What every (layer, seed) task of `probe_by_layer` shares."""

    model: nn.Module
    inputs: Tensor
    labels: Labels
    features: Features
    probe: Probe
    types: Tensor  # type id per example
    test_fraction: float
    split: Split
    use_untrained: bool


def _layer_seed_task(job: _LayerJob, item: tuple[str, int]) -> dict[str, ProbeReport]:
    """Probe one layer on one seed (a task): one report per label group."""
    layer, seed = item
    acts = job.features(layer, _record(job.model, [layer], job.inputs).act(layer))
    copy = _record(untrained_copy(job.model, seed=seed), [layer], job.inputs) if job.use_untrained else None

    def untrained(_seed: int) -> Tensor:
        return job.features(layer, copy.act(layer))  # type: ignore[union-attr]

    reports = {group.name: evaluate_probe(job.probe, acts, Labels([group]), types=job.types, seeds=(seed,),
                                          test_fraction=job.test_fraction, split=job.split,
                                          untrained=untrained if copy is not None else None)
               for group in job.labels}
    # The fitted probes stay behind: the table needs only the scores (and a result is stored without pickle).
    return {name: replace(r, runs=tuple(replace(run, probe=None) for run in r.runs)) for name, r in reports.items()}


def _type_ids(source: Tensor) -> Tensor:
    """Type id per example for the control task: given ids (batch,) as they are, else the distinct rows of `source`."""
    return source if source.dim() == 1 and not source.is_floating_point() else input_types(source)


def _layer_score(layer: str, name: str, kind: GroupKind, report: ProbeReport) -> LayerScore:
    """The row of one layer and label group, from the report of its probe."""
    return LayerScore(
        layer=layer,
        label=name,
        kind=kind,
        score=report.heads[name],
        score_std=report.heads_std[name],
        baseline=report.baseline_heads[name],
        control=report.control_heads[name],
        selectivity=report.selectivity_heads[name],
        untrained=None if report.untrained_heads is None else report.untrained_heads[name],
    )


@dataclass(frozen=True)
class ProbeRun:
    """A probed activation image: the report, the image and a fitted probe for the pictures.

    Attributes:
        report: Accuracy per head, all heads, baseline, control, selectivity, untrained copy, seeds.
        image: The activation images the probe read (held-out and training examples together).
        probe: The probe fitted on the first seed's training split.
        labels: The label groups that were decoded (one value per example of `image`).
        case_indices: One representative example (index into `image`) per distinct case.
        case_titles: A title per case, e.g. "0 + 1 = 1".
        types: Input type per example used by the control task (None: distinct model inputs).
        target_accuracy: Held-out accuracy of the probed model itself, if known.
        info: What was probed (model class, modulus, layers ...), JSON-friendly.
    """

    report: ProbeReport
    image: ActivationImage
    probe: Probe
    labels: Labels
    case_indices: Tensor
    case_titles: tuple[str, ...]
    types: Tensor | None = None
    target_accuracy: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __json__(self) -> ProbeReport:
        """The report stands for the run in JSON (the image and probe are not JSON)."""
        return self.report


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


def probe_activation_image(
    model: nn.Module,
    inputs: Tensor,
    labels: LabelsLike,
    layers: LayerSpec,
    *,
    probe: Probe | None = None,
    types: Tensor | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.1,
    split: Split = "examples",
    decimals: int | None = None,
    use_untrained: bool = True,
    progress: bool = False,
) -> ProbeRun:
    """Stack `layers` of `model` on `inputs` into activation images and probe them with controls.

    Args:
        model: Any module.
        inputs: Model inputs (batch, ...).
        labels: What to decode (tensor, dict name -> tensor, or Labels), one per input.
        layers: Image rows, in order.
        probe: Unfitted probe; default a ConvProbe, its 2 x 2 kernels clipped to the image
            when it has a single row or column (one layer), with a note.
        types: Input type per example for the control task; default the distinct rows of `inputs`.
        seeds: Seeds (split, initialisation, control labels, untrained copy).
        test_fraction: Held-out share (seed 000's article: 0.1).
        split: "examples" or "types" (hold out whole input types; see evaluate_probe).
        decimals: Round activations (seed 000's article: 2).
        use_untrained: Also probe an untrained copy of `model` (fresh weights per seed).
        progress: Show progress bars.

    Returns:
        ProbeRun; cases are the distinct combinations of the categorical labels.

    Raises:
        LayerNameError: A layer does not exist.
        DataError: Lengths differ, activations hold NaN/inf, or a group has one class.
    """
    names, real = _layers_and_labels(model, inputs, labels, layers)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = _stacked(_record(model, names, inputs), names, decimals)
    for warning in caught:  # re-emitted so they point at the caller, not at this module
        warnings.warn(warning.message, stacklevel=2)
    notes = list(image.notes)
    if probe is None:
        probe, clipped = _default_conv_probe(image)
        notes += [clipped] if clipped else []

    def untrained(seed: int) -> Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # same padding as the trained image, already reported
            return _stacked(_record(untrained_copy(model, seed=seed), names, inputs), names, decimals).images

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
    report = replace(report, notes=tuple(report.notes) + tuple(notes))
    classes = [g.values for g in real if g.kind == "categorical"]
    cases = torch.stack(classes, dim=1) if classes else torch.zeros(len(real), 1, dtype=torch.long)
    indices = representative_cases(cases)
    titles = tuple(
        ", ".join(f"{g.name} {int(g.values[i])}" for g in real if g.kind == "categorical") for i in indices.tolist()
    )
    fitted = report.runs[0].probe
    if fitted is None:  # evaluate_probe always keeps the fitted probe; guard for type checkers
        raise DataError("no fitted probe was returned; run evaluate_probe with at least one seed.")
    info = {"model_class": type(model).__name__, "layers": names}
    return ProbeRun(report, image, fitted, real, indices, titles, types, None, info)


def _layers_and_labels(
    model: nn.Module, inputs: Tensor, labels: LabelsLike, layers: LayerSpec
) -> tuple[list[str], Labels]:
    names = resolve_layers(model, layers)
    real = as_labels(labels)
    if len(real) != inputs.shape[0]:
        raise DataError(f"inputs hold {inputs.shape[0]} examples but the labels {len(real)}; pass one per input.")
    return names, real


def _record(model: nn.Module, names: list[str], inputs: Tensor) -> ActivationStore:
    return record(model, names, inputs, batch_size=_BATCH, progress=False)


def _stacked(store: ActivationStore, names: list[str], decimals: int | None) -> ActivationImage:
    """The layers' activations as the rows of one image per example (warns when rows are padded)."""
    return stack_activations({name: store.act(name) for name in names}, layers=names, decimals=decimals)


def _default_conv_probe(image: ActivationImage) -> tuple[ConvProbe, str | None]:
    """A ConvProbe whose kernels are no larger than the image; a note when they had to shrink."""
    height, width = image.images.shape[1:]
    rows, cols = min(2, height), min(2, width)
    if (rows, cols) == (2, 2):
        return ConvProbe(), None
    return ConvProbe(kernel_size=(rows, cols)), (
        f"kernels of {rows} x {cols} instead of the article's 2 x 2: the activation image has only {height} row(s) "
        f"(layers) and {width} column(s) (units)"
    )
