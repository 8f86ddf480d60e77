"""Controls that say how much a probe's accuracy means.

* Control task (Hewitt & Liang, 2019, "Designing and Interpreting Probes with Control
  Tasks", https://arxiv.org/abs/1909.03368): every distinct input value ("type") gets
  one fixed random label per group, drawn from the real labels' distribution. A probe
  that scores well on it is memorising types, not reading structure; selectivity =
  task accuracy - control accuracy.
* Majority baseline: always predict the most frequent training class.
* Untrained copy: the same architecture with fresh random weights (every parameter redrawn),
  probed the same way.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mechscope.capture.modes import model_device
from mechscope.errors import DataError, UnsupportedModelError
from mechscope.models.registry import build_model, model_spec
from mechscope.probes.base import all_heads_accuracy, head_scores
from mechscope.probes.labels import LabelGroup, Labels, LabelsLike, as_labels

__all__ = ["Baseline", "input_types", "control_task", "majority_baseline", "untrained_copy", "selectivity"]

_MAX_REDRAWS = 100


@dataclass(frozen=True)
class Baseline:
    """Scores of the majority-class predictor.

    Attributes:
        heads: Group name -> accuracy (categorical) or R^2 of predicting the training mean (continuous).
        all_heads_accuracy: Fraction of examples whose every categorical group equals its majority class.
    """

    heads: dict[str, float]
    all_heads_accuracy: float


def input_types(x: Tensor) -> Tensor:
    """Id of each example's distinct input value: equal rows of `x` (batch, ...) share an id.

    Returns:
        (batch,) int64 ids in 0..n_types-1, ordered by sorted distinct value.
    """
    if x.dim() == 0 or x.shape[0] == 0:
        raise DataError(
            f"need inputs (batch, ...) with at least one example to find input types, got {tuple(x.shape)}."
        )
    flat = x.reshape(x.shape[0], -1)
    return torch.unique(flat, dim=0, return_inverse=True)[1]


def control_task(types: Tensor, labels: LabelsLike, *, seed: int = 0) -> Labels:
    """Hewitt & Liang control labels: one fixed random label per input type and group.

    Each type's label is drawn independently from the group's empirical label distribution
    (over examples). Draws that leave a categorical group with a single class are redrawn.
    Continuous groups get, per type, the value of a randomly chosen example.

    Args:
        types: (batch,) integer type ids (see `input_types`), or inputs (batch, ...) whose
            distinct rows are the types.
        labels: The real labels (any number of groups).
        seed: Seed of the private generator.

    Returns:
        Labels with the same groups, names and kinds; equal types get equal labels.

    Raises:
        DataError: Lengths differ, or there are fewer than two types (no control is possible).
    """
    real = as_labels(labels)
    ids = _type_ids(types)
    if ids.shape[0] != len(real):
        raise DataError(
            f"types has {ids.shape[0]} entries but the labels have {len(real)}; pass one type per example."
        )
    n_types = int(ids.max()) + 1 if ids.numel() else 0
    if n_types < 2:
        raise DataError(
            f"a control task needs at least two distinct input types, got {n_types}; every example has the same input."
        )
    generator = torch.Generator().manual_seed(seed)
    groups = []
    for group in real:
        values = group.values.cpu()
        if group.kind == "categorical":
            classes, counts = torch.unique(values, return_counts=True)
            probs = counts.double() / counts.sum()
            for _ in range(_MAX_REDRAWS):
                per_type = classes[torch.multinomial(probs, n_types, replacement=True, generator=generator)]
                if classes.numel() < 2 or torch.unique(per_type[ids]).numel() > 1:
                    break
            groups.append(LabelGroup(group.name, per_type[ids], "categorical"))
        else:
            pick = torch.randint(0, values.shape[0], (n_types,), generator=generator, device="cpu")
            groups.append(LabelGroup(group.name, values[pick][ids], "continuous"))
    return Labels(groups)


def majority_baseline(train: LabelsLike, test: LabelsLike) -> Baseline:
    """Score the predictor that outputs the most frequent training class (or the training mean).

    Raises:
        DataError: The two label sets have different groups.
    """
    train_t, test_t = as_labels(train), as_labels(test)
    if train_t.names != test_t.names:
        raise DataError(f"train and test labels have different groups: {train_t.names} vs {test_t.names}.")
    predicted: dict[str, Tensor] = {}
    for group, held_out in zip(train_t, test_t):
        if group.kind == "categorical":
            classes, counts = torch.unique(group.values.cpu(), return_counts=True)
            predicted[group.name] = classes[counts.argmax()].expand(len(held_out))
        else:
            mean = group.values.float().cpu().mean(dim=0)
            predicted[group.name] = mean.expand_as(held_out.values.float().cpu())
    heads = head_scores(predicted, test_t)
    all_heads = all_heads_accuracy(predicted, test_t) if any(g.kind == "categorical" for g in test_t) else float("nan")
    return Baseline(heads, all_heads)


def untrained_copy(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """The same architecture with fresh random weights drawn under `seed`, in eval mode.

    Every parameter is re-initialised; `model` itself is not changed.

    1. Registered mechscope models are rebuilt from their config, so their own
       initialisation applies. Any other model is deep-copied, and every submodule's
       `reset_parameters()` (or `_reset_parameters()`, as nn.MultiheadAttention names it)
       is called: PyTorch's default initialisation, which also resets norm running
       statistics to their defaults (mean 0, variance 1, no batches seen).
    2. A Hugging Face model (one with `_init_weights`, a `PreTrainedModel`) then gets its
       library's own initialisation on every submodule: GPT-2's `Conv1D` attention and MLP
       weights and ViT's class token and position embeddings have no `reset_parameters`.
    3. Any parameter still equal to its value in `model` (one no initialiser reaches, or a
       norm scale that training left at 1) is redrawn: from a normal with the mean and
       standard deviation of the model's tensor or, for a constant tensor, as that constant
       plus uniform noise in +-1/sqrt(fan_in) (nn.Linear's default bias bound, fan_in = the
       last dimension). So no trained value is carried into the control.

    Buffers that are not statistics (masks, position ids) are part of the architecture and
    are kept.

    The weights are drawn on the CPU and the copy then moves to `model`'s device, so a seed
    gives the same untrained model on every device.
    """
    device = model_device(model)
    try:
        name, config = model_spec(model)
    except UnsupportedModelError:
        fresh = copy.deepcopy(model).to("cpu")
        with _seeded(seed), torch.no_grad():
            _reset_all(fresh)
    else:
        with torch.device("cpu"):  # whatever torch.set_default_device says
            fresh = build_model(name, config, seed=seed)
    _redraw_unchanged(fresh, model, seed)
    return fresh.to(device).eval()


def selectivity(task_accuracy: float, control_accuracy: float) -> float:
    """Task accuracy minus control-task accuracy (Hewitt & Liang's selectivity)."""
    return float(task_accuracy) - float(control_accuracy)


def _type_ids(types: Tensor) -> Tensor:
    if not isinstance(types, Tensor):
        raise DataError(
            f"types must be a tensor of type ids (batch,) or inputs (batch, ...), got {type(types).__name__}."
        )
    if types.dim() == 1 and not types.is_floating_point():
        return torch.unique(types.cpu(), return_inverse=True)[1]
    return input_types(types.cpu())


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed the global CPU generator for the block; restore it after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _reset_all(model: nn.Module) -> None:
    """PyTorch's own initialisers on every submodule, then a Hugging Face model's `_init_weights`."""
    for module in model.modules():
        for method in ("reset_parameters", "_reset_parameters"):
            reset = getattr(module, method, None)
            if callable(reset):
                reset()
                break
    hf_init = getattr(model, "_init_weights", None)
    if callable(hf_init):
        # transformers skips tensors and modules flagged as initialised (loaded from a checkpoint)
        for item in [*model.modules(), *model.parameters(), *model.buffers()]:
            if getattr(item, "_is_hf_initialized", False):
                setattr(item, "_is_hf_initialized", False)
        for module in model.modules():
            hf_init(module)


def _redraw_unchanged(fresh: nn.Module, model: nn.Module, seed: int) -> None:
    """Redraw every parameter of `fresh` still equal to `model`'s (see `untrained_copy`, step 3)."""
    trained = dict(model.named_parameters())
    generator = torch.Generator().manual_seed(seed + 1_000_003)  # CPU draws: the same on every device
    with torch.no_grad():
        for name, param in fresh.named_parameters():
            old = trained.get(name)
            if old is None or not param.is_floating_point() or param.shape != old.shape:
                continue
            if not torch.equal(param.detach().cpu(), old.detach().cpu()):
                continue
            values = old.detach().cpu().double()
            std = float(values.std()) if values.numel() > 1 else 0.0
            if std > 0.0 and math.isfinite(std):
                drawn = torch.empty(param.shape, dtype=torch.float64, device="cpu").normal_(
                    float(values.mean()), std, generator=generator
                )
            else:
                bound = 1.0 / math.sqrt(param.shape[-1] if param.dim() else 1)
                noise = torch.empty(param.shape, dtype=torch.float64, device="cpu").uniform_(
                    -bound, bound, generator=generator
                )
                drawn = values + noise
            param.copy_(drawn.to(param.dtype))
