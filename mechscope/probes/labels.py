"""Label groups: what a probe decodes, as named categorical or continuous groups.

A probe can decode several things at once from the same activations, e.g. the two
operands `a`, `b` and the network's own output. Each is a `LabelGroup`; categorical
groups get one softmax head each, continuous groups one linear read-out each.

Example:
    >>> labels = Labels([categorical("a", pairs[:, 0]), categorical("b", pairs[:, 1])])
    >>> as_labels({"a": pairs[:, 0], "sum": pairs.sum(1).float()}).kinds
    {'a': 'categorical', 'sum': 'continuous'}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from mechscope.data.finite import check_finite
from mechscope.errors import DataError

__all__ = ["LabelGroup", "Labels", "LabelsLike", "GroupKind", "categorical", "continuous", "as_labels"]

GroupKind = Literal["categorical", "continuous"]


@dataclass(frozen=True)
class LabelGroup:
    """One named thing to decode.

    Attributes:
        name: Head name, e.g. "a" or "output".
        values: Labels (batch,) int64 for categorical groups; values (batch,) or
            (batch, n_outputs) float32 for continuous groups.
        kind: "categorical" or "continuous".
    """

    name: str
    values: Tensor
    kind: GroupKind

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DataError(f"a label group needs a non-empty string name, got {self.name!r}.")
        if not isinstance(self.values, Tensor):
            raise DataError(
                f"label group {self.name!r} holds {type(self.values).__name__}, not a tensor; "
                "wrap it with torch.as_tensor(...)."
            )
        if self.kind == "categorical":
            if self.values.dim() != 1 or self.values.is_floating_point() or self.values.is_complex():
                raise DataError(
                    f"categorical label group {self.name!r} needs integer labels of shape (batch,), got "
                    f"{self.values.dtype} {tuple(self.values.shape)}; turn one-hot rows into labels with "
                    ".argmax(dim=1), or use continuous(...) for real values."
                )
        elif self.kind == "continuous":
            if self.values.dim() not in (1, 2):
                raise DataError(
                    f"continuous label group {self.name!r} needs shape (batch,) or (batch, n_outputs), "
                    f"got {tuple(self.values.shape)}."
                )
            check_finite(self.values, f"continuous label group {self.name!r}")
        else:
            raise DataError(f"label group kind must be 'categorical' or 'continuous', got {self.kind!r}.")

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_outputs(self) -> int:
        """Columns of a continuous group (1 for (batch,) values)."""
        return 1 if self.values.dim() == 1 else int(self.values.shape[1])


def categorical(name: str, values: Tensor | Sequence[int]) -> LabelGroup:
    """A categorical group: integer labels (batch,), any integer values."""
    return LabelGroup(name, _as_tensor(values).long(), "categorical")


def continuous(name: str, values: Tensor | Sequence[float]) -> LabelGroup:
    """A continuous group: real values (batch,) or (batch, n_outputs)."""
    return LabelGroup(name, _as_tensor(values).float(), "continuous")


@dataclass(frozen=True, init=False)
class Labels:
    """Several label groups over the same examples, in a fixed order.

    Args:
        groups: The groups; names must be unique and lengths equal.

    Raises:
        DataError: No group, duplicate names, or groups of different lengths.
    """

    groups: tuple[LabelGroup, ...]

    def __init__(self, groups: Sequence[LabelGroup]) -> None:
        groups = tuple(groups)
        if not groups:
            raise DataError("Labels needs at least one group, e.g. Labels([categorical('y', labels)]).")
        names = [g.name for g in groups]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DataError(f"label group names must be unique; repeated: {duplicates}.")
        lengths = {g.name: len(g) for g in groups}
        if len(set(lengths.values())) > 1:
            raise DataError(
                f"label groups differ in length: {lengths}; every group needs one value per example."
            )
        object.__setattr__(self, "groups", groups)

    def __len__(self) -> int:
        return len(self.groups[0])

    def __iter__(self) -> Iterator[LabelGroup]:
        return iter(self.groups)

    def __getitem__(self, name: str) -> LabelGroup:
        for group in self.groups:
            if group.name == name:
                return group
        raise DataError(f"no label group {name!r}; groups: {self.names}.")

    @property
    def names(self) -> list[str]:
        """Group names in order."""
        return [g.name for g in self.groups]

    @property
    def kinds(self) -> dict[str, GroupKind]:
        """Group name -> "categorical" or "continuous"."""
        return {g.name: g.kind for g in self.groups}

    @property
    def is_categorical(self) -> bool:
        """True if every group is categorical."""
        return all(g.kind == "categorical" for g in self.groups)

    def subset(self, index: Tensor) -> Labels:
        """The same groups restricted to the examples `index` (a long or bool tensor)."""
        return Labels([LabelGroup(g.name, g.values[index], g.kind) for g in self.groups])

    def replace(self, name: str, values: Tensor) -> Labels:
        """A copy with the values of group `name` swapped for `values` (same kind)."""
        return Labels([LabelGroup(g.name, values if g.name == name else g.values, g.kind) for g in self.groups])


LabelsLike = Tensor | Mapping[str, Tensor] | Labels | LabelGroup
"""What probes accept as `y`: a tensor (one group named "y"), a name -> tensor mapping, or Labels."""


def as_labels(y: LabelsLike) -> Labels:
    """Normalise `y` to Labels.

    Integer or bool tensors become categorical groups, float tensors continuous ones; a
    plain tensor becomes one group named "y".

    Raises:
        DataError: `y` is of another type, or a group is malformed.
    """
    if isinstance(y, Labels):
        return y
    if isinstance(y, LabelGroup):
        return Labels([y])
    if isinstance(y, Tensor):
        return Labels([_group("y", y)])
    if isinstance(y, Mapping):
        return Labels([_group(str(name), values) for name, values in y.items()])
    raise DataError(
        f"labels must be a tensor, a dict of name -> tensor, or Labels; got {type(y).__name__}. "
        "Wrap arrays with torch.as_tensor(...)."
    )


def _group(name: str, values: object) -> LabelGroup:
    if not isinstance(values, Tensor):
        raise DataError(
            f"label group {name!r} holds {type(values).__name__}, not a tensor; wrap it with torch.as_tensor(...)."
        )
    if values.is_floating_point():
        return continuous(name, values)
    return categorical(name, values)


def _as_tensor(values: Tensor | Sequence[int] | Sequence[float]) -> Tensor:
    """A tensor stays where it is; other values become a CPU tensor."""
    return values if isinstance(values, Tensor) else torch.as_tensor(values, device="cpu")
