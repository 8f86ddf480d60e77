"""Polysemanticity: how many classes a unit's top dataset examples spread over.

Seed 004 shows polysemantic neurons, units whose strongest inputs are unrelated things
(cat faces and car fronts). With labelled data this is measurable: take a unit's top-k
examples, count their labels, and report the entropy of that distribution and the number
of classes needed to cover 80% of the examples. A unit whose top examples need several
classes is flagged; units are ranked by entropy. A unit that is constant over the dataset
(a dead ReLU channel) has no meaningful top examples and is marked dead, never polysemantic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mechscope.circuits.examples import LayerExamples
from mechscope.errors import ConfigError, DataError

__all__ = ["Polysemanticity", "polysemanticity", "label_entropy", "classes_covering"]


def label_entropy(counts: Tensor) -> Tensor:
    """Entropy in bits of each row of label counts.

    Args:
        counts: (unit, n_classes) non-negative counts.

    Returns:
        (unit,) entropies: 0 for a single class, log2(m) for m equally frequent classes.

    Example:
        >>> label_entropy(torch.tensor([[2, 2, 0], [4, 0, 0]]))
        tensor([1., 0.])
    """
    p = counts.double() / counts.sum(dim=-1, keepdim=True).clamp_min(1)
    logs = torch.where(p > 0, torch.log2(p.clamp_min(1e-300)), torch.zeros_like(p))
    return -(p * logs).sum(dim=-1) + 0.0  # + 0.0 turns the -0.0 of a single class into 0.0


def classes_covering(counts: Tensor, coverage: float = 0.8) -> Tensor:
    """Fewest classes whose examples make up at least `coverage` of each row's examples.

    Args:
        counts: (unit, n_classes) non-negative counts.
        coverage: Share to reach, in (0, 1].

    Returns:
        (unit,) int64 counts of classes (0 for a row without examples).
    """
    if not 0 < coverage <= 1:
        raise ConfigError(f"coverage must be in (0, 1]; got {coverage!r}.")
    ordered = counts.double().sort(dim=-1, descending=True).values
    total = ordered.sum(dim=-1, keepdim=True)
    # A class is still needed while the classes before it cover less than `coverage`; the
    # small slack keeps 0.8 * 10 == 8 from failing on rounding.
    before = ordered.cumsum(dim=-1) - ordered
    needed = (before < coverage * total - 1e-9) & (ordered > 0)
    return needed.sum(dim=-1)


@dataclass(frozen=True)
class Polysemanticity:
    """Label spread of every unit's top-k examples in one layer."""

    layer: str  # dotted layer name
    k: int  # top examples per unit
    coverage: float  # share of the examples `n_covering` must reach
    min_classes: int  # flag a unit when `n_covering >= min_classes`
    label_counts: Tensor  # (unit, n_classes) labels among each unit's top-k examples
    entropy: Tensor  # (unit,) bits
    n_covering: Tensor  # (unit,) classes needed to cover `coverage` of the examples
    is_dead: Tensor  # (unit,) bool: constant over the dataset, so its "top" examples are arbitrary
    class_names: tuple[str, ...]  # readable label per class

    @property
    def is_polysemantic(self) -> Tensor:
        """(unit,) bool: a live unit whose top examples need at least `min_classes` classes."""
        return (self.n_covering >= self.min_classes) & ~self.is_dead

    @property
    def ranking(self) -> Tensor:
        """Units from most to least polysemantic (entropy, then classes covering); dead units last."""
        # Stable sorts from the last key to the first: dead units last, then entropy, then coverage.
        order = torch.sort(self.n_covering, descending=True, stable=True).indices
        order = order[torch.sort(self.entropy[order], descending=True, stable=True).indices]
        return order[torch.sort(self.is_dead[order].long(), stable=True).indices]

    def dominant_class(self) -> Tensor:
        """(unit,) the most frequent label among each unit's top examples."""
        return self.label_counts.argmax(dim=1)

    def __json__(self) -> dict[str, Any]:
        """The counts of flagged units, then one entry per unit in ranking order (its nonzero label counts)."""
        flags = self.is_polysemantic
        units = []
        for u in self.ranking.tolist():
            counts = self.label_counts[u]
            units.append({
                "unit": u,
                "entropy_bits": self.entropy[u],
                "n_covering": self.n_covering[u],
                "is_polysemantic": flags[u],
                "is_dead": self.is_dead[u],
                "label_counts": {self.class_names[c]: counts[c] for c in range(len(counts)) if counts[c] > 0},
            })
        return {
            "layer": self.layer,
            "k": self.k,
            "coverage": self.coverage,
            "min_classes": self.min_classes,
            "n_polysemantic": flags.sum(),
            "n_dead": self.is_dead.sum(),
            "units": units,
        }


def polysemanticity(
    examples: LayerExamples,
    labels: Tensor,
    *,
    coverage: float = 0.8,
    min_classes: int = 3,
    n_classes: int | None = None,
    class_names: tuple[str, ...] | None = None,
) -> Polysemanticity:
    """Measure how many classes each unit's top-k examples spread over.

    Args:
        examples: A layer's dataset examples (`dataset_examples(...)[layer]`).
        labels: (batch,) class index of every input the examples were collected from.
        coverage: Share of the top examples the covering classes must reach.
        min_classes: Flag a unit as polysemantic when it needs at least this many classes.
        n_classes: Number of classes; None uses `labels.max() + 1`.
        class_names: Label names for the JSON form; None uses "0", "1", ...

    Returns:
        Polysemanticity with per-unit label counts, entropy, classes covering, flags, ranking.

    Raises:
        DataError: `labels` do not match the dataset the examples came from.

    Example:
        >>> found = dataset_examples(model, data.x_test, "relu3", k=20)
        >>> poly = polysemanticity(found["relu3"], data.y_test)
        >>> poly.ranking[:5], poly.is_polysemantic.sum()
    """
    if labels.dim() != 1 or labels.shape[0] != examples.n_inputs or labels.is_floating_point():
        raise DataError(
            f"labels must be (batch,) class indices of the {examples.n_inputs} inputs the examples came from; "
            f"got {labels.dtype} {tuple(labels.shape)}."
        )
    if isinstance(min_classes, bool) or not isinstance(min_classes, int) or min_classes < 1:
        raise ConfigError(f"min_classes must be a positive integer; got {min_classes!r}.")
    n = int(labels.max()) + 1 if n_classes is None else n_classes
    names = tuple(str(c) for c in range(n)) if class_names is None else tuple(class_names)
    if len(names) != n:
        raise ConfigError(f"class_names has {len(names)} entries for {n} classes.")
    top_labels = labels.cpu()[examples.top.indices]  # (unit, k)
    if int(top_labels.max()) >= n:
        raise DataError(f"labels go up to {int(top_labels.max())} but n_classes is {n}.")
    counts = torch.zeros(examples.n_units, n, dtype=torch.int64, device="cpu")
    counts.scatter_add_(1, top_labels, torch.ones_like(top_labels))
    return Polysemanticity(
        layer=examples.layer,
        k=examples.k,
        coverage=coverage,
        min_classes=min_classes,
        label_counts=counts,
        entropy=label_entropy(counts),
        n_covering=classes_covering(counts, coverage),
        is_dead=examples.top.values[:, 0] <= examples.bottom.values[:, 0],
        class_names=names,
    )
