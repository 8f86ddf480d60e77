"""DataBundle: a deterministic train/test split plus the JSON spec that rebuilds it."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Union, cast

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor
from torch.utils.data import TensorDataset

from mechscope.atomic import write_file
from mechscope.data._validate import check_choice, check_fraction, check_int, check_seed
from mechscope.data.finite import check_finite as _check_finite
from mechscope.errors import ConfigError, DataError
from mechscope.limits import MAX_CLASSES, check_limit, check_memory

Task = Literal["classification", "regression"]

DataPart = Literal["all", "train", "test"]
"""Which part of a DataBundle an analysis reads: all of it (train first), the training or the test split."""

TensorLike = Union[Tensor, np.ndarray]
"""A torch tensor or a numpy array (any device; copied to the CPU)."""

DATA_FILE_FORMAT = "mechscope-data"
"""The `format` entry in the metadata of a safetensors file written by `DataBundle.save`."""

DEFAULT_TEST_FRACTION = 0.2
"""Share of the examples held out when a split is drawn and no test_fraction is given."""

__all__ = ["DataBundle", "DataPart", "Task", "TensorLike", "DATA_FILE_FORMAT", "DEFAULT_TEST_FRACTION"]

_TASKS: tuple[str, ...] = ("classification", "regression")


@dataclass(frozen=True)
class DataBundle:
    """A train/test split of tensors, with the spec that regenerates it.

    Attributes:
        x_train: Inputs, shape (batch, *input_shape).
        y_train: Class indices (batch,), or (batch, pos) per token, for classification;
            values (batch,) or (batch, n_outputs) for regression.
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

    @classmethod
    def from_tensors(
        cls,
        x: TensorLike,
        y: TensorLike,
        *,
        x_test: TensorLike | None = None,
        y_test: TensorLike | None = None,
        test_fraction: float = DEFAULT_TEST_FRACTION,
        seed: int = 0,
        task: Task | None = None,
        n_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        spec: Mapping[str, Any] | None = None,
    ) -> DataBundle:
        """Build a bundle from your own tensors or numpy arrays, checked and converted.

        Floating x (float16, bfloat16, float32, float64) must be finite and is stored as
        float32; integer x is token ids (batch, pos), stored as int64 and >= 0; bool and
        complex x are refused. Integer y means classification: int64 (batch,) or (batch,
        pos) per token, labels in [0, n_classes). Floating y (or task="regression") means
        regression: float32 (batch, ...), finite. Tensors move to the CPU; one that needs
        no conversion and no split is stored as given, not copied. Without x_test, the test
        split is the first `floor(batch * test_fraction + 0.5)` (kept between 1 and batch -
        1) positions of `torch.randperm(batch, generator=torch.Generator().manual_seed(seed))`
        and the rest the training split, both in that order: the same seed, the same split.

        Args:
            x: Inputs (batch, ...): all examples, or the training split when x_test is given.
            y: Targets (batch,) or (batch, ...).
            x_test: Held-out inputs; give it with y_test to fix the split yourself.
            y_test: Held-out targets.
            test_fraction: Share held out when x_test is None, in (0, 1).
            seed: Seed of the split permutation.
            task: "classification" or "regression"; None picks from y's dtype (integer:
                classification, floating: regression).
            n_classes: Number of classes; None infers max(label) + 1 (or len(class_names)).
            class_names: One readable name per class.
            spec: The JSON-serialisable spec recorded on the bundle (a dict with a "kind");
                None records {"kind": "tensors", "sha256": ...}, a digest of the tensors that
                `load_data` cannot rebuild (use `save` for a rebuildable one).

        Returns:
            A DataBundle with extras "index_train" and "index_test" (int64 positions of
            each example in x, or in x and x_test when those were given).

        Raises:
            DataError: a tensor has the wrong type, dtype or shape, lengths differ, a
                split would be empty, values are not finite, or labels are out of range.
            ConfigError: an option is invalid (task, test_fraction, seed, n_classes,
                class_names, spec).
            LimitError: n_classes is above MAX_CLASSES, or converting and splitting
                would need more than the memory budget.

        Example:
            >>> data = DataBundle.from_tensors(torch.randn(100, 3), torch.randint(0, 2, (100,)))
            >>> data.x_train.shape, data.x_test.shape, data.spec["kind"]
            (torch.Size([80, 3]), torch.Size([20, 3]), 'tensors')
        """
        spec = None if spec is None else _check_spec(spec)
        chosen = None if task is None else check_choice("task", task, _TASKS)
        seed = check_seed(seed)
        xs, ys = _gathered(x, y, x_test, y_test)
        chosen = chosen or _task_of(ys[0])
        fraction = _test_fraction(xs[0], test_fraction) if len(xs) == 1 else None
        xs, ys = _converted(xs, ys, chosen, split=fraction is not None)
        n_classes, names = _resolve_classes(chosen, ys, n_classes, class_names)
        (x_train, y_train, index_train), (x_test_, y_test_, index_test) = _train_test(xs, ys, fraction, seed)
        if spec is None:
            spec = {"kind": "tensors", "sha256": _digest(x_train, y_train, x_test_, y_test_)}
        return cls(
            x_train=x_train, y_train=y_train, x_test=x_test_, y_test=y_test_, spec=spec, task=cast(Task, chosen),
            n_classes=n_classes, class_names=names, extras={"index_train": index_train, "index_test": index_test},
        )

    def save(self, path: str | os.PathLike[str]) -> DataBundle:
        """Write the splits to a .safetensors file, atomically, and return the bundle it rebuilds.

        The file holds x and y (the training split), x_test and y_test, and records the
        task, n_classes and class_names in its metadata; extras are not saved. An
        existing file is replaced only when `save` wrote it.

        Args:
            path: Where to write; must end in ".safetensors".

        Returns:
            An equal-valued bundle whose spec is {"kind": "safetensors", "path": <absolute
            path>, "test_fraction": None, "seed": 0}, so `load_data(saved.spec) == saved`.

        Raises:
            ConfigError: path does not end in ".safetensors".
            OutputError: path holds a file `save` did not write, or cannot be written.

        Example:
            >>> saved = DataBundle.from_tensors(torch.randn(10, 2), torch.randn(10)).save("data.safetensors")
            >>> load_data(saved.spec) == saved
            True
        """
        target = Path(path).expanduser()
        if target.suffix.lower() != ".safetensors":
            raise ConfigError(
                "DataBundle.save writes safetensors files; name the file with a .safetensors extension, got "
                f"{str(path)!r}."
            )
        tensors = _unshared({"x": self.x_train, "y": self.y_train, "x_test": self.x_test, "y_test": self.y_test})
        metadata = {"format": DATA_FILE_FORMAT, "task": self.task}
        if self.n_classes is not None:
            metadata["n_classes"] = str(self.n_classes)
        if self.class_names is not None:
            metadata["class_names"] = json.dumps(list(self.class_names))
        written = write_file(
            target,
            lambda tmp: save_file(tensors, str(tmp), metadata=metadata),
            owned=_is_data_file,
            what="a mechscope data file",
        )
        spec = {"kind": "safetensors", "path": str(written.resolve()), "test_fraction": None, "seed": 0}
        return DataBundle.from_tensors(
            self.x_train,
            self.y_train,
            x_test=self.x_test,
            y_test=self.y_test,
            task=self.task,
            n_classes=self.n_classes,
            class_names=self.class_names,
            spec=spec,
        )

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


def _check_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a caller's spec, or ConfigError unless it is a JSON-serialisable dict with a "kind"."""
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    if not isinstance(kind, str) or not kind:
        raise ConfigError(
            f"spec must be a dict with a 'kind' naming how to rebuild the data, got {spec!r}; leave spec=None to "
            "record a digest of the tensors instead."
        )
    try:
        json.dumps(dict(spec), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"spec must be JSON-serialisable so it can be stored, but {spec!r} is not ({err}).") from err
    return dict(spec)


def _gathered(
    x: TensorLike, y: TensorLike, x_test: TensorLike | None, y_test: TensorLike | None
) -> tuple[list[Tensor], list[Tensor]]:
    """[x] and [y] (with x_test and y_test when given) as CPU tensors, paired lengths checked."""
    if (x_test is None) != (y_test is None):
        given = "x_test" if x_test is not None else "y_test"
        raise DataError(f"got {given} alone; pass both x_test and y_test to fix the split, or neither to split x.")
    xs = [_as_cpu_tensor(x, "x")]
    ys = [_as_cpu_tensor(y, "y")]
    if x_test is not None and y_test is not None:
        xs.append(_as_cpu_tensor(x_test, "x_test"))
        ys.append(_as_cpu_tensor(y_test, "y_test"))
    _check_lengths(xs, ys)
    return xs, ys


def _test_fraction(x: Tensor, test_fraction: float) -> float:
    """The checked share of `x` to hold out; x must hold at least 2 examples."""
    fraction = check_fraction("test_fraction", test_fraction)
    if x.shape[0] < 2:
        raise DataError(
            "x holds 1 example; at least 2 are needed to hold out a test split (or pass x_test and y_test)."
        )
    return fraction


def _converted(xs: list[Tensor], ys: list[Tensor], task: str, *, split: bool) -> tuple[list[Tensor], list[Tensor]]:
    """Inputs and targets checked and converted to their stored dtypes, within the memory budget.

    `split` says the tensors will also be copied into two splits (counted in the budget).
    """
    dtypes = [_input_dtype(t) for t in xs] + [_target_dtype(task)] * len(ys)
    converted = sum(_out_bytes(t, d) for t, d in zip(xs + ys, dtypes) if t.dtype != d)
    copied = sum(_out_bytes(t, d) for t, d in zip(xs + ys, dtypes)) if split else 0
    check_memory(converted + copied, "converting and splitting the data")
    xs = [_check_inputs(t, name) for t, name in zip(xs, ("x", "x_test"))]
    ys = [_check_targets(t, name, task, xs[0]) for t, name in zip(ys, ("y", "y_test"))]
    if len(xs) == 2 and xs[1].dtype != xs[0].dtype:
        raise DataError(
            f"x is {_short(xs[0].dtype)} but x_test is {_short(xs[1].dtype)} after conversion; give both splits "
            "floating features, or both integer token ids."
        )
    if len(ys) == 2 and ys[1].shape[1:] != ys[0].shape[1:]:
        raise DataError(
            f"y_test targets have shape {tuple(ys[1].shape[1:])} but y targets {tuple(ys[0].shape[1:])}; "
            "both splits need the same target shape."
        )
    return xs, ys


_Split = tuple[Tensor, Tensor, Tensor]  # (x, y, positions of the examples in the given tensors)


def _train_test(xs: list[Tensor], ys: list[Tensor], fraction: float | None, seed: int) -> tuple[_Split, _Split]:
    """The training and test splits: drawn from x by `seed` when `fraction` is given, else as given."""
    if fraction is not None:
        index_train, index_test = _split(xs[0].shape[0], fraction, seed)
        return (xs[0][index_train], ys[0][index_train], index_train), (xs[0][index_test], ys[0][index_test], index_test)
    return (xs[0], ys[0], torch.arange(xs[0].shape[0])), (xs[1], ys[1], torch.arange(xs[1].shape[0]))


def _as_cpu_tensor(value: Any, name: str) -> Tensor:
    """A tensor or numpy array as a detached CPU tensor (sharing memory where possible)."""
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if not isinstance(value, np.ndarray):
        raise DataError(
            f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}; wrap it with "
            f"torch.as_tensor({name})."
        )
    kind = value.dtype.kind
    if kind == "O":
        raise DataError(
            f"{name} is a numpy array of Python objects (dtype object); build a numeric array, e.g. "
            f"np.asarray({name}, dtype=np.float32)."
        )
    if kind in "USVMm":
        raise DataError(f"{name} has dtype {value.dtype}, which is not numeric; encode it as numbers first.")
    if kind == "f" and value.dtype.itemsize > 8:  # long double: torch has no such dtype
        value = value.astype(np.float64)
    if not value.dtype.isnative:
        value = value.astype(value.dtype.newbyteorder("="))
    if not value.flags.writeable:  # torch.from_numpy warns on read-only arrays
        value = value.copy()
    try:
        return torch.from_numpy(value)
    except ValueError:  # negative strides
        return torch.from_numpy(np.ascontiguousarray(value))


def _check_lengths(xs: list[Tensor], ys: list[Tensor]) -> None:
    """DataError unless every split has a batch dimension, one target per input and at least one example."""
    for name, target, x, y in zip(("x", "x_test"), ("y", "y_test"), xs, ys):
        if x.dim() == 0 or y.dim() == 0:
            scalar = name if x.dim() == 0 else target
            raise DataError(f"{scalar} is a single value; give it a batch dimension, shape (batch, ...).")
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"{name} and {target} differ in length: {x.shape[0]} vs {y.shape[0]}; pass one target per input."
            )
        if x.shape[0] == 0:
            raise DataError(f"{name} holds no examples; every split needs at least one.")
    if len(xs) == 2 and xs[1].shape[1:] != xs[0].shape[1:]:
        raise DataError(
            f"x_test examples have shape {tuple(xs[1].shape[1:])} but x examples {tuple(xs[0].shape[1:])}; "
            "both splits need the same example shape."
        )


def _task_of(y: Tensor) -> str:
    """The task y's dtype implies: integer -> classification, floating -> regression."""
    if y.dtype == torch.bool or y.is_complex():
        raise DataError(
            f"y is {_short(y.dtype)}; give integer class indices (y.long()) for classification or floating "
            "values (y.float()) for regression."
        )
    return "regression" if y.is_floating_point() else "classification"


def _input_dtype(x: Tensor) -> torch.dtype:
    return torch.float32 if x.is_floating_point() else torch.int64


def _target_dtype(task: str) -> torch.dtype:
    return torch.int64 if task == "classification" else torch.float32


def _out_bytes(tensor: Tensor, dtype: torch.dtype) -> int:
    """Bytes a copy of `tensor` as `dtype` takes."""
    return tensor.numel() * torch.empty((), dtype=dtype).element_size()


def _check_inputs(x: Tensor, name: str) -> Tensor:
    """x as float32 (finite features) or int64 (token ids >= 0, shape (batch, pos))."""
    if x.dtype == torch.bool:
        raise DataError(
            f"{name} is bool; convert it to numbers first: {name}.float() for features, {name}.long() for token ids."
        )
    if x.is_complex():
        raise DataError(
            f"{name} is {_short(x.dtype)}; inputs must be real: split real and imaginary parts with "
            f"torch.view_as_real({name})."
        )
    if x.is_floating_point():
        if x.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            _check_finite(x, name)
        converted = x.to(torch.float32)
        if x.dtype == torch.float64:
            fix = "Rescale the values into float32's range (below 3.4e38)"
            _check_finite(converted, f"{name} (as float32)", fix=fix)
        return converted
    if x.dim() != 2:
        raise DataError(
            f"{name} holds integers of shape {tuple(x.shape)}; integer inputs are token ids of shape (batch, pos). "
            f"Convert other integer data to float first (e.g. pixels: {name}.float() / 255)."
        )
    ids = x.to(torch.int64)
    if ids.numel() and int(ids.min()) < 0:
        where = tuple(int(i) for i in torch.nonzero(ids < 0)[0])
        raise DataError(
            f"{name} holds the negative token id {int(ids.min())} (first at index {where}); token ids must be >= 0."
        )
    return ids


def _check_targets(y: Tensor, name: str, task: str, x: Tensor) -> Tensor:
    """y as int64 class indices (batch,) / (batch, pos) or float32 finite regression values."""
    if y.dtype == torch.bool or y.is_complex():
        raise DataError(
            f"{name} is {_short(y.dtype)}; give integer class indices ({name}.long()) or floating values "
            f"({name}.float())."
        )
    if task == "regression":
        return _check_finite(y.to(torch.float32), name)
    if y.is_floating_point():
        raise DataError(
            f"{name} is {_short(y.dtype)} but classification needs integer class indices; convert with {name}.long(), "
            "or pass task='regression'."
        )
    per_token = y.dim() == 2 and x.dim() >= 2 and y.shape[1] == x.shape[1]
    if y.dim() != 1 and not per_token:
        positions = f" or (batch, {x.shape[1]}) per position of x" if x.dim() >= 2 else ""
        raise DataError(
            f"{name} has shape {tuple(y.shape)}; classification targets are class indices of shape (batch,){positions}."
        )
    labels = y.to(torch.int64)
    if labels.numel() and int(labels.min()) < 0:
        raise DataError(
            f"{name} holds the label {int(labels.min())}; class labels must be indices 0..n_classes-1 "
            f"(remap them, e.g. with torch.unique({name}, return_inverse=True))."
        )
    return labels


def _resolve_classes(
    task: str, ys: list[Tensor], n_classes: int | None, class_names: Sequence[str] | None
) -> tuple[int | None, tuple[str, ...] | None]:
    """(n_classes, class_names) for the bundle, checked against the labels."""
    if task == "regression":
        if n_classes is not None or class_names is not None:
            raise ConfigError(
                "n_classes and class_names apply to classification, but the task is regression; pass integer y "
                "(or task='classification') to classify."
            )
        return None, None
    names: tuple[str, ...] | None = None
    if class_names is not None:
        if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
            raise ConfigError(f"class_names must be a list of strings, one per class, got {class_names!r}.")
        names = tuple(class_names)
        if len(set(names)) != len(names):
            raise ConfigError(f"class_names must be distinct, got {list(names)!r}.")
    top = max((int(y.max()) for y in ys if y.numel()), default=0)
    if n_classes is not None:
        n = check_limit("n_classes", check_int("n_classes", n_classes, minimum=2), MAX_CLASSES)
        if names is not None and len(names) != n:
            raise ConfigError(f"class_names has {len(names)} names but n_classes is {n}; give one name per class.")
    elif names is not None:
        n = len(names)
    else:
        n = top + 1
        if n > MAX_CLASSES:
            check_limit("n_classes (largest label + 1)", n, MAX_CLASSES)
    if top >= n:
        raise DataError(
            f"the targets hold the label {top} but there are {n} classes; labels must lie in 0..{n - 1}: pass "
            f"n_classes={top + 1} (with a name for each class)."
        )
    if n < 2:
        raise DataError(
            "the targets hold a single class (0) and classification needs at least two; pass n_classes=2 or more "
            "if the other classes are absent from these examples."
        )
    return n, names


def _split(n: int, test_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train positions, test positions) of a seeded permutation; the first n_test are held out."""
    n_test = min(max(math.floor(n * test_fraction + 0.5), 1), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_test:], order[:n_test]


def _digest(*tensors: Tensor) -> str:
    """sha256 over each tensor's dtype, shape and bytes."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)};".encode())
        digest.update(np.ascontiguousarray(tensor.numpy()).data)
    return digest.hexdigest()


def _unshared(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Contiguous tensors that share no memory (safetensors refuses shared storage)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in tensors.items():
        tensor = tensor.contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


def _is_data_file(path: Path) -> bool:
    """True for a safetensors file that `DataBundle.save` wrote (its metadata says so)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return False
    return metadata.get("format") == DATA_FILE_FORMAT


def _short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
