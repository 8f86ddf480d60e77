"""Full-batch AdamW training that logs train and test curves step by step (for grokking).

Grokking shows up only when the whole training split is used at every step with strong
weight decay, and only a per-step record of both splits shows it: train accuracy reaches
1 early, test accuracy follows hundreds or thousands of steps later. This loop does
exactly that; it also keeps copies of the weights every `snapshot_every` steps so that
measures needing the final model (e.g. restricted/excluded loss over training, which
need the final key frequencies) can be replayed afterwards.

Example:
    >>> data = modular_data(59, encoding="pairs", test_fraction=0.5)
    >>> model = build_seeded(GrokkingMLP, GrokkingMLPConfig(modulus=59), seed=0)
    >>> run = train_grokking(model, data, GrokkingTrainConfig(steps=5000), progress=False)
    >>> run.grokked_at()      # first logged step with test accuracy >= 0.99
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.data.bundle import DataBundle
from mechscope.errors import ConfigError, DataError
from mechscope.models._loop import checked_step, seeded_training

__all__ = ["GrokkingTrainConfig", "GrokkingRun", "Snapshot", "train_grokking", "first_step_reaching"]

Snapshot = tuple[int, dict[str, Tensor]]
"""(step, state_dict copy on the CPU); the weights *before* that step's update (step 0 = init)."""


@dataclass(frozen=True)
class GrokkingTrainConfig:
    """Settings of a full-batch AdamW run.

    Example:
        >>> GrokkingTrainConfig(steps=5000, lr=3e-3, weight_decay=1.0)
    """

    steps: int = 5000  # full-batch optimizer steps; the GrokkingMLP recipe's default (<= 8 key frequencies)
    lr: float = 3e-3  # AdamW learning rate (constant)
    weight_decay: float = 1.0  # AdamW decoupled weight decay; grokking needs it large
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas, as in Nanda et al.
    seed: int = 0  # seeds anything random during training (not the initial weights)
    log_every: int = 10  # record train/test loss and accuracy every this many steps
    snapshot_every: int = 0  # keep a copy of the weights every this many steps (0 = never)

    def __post_init__(self) -> None:
        for name in ("steps", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        if isinstance(self.snapshot_every, bool) or not isinstance(self.snapshot_every, int) or self.snapshot_every < 0:
            raise ConfigError(
                f"snapshot_every must be an integer >= 0 (0 = no snapshots), got {self.snapshot_every!r}."
            )
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive finite number, got {self.lr!r}; e.g. lr=3e-3.")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}; e.g. weight_decay=1.0.")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}; e.g. (0.9, 0.98).")


@dataclass
class GrokkingRun:
    """What `train_grokking` recorded.

    Attributes:
        history: One dict per logged step: "step", "train_loss", "train_accuracy",
            "test_loss", "test_accuracy" (measured before that step's update; the last
            record is the final model).
        metrics: Final "train_loss", "train_accuracy", "test_loss", "test_accuracy".
        snapshots: Weight copies every `snapshot_every` steps plus the final weights.
        seconds: Wall time of the loop.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    snapshots: list[Snapshot] = field(default_factory=list)
    seconds: float = 0.0

    def grokked_at(self, threshold: float = 0.99) -> int | None:
        """First logged step whose test accuracy reaches `threshold`, or None."""
        return first_step_reaching(self.history, "test_accuracy", threshold)

    def memorised_at(self, threshold: float = 0.99) -> int | None:
        """First logged step whose train accuracy reaches `threshold`, or None."""
        return first_step_reaching(self.history, "train_accuracy", threshold)


def train_grokking(
    model: nn.Module,
    data: DataBundle,
    config: GrokkingTrainConfig | None = None,
    *,
    progress: bool = True,
    check_finite: bool = True,
) -> GrokkingRun:
    """Train `model` in place with full-batch AdamW, logging both splits every `log_every` steps.

    Args:
        model: Maps `data.x_train` to logits (batch, n_classes).
        data: A classification DataBundle (e.g. `modular_data(p, encoding="pairs")`).
        config: Settings; None uses `GrokkingTrainConfig()`.
        progress: Show a tqdm bar (only when stderr is a terminal).
        check_finite: Check the data for NaN/inf once before training, and each step's
            loss before its update (one scalar check per step). False trains regardless.

    Returns:
        GrokkingRun. The model's train/eval mode is restored on return.

    Raises:
        DataError: If the data is not a non-empty classification split, holds NaN/inf, or
            the loss becomes NaN/inf (training stops at that step, before its update).
    """
    config = GrokkingTrainConfig() if config is None else config
    if data.task != "classification" or data.x_train.shape[0] == 0 or data.x_test.shape[0] == 0:
        raise DataError(
            f"train_grokking needs a classification split with train and test examples, got task={data.task!r} "
            f"with {data.x_train.shape[0]} train / {data.x_test.shape[0]} test examples."
        )
    if check_finite:
        data.check_finite(skip_with="check_finite=False to train_grokking()")
    param = next(model.parameters(), None)
    if param is None:
        raise ConfigError(f"{type(model).__name__} has no parameters; nothing to train.")
    device = param.device
    x_train, y_train = data.x_train.to(device), data.y_train.long().to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.long().to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(config.betas[0], config.betas[1])
    )
    run = GrokkingRun()
    start = time.perf_counter()
    with seeded_training(model, config.seed, device):
        bar = tqdm(range(config.steps + 1), desc="train", unit="step", disable=None if progress else True)
        for step in bar:
            if config.snapshot_every and step % config.snapshot_every == 0 and step < config.steps:
                run.snapshots.append((step, _copy_state(model)))
            out = model(x_train)
            loss = F.cross_entropy(out, y_train)
            if step % config.log_every == 0 or step == config.steps:
                record = _record(model, step, out, y_train, x_test, y_test)
                run.history.append(record)
                bar.set_postfix(train=f"{record['train_accuracy']:.3f}", test=f"{record['test_accuracy']:.3f}")
            if step == config.steps:
                break  # the last pass only measures the final model
            checked_step(optimizer, loss, check_finite=check_finite, where=f"step {step}", lr=config.lr,
                         skip_with="check_finite=False to train_grokking()")
        bar.close()
    run.seconds = time.perf_counter() - start
    if config.snapshot_every:
        run.snapshots.append((config.steps, _copy_state(model)))
    final = run.history[-1]
    run.metrics = {key: final[key] for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")}
    return run


def first_step_reaching(history: list[dict[str, float]], key: str, threshold: float) -> int | None:
    """Return the first record's "step" whose `key` is >= `threshold`, or None."""
    for record in history:
        if record.get(key, -math.inf) >= threshold:
            return int(record["step"])
    return None


def _record(
    model: nn.Module, step: int, out: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor
) -> dict[str, float]:
    # float64 cross-entropy: once grokked, losses fall below float32's resolution near 1e-7
    with torch.no_grad():
        model.eval()
        test_out = model(x_test)
        model.train()
        train_out = out.detach().double()
        test_out = test_out.double()
        return {
            "step": float(step),
            "train_loss": float(F.cross_entropy(train_out, y_train)),
            "train_accuracy": float((train_out.argmax(dim=1) == y_train).double().mean()),
            "test_loss": float(F.cross_entropy(test_out, y_test)),
            "test_accuracy": float((test_out.argmax(dim=1) == y_test).double().mean()),
        }


def _copy_state(model: nn.Module) -> dict[str, Tensor]:
    return {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}
