"""Evaluate a probe with its controls over several seeds: the numbers a probing claim needs.

For each seed: a fresh random train/test split, the probe on the real labels, the same
probe on the control task (Hewitt & Liang, 2019), optionally the same probe on an
untrained copy of the model, and the majority-class baseline. The report gives mean and
standard deviation over seeds; selectivity = task accuracy - control accuracy.

Example:
    >>> report = evaluate_probe(LinearProbe(), acts, {"a": a, "b": b}, types=pairs, seeds=(0, 1, 2))
    >>> report.all_heads_accuracy, report.selectivity
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.errors import ConfigError, DataError
from mechscope.probes.base import ArrayLike, Probe, all_heads_accuracy, check_activations, clone, head_scores
from mechscope.probes.control import Baseline, control_task, input_types, majority_baseline, selectivity
from mechscope.probes.labels import Labels, LabelsLike, as_labels

__all__ = [
    "SeedRun",
    "ProbeReport",
    "Split",
    "evaluate_probe",
    "merge_reports",
    "split_indices",
    "fit_seeded",
    "MIN_HELD_OUT_TYPES",
    "MIN_HELD_OUT_TYPES_PER_CLASS",
]

Split = Literal["examples", "types"]
"""How held-out examples are chosen: a share of the examples, or of the distinct input types."""

UntrainedActivations = Tensor | Callable[[int], Tensor]
"""Activations of an untrained copy: one tensor for all seeds, or a function seed -> tensor."""

MIN_HELD_OUT_TYPES = 10
"""Fewest distinct input types a split by type should hold out. With fewer, the held-out
score counts a handful of inputs, each right or wrong as a whole, and jumps by 1/n between
seeds (a 4-type toy holds out one type: the score is 0 or 1)."""

MIN_HELD_OUT_TYPES_PER_CLASS = 3
"""Fewest held-out input types each class of a categorical label should have in a split
by type; a class with fewer is scored on one or two inputs, or not at all."""


@dataclass(frozen=True)
class SeedRun:
    """Held-out scores of one seed.

    Attributes:
        seed: The seed (split, probe initialisation, control labels, untrained copy).
        heads: Group -> accuracy (R^2 for continuous groups) on the real task.
        all_heads_accuracy: Fraction of held-out examples with every categorical head right.
        control_heads: Per-group scores on the control task.
        control_accuracy: All-heads accuracy on the control task.
        untrained_heads: Per-group scores on the untrained copy (None when not run).
        untrained_accuracy: All-heads accuracy on the untrained copy (None when not run).
        baseline: Majority-class scores on this split.
        n_epochs: Epochs the task probe trained (0 for closed-form probes).
        probe: The fitted task probe (not part of the JSON).
    """

    json_skip: ClassVar[frozenset[str]] = frozenset({"probe", "baseline"})
    json_extra: ClassVar[tuple[str, ...]] = ("baseline_heads", "baseline_accuracy")

    seed: int
    heads: dict[str, float]
    all_heads_accuracy: float
    control_heads: dict[str, float]
    control_accuracy: float
    untrained_heads: dict[str, float] | None
    untrained_accuracy: float | None
    baseline: Baseline
    n_epochs: int = 0
    probe: Probe | None = field(default=None, compare=False, repr=False)

    @property
    def baseline_heads(self) -> dict[str, float]:
        """Majority-class score per group on this split."""
        return self.baseline.heads

    @property
    def baseline_accuracy(self) -> float:
        """Majority-class all-heads accuracy on this split."""
        return self.baseline.all_heads_accuracy


@dataclass(frozen=True)
class ProbeReport:
    """A probe's held-out accuracy with baseline, control task, untrained copy and seed spread.

    Scalars are means over seeds; `*_std` fields are sample standard deviations (0 for one seed).

    Attributes:
        probe: repr of the probe (class and non-default hyperparameters).
        heads: Group -> mean held-out accuracy (R^2 for continuous groups).
        heads_std: Group -> standard deviation over seeds.
        all_heads_accuracy: Mean fraction of held-out examples with every categorical head right.
        all_heads_std: Its standard deviation.
        baseline_accuracy: Majority-class all-heads accuracy (mean over seeds).
        baseline_heads: Majority-class score per group.
        control_accuracy: All-heads accuracy on the control task.
        control_std: Its standard deviation.
        control_heads: Per-group control scores.
        selectivity: all_heads_accuracy - control_accuracy (mean of per-seed differences).
        selectivity_std: Its standard deviation.
        selectivity_heads: Per-group selectivity.
        untrained_accuracy: All-heads accuracy on an untrained copy (None when not run).
        untrained_std: Its standard deviation (None when not run).
        untrained_heads: Per-group scores on the untrained copy (None when not run).
        seeds: The seeds run.
        runs: One SeedRun per seed.
        n_train: Training examples per split (mean over seeds).
        n_test: Held-out examples per split (mean over seeds).
        n_types: Distinct input types (the unit of the control task).
        notes: Remarks on how the inputs were built (e.g. padding).
        split: "examples" or "types" (see evaluate_probe).
        warnings: Why the scores may not be stable: a split by type that holds out fewer
            than `MIN_HELD_OUT_TYPES` types, or fewer than `MIN_HELD_OUT_TYPES_PER_CLASS`
            types of some class (in the worst seed).
    """

    probe: str
    heads: dict[str, float]
    heads_std: dict[str, float]
    all_heads_accuracy: float
    all_heads_std: float
    baseline_accuracy: float
    baseline_heads: dict[str, float]
    control_accuracy: float
    control_std: float
    control_heads: dict[str, float]
    selectivity: float
    selectivity_std: float
    selectivity_heads: dict[str, float]
    untrained_accuracy: float | None
    untrained_std: float | None
    untrained_heads: dict[str, float] | None
    seeds: tuple[int, ...]
    runs: tuple[SeedRun, ...]
    n_train: int
    n_test: int
    n_types: int
    notes: tuple[str, ...] = field(default_factory=tuple)
    split: Split = "examples"
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __json__(self) -> dict[str, Any]:
        """The headline keys, with the spread and per-seed detail under "seeds"."""
        return {
            "heads": self.heads,
            "all_heads_accuracy": self.all_heads_accuracy,
            "baseline_accuracy": self.baseline_accuracy,
            "control_accuracy": self.control_accuracy,
            "selectivity": self.selectivity,
            "untrained_accuracy": self.untrained_accuracy,
            "seeds": {
                "values": self.seeds,
                "std": {
                    "heads": self.heads_std,
                    "all_heads_accuracy": self.all_heads_std,
                    "control_accuracy": self.control_std,
                    "selectivity": self.selectivity_std,
                    "untrained_accuracy": self.untrained_std,
                },
                "per_head": {
                    "baseline": self.baseline_heads,
                    "control": self.control_heads,
                    "selectivity": self.selectivity_heads,
                    "untrained": self.untrained_heads,
                },
                "runs": self.runs,
                "probe": self.probe,
                "n_train": self.n_train,
                "n_test": self.n_test,
                "n_types": self.n_types,
                "split": self.split,
                "notes": self.notes,
                "warnings": self.warnings,
            },
        }

    def summary(self) -> str:
        """A few lines for people: every number as mean +/- std over the seeds."""
        heads = ", ".join(f"{k} {_pm(v, self.heads_std[k])}" for k, v in self.heads.items())
        untrained = (
            "not run" if self.untrained_accuracy is None else _pm(self.untrained_accuracy, self.untrained_std or 0.0)
        )
        lines = [
            f"probe: {self.probe} ({len(self.seeds)} seeds, {self.n_train} train / {self.n_test} held-out examples, "
            f"{self.n_types} input types, split by {self.split})",
            f"held-out accuracy per head: {heads}",
            f"all heads right:     {_pm(self.all_heads_accuracy, self.all_heads_std)}",
            f"majority baseline:   {self.baseline_accuracy:.4f}",
            f"control task:        {_pm(self.control_accuracy, self.control_std)}",
            f"selectivity:         {_pm(self.selectivity, self.selectivity_std)}",
            f"untrained copy:      {untrained}",
        ]
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


def split_indices(n: int, test_fraction: float, seed: int, *, types: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """A seeded random split of `range(n)` into (train, test) index tensors.

    Args:
        n: Number of examples.
        test_fraction: Held-out share: of the examples, or of the types when `types` is given.
        seed: Seed of the permutation.
        types: Type id per example (batch,): hold out whole types (at least one, never all),
            so every held-out example has an input the probe never saw.

    Raises:
        ConfigError: test_fraction outside (0, 1).
        DataError: A side would be empty.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ConfigError(
            f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}; the article uses 0.1."
        )
    generator = torch.Generator().manual_seed(seed)
    if types is not None:
        n_types = int(types.max()) + 1
        if n_types < 2:
            raise DataError("splitting by type needs at least two distinct input types; use split='examples'.")
        n_out = min(max(round(n_types * test_fraction), 1), n_types - 1)
        held_out = torch.zeros(n_types, dtype=torch.bool, device="cpu")
        held_out[torch.randperm(n_types, generator=generator, device="cpu")[:n_out]] = True
        is_test = held_out[types.cpu()]
        return (~is_test).nonzero().flatten(), is_test.nonzero().flatten()
    n_test = round(n * test_fraction)
    if n_test < 1 or n_test >= n:
        raise DataError(f"cannot hold out {test_fraction:g} of {n} examples; need at least one on each side.")
    order = torch.randperm(n, generator=generator, device="cpu")
    return order[n_test:], order[:n_test]


def fit_seeded(probe: Probe, seed: int) -> Probe:
    """An unfitted clone of `probe`, with `seed` set if the probe takes one."""
    fresh = clone(probe)
    if "seed" in fresh.get_params():
        fresh.set_params(seed=seed)
    return fresh


def evaluate_probe(
    probe: Probe,
    x: ArrayLike,
    labels: LabelsLike,
    *,
    types: Tensor | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.1,
    untrained: UntrainedActivations | None = None,
    split: Split = "examples",
    progress: bool = False,
) -> ProbeReport:
    """Fit `probe` per seed on a random split and score it against its controls.

    Args:
        probe: An unfitted probe; it is cloned per seed and per condition (never fitted in place).
        x: Activations (batch, ...).
        labels: Real labels (any groups).
        types: Input type of each example for the control task: ids (batch,) or inputs
            (batch, ...) whose distinct rows are the types. Default: distinct rows of `x`.
        seeds: Seeds; use at least 3 to get a spread.
        test_fraction: Held-out share of each split (the article: 0.1).
        untrained: Activations of an untrained copy of the model on the same inputs (a
            tensor, or a function seed -> tensor for a fresh copy per seed); None skips it.
        split: "examples" (a random share of the examples, as in the article: held-out
            examples may repeat training inputs) or "types" (a random share of the input
            types is held out whole, so the probe must generalise to unseen inputs).
        progress: Show a progress bar over the fits.

    Returns:
        ProbeReport.

    Raises:
        DataError: Lengths differ, x holds NaN/inf, a group has one class in a training split.
        ConfigError: No seed, or a bad test_fraction.
    """
    x = check_activations(x, "x")
    real = as_labels(labels)
    if len(real) != x.shape[0]:
        raise DataError(f"x has {x.shape[0]} examples but the labels have {len(real)}; pass one label per example.")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ConfigError("seeds is empty; pass at least one seed, e.g. seeds=(0, 1, 2).")
    type_ids = input_types(x) if types is None else _checked_types(types, x.shape[0])
    if split not in ("examples", "types"):
        raise ConfigError(f"split must be 'examples' or 'types', got {split!r}.")
    runs = []
    sizes = []
    splits = []
    steps = len(seeds) * (3 if untrained is not None else 2)
    with tqdm(total=steps, desc="probe", unit="fit", disable=None if progress else True, leave=False) as bar:
        for seed in seeds:
            train_idx, test_idx = split_indices(
                x.shape[0], test_fraction, seed, types=type_ids if split == "types" else None
            )
            sizes.append((int(train_idx.numel()), int(test_idx.numel())))
            splits.append(test_idx)
            runs.append(_seed_run(probe, x, real, type_ids, untrained, seed, (train_idx, test_idx), tick=bar.update))
    n_train = round(statistics.fmean(a for a, _ in sizes))
    n_test = round(statistics.fmean(b for _, b in sizes))
    report = _aggregate(repr(probe), runs, n_train, n_test, int(type_ids.max()) + 1)
    warnings = _type_split_warnings(type_ids, real, splits) if split == "types" else ()
    return replace(report, split=split, warnings=warnings)


def _seed_run(
    probe: Probe,
    x: Tensor,
    real: Labels,
    type_ids: Tensor,
    untrained: UntrainedActivations | None,
    seed: int,
    split: tuple[Tensor, Tensor],
    *,
    tick: Callable[[], object],
) -> SeedRun:
    """Fit and score one seed's probes on the real labels, the control task and the untrained copy.

    Args:
        probe: The unfitted probe, cloned for each fit.
        x: Activations (batch, ...).
        real: The real labels.
        type_ids: Input type per example, for the control task.
        untrained: Activations of an untrained copy (tensor or seed -> tensor); None skips it.
        seed: The seed of the fits and of the control labels.
        split: (train, test) example indices.
        tick: Called after each fit (a progress bar's update).

    Returns:
        The SeedRun, holding the fitted task probe.
    """
    train_idx, test_idx = split
    task = fit_seeded(probe, seed).fit(x[train_idx], real.subset(train_idx))
    heads, all_heads = _scores(task, x[test_idx], real.subset(test_idx))
    tick()
    control = _control_with_classes(type_ids, real, train_idx, seed)
    control_probe = fit_seeded(probe, seed).fit(x[train_idx], control.subset(train_idx))
    control_heads, control_all = _scores(control_probe, x[test_idx], control.subset(test_idx))
    tick()
    untrained_heads: dict[str, float] | None = None
    untrained_all: float | None = None
    if untrained is not None:
        untrained_heads, untrained_all = _untrained_scores(probe, untrained, x.shape[0], real, seed, split)
        tick()
    return SeedRun(
        seed, heads, all_heads, control_heads, control_all, untrained_heads, untrained_all,
        majority_baseline(real.subset(train_idx), real.subset(test_idx)),
        int(getattr(task, "n_epochs_", 0)),
        task,
    )


def _untrained_scores(
    probe: Probe, untrained: UntrainedActivations, n: int, real: Labels, seed: int, split: tuple[Tensor, Tensor]
) -> tuple[dict[str, float], float]:
    """Held-out scores (per head, all heads) of the probe fitted on an untrained copy's activations.

    Raises:
        DataError: the untrained activations hold NaN/inf or a number of examples other than `n`.
    """
    train_idx, test_idx = split
    xu = check_activations(untrained(seed) if callable(untrained) else untrained, "untrained activations")
    if xu.shape[0] != n:
        raise DataError(
            f"untrained activations hold {xu.shape[0]} examples, the trained ones {n}; "
            "record both on the same inputs."
        )
    copy_probe = fit_seeded(probe, seed).fit(xu[train_idx], real.subset(train_idx))
    return _scores(copy_probe, xu[test_idx], real.subset(test_idx))


def _type_split_warnings(type_ids: Tensor, real: Labels, tests: Sequence[Tensor]) -> tuple[str, ...]:
    """Say when a split by type holds out too few types overall, or of some class (worst seed)."""
    out = []
    held_out = min(int(torch.unique(type_ids[test]).numel()) for test in tests)
    if held_out < MIN_HELD_OUT_TYPES:
        out.append(
            f"only {held_out} distinct input type(s) were held out (fewest over the seeds); below "
            f"{MIN_HELD_OUT_TYPES} the held-out score rests on too few inputs to be stable: raise the test fraction "
            "or probe more distinct inputs"
        )
    worst: tuple[int, str, int] | None = None  # (held-out types, group, class)
    for group in real:
        if group.kind != "categorical":
            continue
        classes, labels = torch.unique(group.values.cpu(), return_inverse=True)
        for test in tests:
            pairs = torch.unique(torch.stack([labels[test], type_ids[test]]), dim=1)  # distinct (class, type)
            counts = torch.bincount(pairs[0], minlength=classes.numel())
            low = int(counts.argmin())
            if worst is None or int(counts[low]) < worst[0]:
                worst = (int(counts[low]), group.name, int(classes[low]))
    if worst is not None and worst[0] < MIN_HELD_OUT_TYPES_PER_CLASS:
        out.append(
            f"class {worst[2]} of {worst[1]!r} has only {worst[0]} held-out input type(s) in some split (fewer than "
            f"{MIN_HELD_OUT_TYPES_PER_CLASS} per class), so its held-out accuracy is not a stable estimate"
        )
    return tuple(out)


def _control_with_classes(type_ids: Tensor, real: Labels, train_idx: Tensor, seed: int) -> Labels:
    """Control labels whose training split keeps at least two classes per categorical group.

    With few types and a split by type, a draw can leave one class in training; redraw then.
    """
    control = control_task(type_ids, real, seed=seed)
    for attempt in range(1, 100):
        if all(g.kind != "categorical" or g.values.unique().numel() > 1 for g in control.subset(train_idx)):
            break
        control = control_task(type_ids, real, seed=seed + 1_000_003 * attempt)
    return control


def _scores(probe: Probe, x: Tensor, labels: Labels) -> tuple[dict[str, float], float]:
    predicted = probe.predict_groups(x)
    heads = head_scores(predicted, labels)
    has_categorical = any(g.kind == "categorical" for g in labels)
    return heads, all_heads_accuracy(predicted, labels) if has_categorical else float("nan")


def _checked_types(types: Tensor, n: int) -> Tensor:
    if not isinstance(types, Tensor) or types.shape[0] != n:
        got = tuple(types.shape) if isinstance(types, Tensor) else type(types).__name__
        raise DataError(f"types must hold one entry per example ({n}), got {got}.")
    if types.dim() == 1 and not types.is_floating_point():
        return torch.unique(types.cpu(), return_inverse=True)[1]
    return input_types(types.cpu())


def merge_reports(parts: Sequence[ProbeReport]) -> ProbeReport:
    """One report from reports of the same probe and data on different seeds (as if run together).

    Runs, scores and split sizes combine exactly as `evaluate_probe` over all the seeds would;
    warnings of a split by type are the union of the parts' (each names its worst seed).

    Raises:
        ConfigError: no parts, or parts of different probes, splits or label groups.
    """
    if not parts:
        raise ConfigError("merge_reports needs at least one report.")
    first = parts[0]
    for p in parts[1:]:
        if (p.probe, p.split, list(p.heads), p.n_types) != (first.probe, first.split, list(first.heads), first.n_types):
            raise ConfigError("merge_reports combines reports of one probe, split and set of label groups.")
    runs = [r for p in parts for r in p.runs]
    sizes = [(p.n_train, p.n_test) for p in parts for _ in p.runs]
    report = _aggregate(first.probe, runs, round(statistics.fmean(a for a, _ in sizes)),
                        round(statistics.fmean(b for _, b in sizes)), first.n_types)
    warnings = tuple(dict.fromkeys(w for p in parts for w in p.warnings))
    return replace(report, split=first.split, warnings=warnings, notes=first.notes)


def _aggregate(probe: str, runs: list[SeedRun], n_train: int, n_test: int, n_types: int) -> ProbeReport:
    names = list(runs[0].heads)
    heads = {k: _mean([r.heads[k] for r in runs]) for k in names}
    heads_std = {k: _std([r.heads[k] for r in runs]) for k in names}
    control_heads = {k: _mean([r.control_heads[k] for r in runs]) for k in names}
    selectivity_heads = {k: _mean([selectivity(r.heads[k], r.control_heads[k]) for r in runs]) for k in names}
    select = [selectivity(r.all_heads_accuracy, r.control_accuracy) for r in runs]
    has_untrained = runs[0].untrained_accuracy is not None
    untrained_all = [float(r.untrained_accuracy) for r in runs if r.untrained_accuracy is not None]
    return ProbeReport(
        probe=probe,
        heads=heads,
        heads_std=heads_std,
        all_heads_accuracy=_mean([r.all_heads_accuracy for r in runs]),
        all_heads_std=_std([r.all_heads_accuracy for r in runs]),
        baseline_accuracy=_mean([r.baseline.all_heads_accuracy for r in runs]),
        baseline_heads={k: _mean([r.baseline.heads[k] for r in runs]) for k in names},
        control_accuracy=_mean([r.control_accuracy for r in runs]),
        control_std=_std([r.control_accuracy for r in runs]),
        control_heads=control_heads,
        selectivity=_mean(select),
        selectivity_std=_std(select),
        selectivity_heads=selectivity_heads,
        untrained_accuracy=_mean(untrained_all) if has_untrained else None,
        untrained_std=_std(untrained_all) if has_untrained else None,
        untrained_heads=(
            {k: _mean([r.untrained_heads[k] for r in runs if r.untrained_heads]) for k in names}
            if has_untrained
            else None
        ),
        seeds=tuple(r.seed for r in runs),
        runs=tuple(runs),
        n_train=n_train,
        n_test=n_test,
        n_types=n_types,
    )


def _mean(values: list[float]) -> float:
    return float(statistics.fmean(values)) if values else float("nan")


def _std(values: list[float]) -> float:
    if any(math.isnan(v) for v in values):
        return float("nan")
    return float(statistics.stdev(values)) if len(values) > 1 else 0.0


def _pm(mean: float, std: float) -> str:
    return f"{mean:.4f} +/- {std:.4f}"
