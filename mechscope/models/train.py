"""One training loop for every mechscope model: batched, seeded, early-stopping.

Classification data (`DataBundle.task == "classification"`) is trained with
cross-entropy and scored by accuracy; regression data with mean squared error.
Everything random inside `train` (shuffling, shift augmentation, dropout if a
model has it) draws from generators seeded by `TrainConfig.seed`, so the same
initial weights, data and config give bit-identical trained weights. Initial
weights are seeded separately: construct the model with
`mechscope.models.build_seeded(cls, config, seed)`.

Example:
    >>> data = modular_data(2, n_train=10_000, n_test=10_000)
    >>> model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2), seed=0)
    >>> result = train(model, data, progress=False)   # default_train_config picks the settings
    >>> result.metrics["test_accuracy"]
    1.0
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.data.bundle import DataBundle, Task
from mechscope.errors import ConfigError, DataError
from mechscope.models._loop import checked_step, seeded_training
from mechscope.models.device import model_device
from mechscope.models.digit_cnn import DigitCNN
from mechscope.models.modular_mlp import ModularMLP
from mechscope.models.tiny_relu import TinyReLU

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate", "default_train_config", "random_shift", "OptimizerName"]

OptimizerName = Literal["adam", "sgd"]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one `train` run.

    Example:
        >>> TrainConfig(epochs=8, batch_size=64, lr=2e-3, max_shift=2)
    """

    epochs: int = 20  # passes over the training split; an upper bound when target_metric stops early
    batch_size: int = 128  # examples per optimizer step (ignored when full_batch=True)
    lr: float = 1e-3  # peak learning rate
    optimizer: OptimizerName = "adam"  # "adam" or "sgd" (plain SGD as in the TinyReLU article)
    weight_decay: float = 0.0  # L2 penalty handed to the optimizer
    seed: int = 0  # seeds shuffling, augmentation and forward-pass randomness (not the initial weights)
    target_metric: float | None = None  # stop once the epoch's train accuracy >= it, or train MSE <= it
    full_batch: bool = False  # one step per epoch on the whole training split
    momentum: float = 0.0  # SGD momentum (ignored by Adam)
    max_shift: int = 0  # image inputs only: random translation by up to this many pixels per step
    cosine: bool = False  # decay the learning rate to 0 along a half cosine over the planned steps

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        if not (_is_number(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive finite number, got {self.lr!r}; e.g. lr=1e-3.")
        if self.optimizer not in get_args(OptimizerName):
            raise ConfigError(f"optimizer must be one of {get_args(OptimizerName)!r}, got {self.optimizer!r}.")
        numbers = _is_number(self.weight_decay) and _is_number(self.momentum)
        if not numbers or min(self.weight_decay, self.momentum) < 0:
            raise ConfigError(
                f"weight_decay and momentum must be numbers >= 0, got weight_decay={self.weight_decay!r}, "
                f"momentum={self.momentum!r}."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}.")
        if isinstance(self.max_shift, bool) or not isinstance(self.max_shift, int) or self.max_shift < 0:
            raise ConfigError(f"max_shift must be a non-negative integer of pixels, got {self.max_shift!r}.")
        target = self.target_metric
        if target is not None and not (_is_number(target) and math.isfinite(target)):
            raise ConfigError(f"target_metric must be a finite number or None, got {self.target_metric!r}.")
        if not isinstance(self.full_batch, bool) or not isinstance(self.cosine, bool):
            raise ConfigError(
                f"full_batch and cosine must be True or False, got full_batch={self.full_batch!r}, "
                f"cosine={self.cosine!r}."
            )


@dataclass
class TrainResult:
    """What `train` measured.

    Attributes:
        history: One dict per epoch: "epoch", "train_loss" and "train_accuracy" or
            "train_mse" (means over the epoch's batches, taken before each step).
        metrics: Final scores of the trained model on both splits: "train_accuracy"
            and "test_accuracy", or "train_mse" and "test_mse".
        epochs_run: Epochs actually run (fewer than planned after an early stop).
        seconds: Wall time of the optimisation loop, final evaluation excluded.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    epochs_run: int = 0
    seconds: float = 0.0


def train(
    model: nn.Module,
    data: DataBundle,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    check_finite: bool = True,
) -> TrainResult:
    """Fit `model` to `data.x_train, data.y_train` in place and score both splits.

    Args:
        model: Any module mapping a batch of `data` inputs to logits (batch, n_classes)
            or predictions (batch,) / (batch, n_outputs). Trained on its parameters' device.
        data: The split to fit; `data.task` picks the loss.
        config: Settings; None uses `default_train_config(model, data)`.
        progress: Show a tqdm bar over epochs (only when stderr is a terminal).
        check_finite: Check every split for NaN/inf once before training, and every
            step's loss before its update (one scalar check per step). False trains on
            whatever comes, as plain PyTorch would.

    Returns:
        TrainResult with per-epoch history and final train/test metrics. The model's
        train/eval mode is restored on return.

    Raises:
        DataError: If targets or model outputs do not fit the task, the data holds NaN/inf
            (before any step), or the loss becomes NaN/inf (training stops at that step;
            the model keeps the weights from before it).
    """
    config = default_train_config(model, data) if config is None else config
    if check_finite:
        data.check_finite(skip_with="check_finite=False to train()")
    device = model_device(model)
    x_all, y_all = data.x_train.to(device), _targets(data.y_train, data.task).to(device)
    n = x_all.shape[0]
    if n == 0:
        raise DataError("the training split is empty; build data with n_train > 0.")
    bounds = _batch_bounds(n, n if config.full_batch else config.batch_size)
    metric_key = "train_accuracy" if data.task == "classification" else "train_mse"

    history: list[dict[str, float]] = []
    generator = torch.Generator().manual_seed(config.seed)
    loop = _Loop(model, data, config, x_all, y_all, device, bounds, _optimizer(model, config), generator, check_finite)
    start = time.perf_counter()
    with seeded_training(model, config.seed, device):
        bar = tqdm(range(1, config.epochs + 1), desc="train", unit="epoch", disable=None if progress else True)
        try:
            for epoch in bar:
                loss, metric = loop.epoch(epoch)
                record = {"epoch": float(epoch), "train_loss": loss, metric_key: metric}
                history.append(record)
                bar.set_postfix(loss=f"{record['train_loss']:.4g}", **{metric_key: f"{record[metric_key]:.4g}"})
                if loop.reached(metric):
                    break
        finally:
            bar.close()
    seconds = time.perf_counter() - start

    train_scores = evaluate(model, data.x_train, data.y_train, data.task)
    metrics = {key.replace("test_", "train_"): value for key, value in train_scores.items()}
    metrics.update(evaluate(model, data.x_test, data.y_test, data.task))
    return TrainResult(history=history, metrics=metrics, epochs_run=len(history), seconds=seconds)


@dataclass
class _Loop:
    """What one `train` run carries from step to step: the data on the device, the optimizer and the RNG."""

    model: nn.Module
    data: DataBundle
    config: TrainConfig
    x_all: Tensor  # training inputs on the model's device
    y_all: Tensor  # checked training targets on the model's device
    device: torch.device  # the model's device
    bounds: list[tuple[int, int]]  # (first, last) of each batch of an epoch
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # CPU generator of the shuffles and shifts
    check_finite: bool  # check each step's loss for NaN/inf before its update
    step: int = 0  # optimizer steps taken so far

    def epoch(self, epoch: int) -> tuple[float, float]:
        """Run one pass over the training split; return its mean loss and metric, each taken before its step."""
        n = self.x_all.shape[0]
        order = None
        if not self.config.full_batch:
            order = torch.randperm(n, generator=self.generator, device="cpu").to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        metric_sum = torch.zeros((), device=self.device)
        for batch_number, (first, last) in enumerate(self.bounds, 1):
            xb, yb = self._batch(order, first, last)
            where = f"epoch {epoch}, step {self.step + 1} (batch {batch_number} of {len(self.bounds)})"
            out, loss = self._step(xb, yb, where=where)
            with torch.no_grad():
                loss_sum += loss.detach() * yb.shape[0]
                metric_sum += _metric_sum(out.detach(), yb, self.data.task)
        return float(loss_sum) / n, float(metric_sum) / n

    def reached(self, metric: float) -> bool:
        """True when the epoch's metric and the current weights both reach the target metric.

        The epoch's metric was taken before each step; the target is confirmed on the
        weights as they are now before stopping (a last step can undo it).
        """
        task, target = self.data.task, self.config.target_metric
        return _reached(metric, target, task) and _reached(
            _evaluate_tensors(self.model, self.x_all, self.y_all, task), target, task
        )

    def _batch(self, order: Tensor | None, first: int, last: int) -> tuple[Tensor, Tensor]:
        """Inputs and targets of one batch (the whole split without `order`), randomly shifted if configured."""
        if order is None:
            xb, yb = self.x_all, self.y_all
        else:
            idx = order[first:last]
            xb, yb = self.x_all[idx], self.y_all[idx]
        if self.config.max_shift:
            xb = random_shift(xb, self.config.max_shift, self.generator)
        return xb, yb

    def _step(self, xb: Tensor, yb: Tensor, *, where: str) -> tuple[Tensor, Tensor]:
        """One optimizer step on a batch (learning rate from the cosine schedule if configured); (outputs, loss)."""
        config = self.config
        if config.cosine:
            total_steps = len(self.bounds) * config.epochs
            _set_lr(self.optimizer, 0.5 * config.lr * (1.0 + math.cos(math.pi * self.step / total_steps)))
        out = _match_output(self.model(xb), yb, self.data)
        loss = _loss(out, yb, self.data.task)
        checked_step(self.optimizer, loss, check_finite=self.check_finite, lr=config.lr, where=where,
                     skip_with="check_finite=False to train()")
        self.step += 1
        return out, loss


def evaluate(model: nn.Module, x: Tensor, y: Tensor, task: Task, *, batch_size: int = 8192) -> dict[str, float]:
    """Score `model` on `(x, y)` without gradients, in eval mode (restored afterwards).

    Args:
        model: Module returning logits (batch, n_classes) or predictions (batch,).
        x: Inputs (batch, ...).
        y: Class indices (batch,) for classification; values (batch,) or
            (batch, n_outputs) for regression.
        task: "classification" or "regression".
        batch_size: Examples per forward pass (bounds memory, not the result).

    Returns:
        {"test_accuracy": fraction correct} or {"test_mse": mean squared error}.

    Raises:
        DataError: If `task` is unknown, the split is empty or shapes do not match.
    """
    if task not in ("classification", "regression"):
        raise DataError(f"task must be 'classification' or 'regression', got {task!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise DataError(
            f"need as many targets as inputs (and at least one), got {x.shape[0]} inputs, {y.shape[0]} targets."
        )
    value = _evaluate_tensors(model, x, _targets(y, task), task, batch_size)
    return {"test_accuracy" if task == "classification" else "test_mse": value}


def _evaluate_tensors(model: nn.Module, x: Tensor, y: Tensor, task: Task, batch_size: int = 8192) -> float:
    """Return accuracy or MSE of `model` on checked targets, in eval mode, restoring the mode after."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device="cpu")
    try:
        with torch.no_grad():
            for first in range(0, x.shape[0], batch_size):
                xb = x[first : first + batch_size].to(device)
                yb = y[first : first + batch_size].to(device)
                out = _match_output(model(xb), yb, None)
                if task == "regression":  # float64 so the mean of tiny errors keeps its digits
                    out, yb = out.double(), yb.double()
                total += _metric_sum(out, yb, task).double().cpu()
    finally:
        model.train(was_training)
    return float(total) / x.shape[0]


def default_train_config(model: nn.Module, data: DataBundle) -> TrainConfig:
    """Return the documented training settings for `model` on `data`.

    Measured on a shared 2-core CPU, one thread, seeds 0-2 (data and weights):

    * ModularMLP: full-batch Adam, lr 0.02, stop at train accuracy 1.0 (at most 3000
      epochs). Mod 2, article setup: 100% held-out in 3-47 epochs (20 seeds), ~0.1 s.
      Mod 5 with hidden=16: 100% in 12-25 epochs.
    * TinyReLU: Adam, batch 512, lr 0.02 with cosine decay, 2 epochs (100,000
      examples: 392 steps, < 1 s). Held-out MSE <= 3e-11 (sum, weighted) and <= 2e-5
      (product, log space).
    * DigitCNN, 28x28: Adam, batch 64, lr 4e-3 with cosine decay, random shifts of up
      to 1 pixel, 10 epochs: mnist5k 97.6-98.0% (dense head, ~9 s), 98.2-98.9% (GAP, ~16 s).
    * DigitCNN, 8x8: Adam, batch 64, lr 4e-3 with cosine decay, 30 epochs, no shifts
      (a 1-pixel shift is 1/8 of the image and cost ~1.5 points): sklearn digits
      97.6-99.1% (dense), 98.0-99.1% (GAP), ~6 s.
    * Anything else: Adam, batch 128, lr 1e-3, 20 epochs.

    Args:
        model: The model to train.
        data: The data it will be trained on.

    Returns:
        A TrainConfig; adjust it with `dataclasses.replace`.
    """
    if isinstance(model, ModularMLP):
        return TrainConfig(epochs=3000, lr=0.02, full_batch=True, target_metric=1.0)
    if isinstance(model, TinyReLU):
        return TrainConfig(epochs=2, batch_size=512, lr=0.02, cosine=True)
    if isinstance(model, DigitCNN):
        if model.config.image_size <= 16:
            return TrainConfig(epochs=30, batch_size=64, lr=4e-3, cosine=True)
        return TrainConfig(epochs=10, batch_size=64, lr=4e-3, max_shift=1, cosine=True)
    return TrainConfig()


def random_shift(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by its own random offset in `-max_shift..max_shift`, zero-filling.

    Args:
        images: Batch (batch, channel, height, width); other shapes are returned unchanged.
        max_shift: Largest shift in pixels along each axis.
        generator: CPU generator the offsets are drawn from.

    Returns:
        Shifted images, same shape and dtype.
    """
    if images.dim() != 4 or max_shift == 0 or not images.is_floating_point():
        return images
    b, _, h, w = images.shape
    offsets = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=generator, device="cpu").to(images.device)
    padded = F.pad(images, (max_shift, max_shift, max_shift, max_shift))
    rows = (torch.arange(h, device=images.device) + offsets[:, :1])[:, :, None]  # (batch, height, 1)
    cols = (torch.arange(w, device=images.device) + offsets[:, 1:])[:, None, :]  # (batch, 1, width)
    batch_idx = torch.arange(b, device=images.device)[:, None, None]
    return padded[batch_idx, :, rows, cols].permute(0, 3, 1, 2).contiguous()  # (batch, channel, height, width)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Return (first, last) slices covering 0..n; a lone trailing example joins the batch before it.

    BatchNorm cannot normalise a batch of one example in training mode.
    """
    bounds = [(first, min(first + batch_size, n)) for first in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters; nothing to train.")
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _targets(y: Tensor, task: Task) -> Tensor:
    if task == "classification":
        if y.is_floating_point() or y.is_complex() or y.dim() != 1:
            raise DataError(
                f"classification targets must be integer class indices of shape (batch,), got {y.dtype} "
                f"{tuple(y.shape)}; convert one-hot targets with y.argmax(dim=1)."
            )
        return y.long()
    if task != "regression":
        raise DataError(f"task must be 'classification' or 'regression', got {task!r}.")
    return y.float() if not y.is_floating_point() else y


def _match_output(out: Tensor, y: Tensor, data: DataBundle | None) -> Tensor:
    if y.is_floating_point():  # regression: (batch, 1) predictions may meet (batch,) targets
        if out.shape != y.shape and out.dim() == y.dim() + 1 and out.shape[-1] == 1:
            out = out.squeeze(-1)
        if out.shape != y.shape:
            raise DataError(
                f"model predictions have shape {tuple(out.shape)} but regression targets have {tuple(y.shape)}; "
                "make the model return one value per target."
            )
        return out.to(y.dtype) if out.dtype != y.dtype else out
    n_classes = data.n_classes if data is not None else None
    if out.dim() != 2 or (n_classes is not None and out.shape[1] != n_classes):
        raise DataError(
            f"classification needs logits of shape (batch, n_classes={n_classes}), got {tuple(out.shape)}; "
            "match the model's output size to the data's n_classes."
        )
    return out


def _loss(out: Tensor, y: Tensor, task: Task) -> Tensor:
    if task == "classification":
        return F.cross_entropy(out, y)
    return F.mse_loss(out, y)


def _metric_sum(out: Tensor, y: Tensor, task: Task) -> Tensor:
    if task == "classification":
        return (out.argmax(dim=1) == y).sum()
    err = (out - y) ** 2
    return err.mean(dim=tuple(range(1, y.dim()))).sum() if y.dim() > 1 else err.sum()


def _reached(value: float, target: float | None, task: Task) -> bool:
    if target is None:
        return False
    return value >= target if task == "classification" else value <= target
