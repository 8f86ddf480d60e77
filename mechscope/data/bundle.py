"""DataBundle: a deterministic train/test split plus the JSON spec that rebuilds it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from mechscope.data.finite import check_finite as _check_finite
from mechscope.errors import DataError

Task = Literal["classification", "regression"]

__all__ = ["DataBundle", "Task"]


@dataclass(frozen=True)
class DataBundle:
    """A train/test split of tensors, with the spec that regenerates it.

    Attributes:
        x_train: Inputs, shape (batch, *input_shape).
        y_train: Class indices (batch,) for classification, values (batch,) or
            (batch, n_outputs) for regression.
        x_test: Held-out inputs.
        y_test: Held-out targets.
        spec: JSON-serialisable description; `load_data(spec)` rebuilds this bundle.
        task: "classification" or "regression".
        n_classes: Number of classes, or None for regression.
        class_names: Readable label per class, or None.
        extras: Named side tensors/values (e.g. the integer pairs behind one-hot inputs).
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    spec: dict[str, Any]
    task: Task
    n_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split, (x, y) in {"train": (self.x_train, self.y_train), "test": (self.x_test, self.y_test)}.items():
            if x.shape[0] != y.shape[0]:
                raise DataError(
                    f"{split} inputs and targets differ in length: {x.shape[0]} vs {y.shape[0]}; "
                    "pass one target per input."
                )

    def __eq__(self, other: object) -> bool:
        """Compare field by field; tensors must agree in dtype, shape and every value."""
        if not isinstance(other, DataBundle):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    def check_finite(self, *, skip_with: str | None = None) -> DataBundle:
        """Return self if every input and target is finite, else raise DataError naming the split.

        Args:
            skip_with: The calling entry point's opt-out (e.g. "check_finite=False"), quoted
                in the message.

        Raises:
            DataError: A split holds NaN or inf (see `mechscope.data.check_finite`).
        """
        for split in ("x_train", "y_train", "x_test", "y_test"):
            _check_finite(getattr(self, split), f"data.{split}", skip_with=skip_with)
        return self

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example (without the batch dimension)."""
        return tuple(self.x_train.shape[1:])

    def train_dataset(self) -> TensorDataset:
        """The training split as a TensorDataset."""
        return TensorDataset(self.x_train, self.y_train)

    def test_dataset(self) -> TensorDataset:
        """The held-out split as a TensorDataset."""
        return TensorDataset(self.x_test, self.y_test)

    def all_inputs(self) -> Tensor:
        """Train and test inputs stacked (train first)."""
        return torch.cat([self.x_train, self.x_test])


def _same(a: Any, b: Any) -> bool:
    """Structural equality that understands tensors and arrays (plain `==` on them is elementwise)."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (
            isinstance(a, Tensor)
            and isinstance(b, Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and np.array_equal(a, b)
        )
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(
            _same(a[k], b[k]) for k in a
        )
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)
