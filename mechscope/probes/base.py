"""Probe: the shared scikit-learn-style base of every probe, and the gradient-trained template.

A probe maps activations (batch, ...) to one head per label group: a softmax over the
classes of each categorical group, a linear read-out for each continuous group. The base
owns validation, label encoding, `predict`, `score` and the parameter protocol
(`get_params`/`set_params`); subclasses implement `_fit` and `_decision`.
`NetworkProbe` adds one training loop for probes that are small torch networks; its
subclasses override `_build_network` only.

Conventions (scikit-learn's `doc/developers/develop.rst`): `__init__` stores keyword
hyperparameters unchanged, `fit` validates them and returns `self`, fitted state ends
in `_`.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mechscope.capture.modes import model_device
from mechscope.data.finite import check_finite
from mechscope.errors import ConfigError, DataError, NotFittedError
from mechscope.probes.labels import GroupKind, Labels, LabelsLike, as_labels

__all__ = [
    "Probe",
    "NetworkProbe",
    "HeadSpec",
    "clone",
    "check_activations",
    "distinct_rows",
    "head_scores",
    "all_heads_accuracy",
]

ProbeT = TypeVar("ProbeT", bound="Probe")
ArrayLike = Tensor | np.ndarray


@dataclass(frozen=True)
class HeadSpec:
    """Where a label group's head lives in the probe's output columns.

    Attributes:
        name: Group name.
        kind: "categorical" or "continuous".
        start: First output column of the head.
        stop: One past its last column.
        classes: Sorted class labels seen in training (categorical), else None.
        squeeze: Continuous group given as (batch,): predictions are (batch,) too.
    """

    name: str
    kind: GroupKind
    start: int
    stop: int
    classes: Tensor | None = None
    squeeze: bool = False


class Probe:
    """Base class of all probes: decode label groups from activations.

    Subclasses implement `_fit(x, y_index, y_value)` and `_decision(x) -> (batch, n_outputs)`
    (logits for categorical heads, values for continuous heads).

    Fitted attributes (after `fit`):
        heads_: One HeadSpec per label group, in order.
        classes_: Group name -> sorted class labels, for categorical groups.
        input_shape_: Shape of one example, e.g. (5, 5).
        n_features_in_: Values per example (product of `input_shape_`).
    """

    def __repr__(self) -> str:
        defaults = {
            name: p.default
            for name, p in inspect.signature(type(self).__init__).parameters.items()
            if name != "self"
        }
        shown = [f"{k}={v!r}" for k, v in self.get_params().items() if not _equal(v, defaults.get(k))]
        return f"{type(self).__name__}({', '.join(shown)})"

    def __fingerprint__(self) -> str:
        """What identifies an unfitted probe for the task cache: its class and hyperparameters."""
        return repr(self)

    # -- parameters ---------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as passed to `__init__` (`deep` is accepted for scikit-learn parity)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self: ProbeT, **params: Any) -> ProbeT:
        """Set hyperparameters by name and return `self`.

        Raises:
            ConfigError: A name is not a parameter of this probe.
        """
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ConfigError(
                    f"Invalid parameter {name!r} for probe {type(self).__name__}. "
                    f"Valid parameters are: {sorted(valid)!r}."
                )
            setattr(self, name, value)
        return self

    # -- fitting ------------------------------------------------------------------------
    def fit(self: ProbeT, x: ArrayLike, y: LabelsLike) -> ProbeT:
        """Fit the probe to activations `x` and labels `y`; return `self`.

        Args:
            x: Activations (batch, ...) (flattened by linear and MLP probes; an image
                (batch, height, width) or (batch, channel, height, width) for ConvProbe).
            y: Labels: a tensor (one group), a dict name -> tensor, or Labels.

        Returns:
            self, fitted.

        Raises:
            DataError: x and y differ in length, x holds NaN/inf, or a categorical group
                has a single class.
            ConfigError: A hyperparameter is out of range.
        """
        x = check_activations(x, "x")
        labels = as_labels(y)
        if len(labels) != x.shape[0]:
            raise DataError(
                f"x has {x.shape[0]} examples but the labels have {len(labels)}; pass one label per example."
            )
        self._check_params()
        heads, y_index, y_value = _encode_labels(labels, x.device)
        self._check_input_shape(tuple(x.shape[1:]))
        self._fit(x, heads, y_index, y_value)
        self.heads_ = heads
        self.classes_ = {h.name: h.classes for h in heads if h.classes is not None}
        self.input_shape_ = tuple(int(d) for d in x.shape[1:])
        self.n_features_in_ = int(math.prod(self.input_shape_))
        self._single_ = isinstance(y, Tensor)
        return self

    def _check_params(self) -> None:
        """Validate hyperparameters (raise ConfigError); called by `fit`."""

    def _check_input_shape(self, shape: tuple[int, ...]) -> None:
        """Reject inputs this probe cannot read (raise DataError or ConfigError)."""

    def _fit(self, x: Tensor, heads: tuple[HeadSpec, ...], y_index: Tensor, y_value: Tensor) -> None:
        """Fit to `x`; `y_index` (batch, n_categorical) class indices, `y_value` (batch, n_continuous) floats."""
        raise NotImplementedError(f"{type(self).__name__} must implement _fit()")

    def _decision(self, x: Tensor) -> Tensor:
        """Raw outputs (batch, n_outputs): logits of categorical heads, values of continuous ones."""
        raise NotImplementedError(f"{type(self).__name__} must implement _decision()")

    # -- using a fitted probe -----------------------------------------------------------
    def decision_function(self, x: ArrayLike) -> Tensor:
        """Raw head outputs (batch, n_outputs) in the column order of `heads_`."""
        x = self._checked(x)
        with torch.no_grad():
            return self._decision(x)

    def predict_groups(self, x: ArrayLike) -> dict[str, Tensor]:
        """Predictions per group: class labels (batch,) or values (batch,) / (batch, n_outputs)."""
        out = self.decision_function(x)
        result: dict[str, Tensor] = {}
        for head in self.heads_:
            cols = out[:, head.start : head.stop]
            if head.classes is not None:
                result[head.name] = head.classes.to(cols.device)[cols.argmax(dim=1)]
            else:
                result[head.name] = cols[:, 0] if head.squeeze else cols
        return result

    def predict(self, x: ArrayLike) -> Tensor | dict[str, Tensor]:
        """Predictions: a tensor when fitted on a plain tensor, else a dict group -> tensor."""
        groups = self.predict_groups(x)
        return next(iter(groups.values())) if self._single_ else groups

    def predict_proba(self, x: ArrayLike) -> dict[str, Tensor]:
        """Class probabilities (batch, n_classes) per categorical group, columns in `classes_` order."""
        out = self.decision_function(x)
        return {h.name: out[:, h.start : h.stop].softmax(dim=1) for h in self.heads_ if h.classes is not None}

    def score_groups(self, x: ArrayLike, y: LabelsLike) -> dict[str, float]:
        """Held-out score per group: accuracy (categorical) or R^2 (continuous)."""
        labels = self._checked_labels(x, y)
        return head_scores(self.predict_groups(x), labels)

    def score(self, x: ArrayLike, y: LabelsLike) -> float:
        """One number: the fraction of examples with every head right if all groups are
        categorical, else the mean of `score_groups` (R^2 for continuous groups)."""
        labels = self._checked_labels(x, y)
        predicted = self.predict_groups(x)
        if labels.is_categorical:
            return all_heads_accuracy(predicted, labels)
        scores = head_scores(predicted, labels)
        return float(sum(scores.values()) / len(scores))

    # -- helpers ------------------------------------------------------------------------
    def _check_is_fitted(self) -> None:
        if not hasattr(self, "heads_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet; call fit(x, y) before predict or score."
            )

    def _checked(self, x: ArrayLike) -> Tensor:
        self._check_is_fitted()
        x = check_activations(x, "x")
        if tuple(x.shape[1:]) != self.input_shape_:
            raise DataError(
                f"{type(self).__name__} was fitted on examples of shape {self.input_shape_}, got "
                f"{tuple(x.shape[1:])}; pass activations of the same layers."
            )
        return x

    def _checked_labels(self, x: ArrayLike, y: LabelsLike) -> Labels:
        self._check_is_fitted()
        labels = as_labels(y)
        n = int(x.shape[0])
        if len(labels) != n:
            raise DataError(f"x has {n} examples but the labels have {len(labels)}; pass one label per example.")
        missing = [h.name for h in self.heads_ if h.name not in labels.names]
        if missing:
            raise DataError(f"labels lack the group(s) {missing} the probe was fitted on; got {labels.names}.")
        return labels


class NetworkProbe(Probe):
    """A probe that is a small torch network trained with Adam on the sum of per-head losses.

    Subclasses implement `_build_network(input_shape, n_outputs)` and may override
    `_prepare(x)`. Categorical heads use cross-entropy; continuous heads use mean squared
    error on standardised values. Subclasses must define the hyperparameters `lr`,
    `max_epochs`, `batch_size`, `weight_decay`, `stop_accuracy` and `seed`.

    Fitted attributes:
        network_: The trained nn.Module (eval mode).
        history_: Training loss per epoch.
        n_epochs_: Epochs run (fewer than `max_epochs` after an early stop).
    """

    lr: float
    max_epochs: int
    batch_size: int | None
    weight_decay: float
    stop_accuracy: float | None
    seed: int
    check_every: int = 5  # epochs between early-stop checks of the training accuracy

    def _build_network(self, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement _build_network()")

    def _prepare(self, x: Tensor) -> Tensor:
        """Turn validated activations into the network's input (default: unchanged)."""
        return x

    def _check_params(self) -> None:
        _check_positive_number("lr", self.lr)
        _check_positive_int("max_epochs", self.max_epochs)
        if self.batch_size is not None:
            _check_positive_int("batch_size", self.batch_size)
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}.")
        if self.stop_accuracy is not None and not (
            isinstance(self.stop_accuracy, (int, float)) and 0.0 < self.stop_accuracy <= 1.0
        ):
            raise ConfigError(
                f"stop_accuracy must be in (0, 1] or None, got {self.stop_accuracy!r}; "
                "None trains for max_epochs."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}.")

    def _fit(self, x: Tensor, heads: tuple[HeadSpec, ...], y_index: Tensor, y_value: Tensor) -> None:
        self._fit_standardiser(x)
        inputs = self._prepare(x)
        n = inputs.shape[0]
        y_mean = y_value.mean(dim=0) if y_value.shape[1] else y_value.new_zeros(0)
        y_scale = y_value.std(dim=0, unbiased=False).clamp_min(1e-12) if y_value.shape[1] else y_mean
        y_std = (y_value - y_mean) / y_scale
        weights: Tensor | None = None
        if self.batch_size is None or self.batch_size >= n:
            # Full batch: train on the distinct (example, label) rows weighted by their counts.
            # Loss and gradient equal the full batch's (dropout draws one mask per distinct row),
            # and the cost follows the number of distinct rows, e.g. 4 for mod-2 addition.
            inputs, y_index, y_std, weights = distinct_rows(inputs, y_index, y_std)
        rows = inputs.shape[0]
        batch_size = rows if weights is not None else min(int(self.batch_size or n), n)
        check_every = 1 if rows <= 512 else self.check_every
        history: list[float] = []
        with torch.random.fork_rng(devices=[inputs.device] if inputs.device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            with torch.device("cpu"):  # drawn on the CPU: the same start on every device
                network = self._build_network(tuple(inputs.shape[1:]), heads[-1].stop)
            network.to(inputs.device)
            generator = torch.Generator().manual_seed(self.seed)
            optimizer = torch.optim.Adam(network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            network.train()
            for epoch in range(self.max_epochs):
                total = inputs.new_zeros(())
                order = None
                if batch_size != rows:  # drawn on the CPU: the same order on every device
                    order = torch.randperm(rows, generator=generator, device="cpu").to(inputs.device)
                for first in range(0, rows, batch_size):
                    if order is None:
                        xb, ib, vb, wb = inputs, y_index, y_std, weights
                    else:
                        idx = order[first : first + batch_size]
                        xb, ib, vb, wb = inputs[idx], y_index[idx], y_std[idx], None
                    loss = _head_loss(network(xb), heads, ib, vb, wb)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += loss.detach() * (xb.shape[0] if wb is None else rows)
                history.append(float(total) / rows)
                if (epoch + 1) % check_every == 0 and self._reached(network, inputs, heads, y_index, weights):
                    break
        network.eval()
        self.network_ = network
        self.history_ = history
        self.n_epochs_ = len(history)
        self._y_mean_, self._y_scale_ = y_mean, y_scale

    def _reached(
        self, network: nn.Module, inputs: Tensor, heads: tuple[HeadSpec, ...], y_index: Tensor, weights: Tensor | None
    ) -> bool:
        """True once every head is categorical and reaches `stop_accuracy` on the training data (eval mode)."""
        if self.stop_accuracy is None or any(h.kind == "continuous" for h in heads):
            return False
        network.eval()
        with torch.no_grad():
            out = network(inputs)
        network.train()
        cat = [h for h in heads if h.kind == "categorical"]
        for k, head in enumerate(cat):
            hit = (out[:, head.start : head.stop].argmax(dim=1) == y_index[:, k]).float()
            accuracy = hit.mean() if weights is None else (hit * weights).sum()
            if float(accuracy) < self.stop_accuracy - 1e-6:  # weights sum to 1 only up to rounding
                return False
        return True

    def _fit_standardiser(self, x: Tensor) -> None:
        """Hook for probes that standardise their inputs (MLPProbe); default does nothing."""

    def _decision(self, x: Tensor) -> Tensor:
        # The network stays where it was fitted; `x` visits it, and the outputs come back to `x`'s device.
        out = self.network_(self._prepare(x.to(model_device(self.network_)))).to(x.device)
        if self._y_mean_.numel():
            out = out.clone()
            cols = [c for h in self.heads_ if h.kind == "continuous" for c in range(h.start, h.stop)]
            out[:, cols] = out[:, cols] * self._y_scale_.to(out.device) + self._y_mean_.to(out.device)
        return out


def clone(probe: ProbeT) -> ProbeT:
    """A new, unfitted probe of the same class with the same hyperparameters."""
    return type(probe)(**probe.get_params())


def check_activations(x: ArrayLike, name: str = "x") -> Tensor:
    """Return `x` as a float32 tensor (batch, ...), or raise DataError on NaN/inf or a bad shape."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise DataError(f"{name} must be a tensor of activations (batch, ...), got {type(x).__name__}.")
    if x.dim() < 2 or x.shape[0] == 0:
        raise DataError(
            f"{name} must have shape (batch, ...) with at least one example and one feature, got {tuple(x.shape)}; "
            "add a feature axis with x[:, None]."
        )
    # Checked after the cast: float64 activations beyond float32's range become inf here.
    return check_finite(
        x.float(), name, fix="Check the recorded layers for overflow, or drop those examples (rows of the batch)"
    )


def head_scores(predicted: dict[str, Tensor], labels: Labels) -> dict[str, float]:
    """Accuracy per categorical group and R^2 per continuous group."""
    scores: dict[str, float] = {}
    for group in labels:
        pred = predicted[group.name]
        if group.kind == "categorical":
            scores[group.name] = float((pred.cpu() == group.values.cpu()).float().mean())
        else:
            truth = group.values.float().reshape(pred.shape).cpu()
            residual = ((truth - pred.cpu()) ** 2).sum(dim=0)
            spread = ((truth - truth.mean(dim=0)) ** 2).sum(dim=0).clamp_min(1e-12)
            scores[group.name] = float((1.0 - residual / spread).mean())
    return scores


def all_heads_accuracy(predicted: dict[str, Tensor], labels: Labels) -> float:
    """Fraction of examples whose every categorical group is predicted right."""
    correct: Tensor | None = None
    for group in labels:
        if group.kind != "categorical":
            continue
        hit = predicted[group.name].cpu() == group.values.cpu()
        correct = hit if correct is None else correct & hit
    if correct is None:
        raise DataError(f"all-heads accuracy needs a categorical group; groups are {labels.kinds}.")
    return float(correct.float().mean())


def _encode_labels(labels: Labels, device: torch.device) -> tuple[tuple[HeadSpec, ...], Tensor, Tensor]:
    """Head layout plus class indices (batch, n_categorical) and values (batch, n_continuous)."""
    heads: list[HeadSpec] = []
    indices: list[Tensor] = []
    values: list[Tensor] = []
    column = 0
    for group in labels:
        if group.kind == "categorical":
            classes, index = torch.unique(group.values.cpu(), sorted=True, return_inverse=True)
            if classes.numel() < 2:
                raise DataError(
                    f"label group {group.name!r} has a single class ({int(classes[0])}) in the training data; "
                    "a probe needs at least two classes per group: drop the group or add examples of other classes."
                )
            heads.append(HeadSpec(group.name, "categorical", column, column + classes.numel(), classes))
            indices.append(index)
            column += classes.numel()
        else:
            value = group.values.float().cpu()
            heads.append(HeadSpec(group.name, "continuous", column, column + group.n_outputs, None, value.dim() == 1))
            values.append(value.reshape(value.shape[0], -1))
            column += group.n_outputs
    n = len(labels)
    y_index = torch.stack(indices, dim=1) if indices else torch.zeros(n, 0, dtype=torch.long, device="cpu")
    y_value = torch.cat(values, dim=1) if values else torch.zeros(n, 0, device="cpu")
    return tuple(heads), y_index.to(device), y_value.to(device)


def _head_loss(
    out: Tensor, heads: tuple[HeadSpec, ...], y_index: Tensor, y_value: Tensor, weights: Tensor | None = None
) -> Tensor:
    """Sum over heads of cross-entropy (categorical) or squared error (continuous), averaged over
    the rows, or weighted by `weights` (batch,) summing to 1."""
    per_row = out.new_zeros(out.shape[0])
    k = c = 0
    for head in heads:
        cols = out[:, head.start : head.stop]
        if head.kind == "categorical":
            per_row = per_row + F.cross_entropy(cols, y_index[:, k], reduction="none")
            k += 1
        else:
            width = head.stop - head.start
            per_row = per_row + ((cols - y_value[:, c : c + width]) ** 2).mean(dim=1)
            c += width
    return per_row.mean() if weights is None else (per_row * weights).sum()


def distinct_rows(inputs: Tensor, y_index: Tensor, y_value: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Merge repeated (input, label) rows: the distinct rows and their weights (count / batch).

    When fewer than half the rows are repeats, every row is kept with weight 1 / batch.
    Weights sum to 1, so a weighted mean over the result equals the mean over the input.
    """
    n = inputs.shape[0]
    flat = inputs.reshape(n, -1)
    key = torch.cat([flat, y_index.to(flat.dtype), y_value.to(flat.dtype)], dim=1)
    grouped = _group_equal_rows(key)
    if grouped is None or grouped[0].numel() * 2 > n:  # few repeats: train on every row
        return inputs, y_index, y_value, torch.full((n,), 1.0 / n, dtype=flat.dtype, device=flat.device)
    first, counts = grouped
    return inputs[first], y_index[first], y_value[first], counts.to(flat.dtype) / n


def _group_equal_rows(key: Tensor) -> tuple[Tensor, Tensor] | None:
    """Index of one row per group of equal rows, and the group sizes; None if grouping failed.

    Rows are grouped by a random projection (a 1-D sort, much faster than `unique(dim=0)`),
    then every row is checked against its group's representative, so the grouping is exact:
    a projection collision between different rows returns None.
    """
    n = key.shape[0]
    generator = torch.Generator().manual_seed(0)
    direction = torch.rand(key.shape[1], generator=generator, dtype=torch.float64, device="cpu")
    projection = (key.double() * direction.to(key.device)).sum(dim=1)
    _, inverse, counts = torch.unique(projection, return_inverse=True, return_counts=True)
    first = torch.full((counts.numel(),), n, dtype=torch.long, device=key.device)
    first = first.scatter_reduce(0, inverse, torch.arange(n, device=key.device), reduce="amin")
    if not torch.equal(key[first][inverse], key):
        return None
    return first, counts


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}.")


def _check_positive_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}.")


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):
        return False
