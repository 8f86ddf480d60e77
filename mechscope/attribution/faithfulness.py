"""Deletion and insertion curves (Petsiuk et al., 2018, "RISE"): do the top-ranked pixels matter?

Deletion replaces pixels with a baseline value, most important first, and tracks the
probability of the target class: a faithful map makes it fall fast (low area under the
curve). Insertion starts from the baseline image and restores pixels, most important first:
a faithful map makes the probability rise fast (high area). A random map is the reference.
Pixel ranks follow the signed map (positive evidence first); ties are broken at random.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.attribution._layout import channels_last_call
from mechscope.attribution.base import Attribution, check_images, eval_mode
from mechscope.attribution.sanity import named_methods
from mechscope.attribution.targets import Target, resolve_target
from mechscope.capture import select_output
from mechscope.capture.outputs import OutputSpec
from mechscope.data.dtypes import explain_dtype_errors
from mechscope.data.finite import check_finite as check_tensor_finite
from mechscope.errors import ConfigError, DataError

__all__ = ["FaithfulnessResult", "faithfulness", "perturbation_curves", "area_under_curve", "RANDOM"]

RANDOM = "random"
"""Label of the random-map baseline."""


@dataclass(frozen=True)
class FaithfulnessResult:
    """Mean deletion/insertion curves and their areas, per method and for random maps."""

    json_extra: ClassVar[tuple[str, ...]] = ("random_baseline",)

    fractions: list[float]  # fraction of pixels deleted (or inserted) at each point, 0 .. 1
    deletion: dict[str, list[float]]  # label -> mean target probability after deleting, per fraction
    insertion: dict[str, list[float]]  # label -> mean target probability after inserting, per fraction
    deletion_auc: dict[str, float]  # label -> area under the deletion curve (lower is better)
    insertion_auc: dict[str, float]  # label -> area under the insertion curve (higher is better)
    n_images: int  # images averaged over
    # RANDOM ("random") is a key of every dict above: uniformly random maps, same seed for all.

    @property
    def random_baseline(self) -> dict[str, float]:
        """Areas of the random-map baseline: {"deletion_auc": ..., "insertion_auc": ...}."""
        return {"deletion_auc": self.deletion_auc[RANDOM], "insertion_auc": self.insertion_auc[RANDOM]}


def faithfulness(
    model: nn.Module,
    methods: Mapping[str, Attribution] | Sequence[Attribution],
    inputs: Tensor,
    target: Target = None,
    *,
    n_steps: int = 64,
    baseline: float = 0.0,
    seed: int = 0,
    batch_size: int = 1024,
    check_finite: bool = True,
    output: OutputSpec = None,
    random_maps: bool = True,
) -> FaithfulnessResult:
    """Deletion and insertion curves of every method, averaged over `inputs`, beside random maps.

    Args:
        model: The classifier.
        methods: Methods by label, or a sequence labelled by `label`.
        inputs: Images (batch, channel, height, width), e.g. a test set.
        target: Class per image; None = the model's predicted class.
        n_steps: Points on each curve after the start (capped at the pixel count).
        baseline: Value a deleted pixel takes, and the image insertion starts from
            (0 = black for digits in [0, 1]).
        seed: Seeds the random maps and the tie-breaking.
        batch_size: Perturbed images per forward pass (bounds memory, not the result).
        check_finite: Raise DataError on NaN/inf in `inputs` (before any work) or in a method's
            maps (a NaN map ranks no pixels); False computes the curves anyway.
        output: Which of the model's outputs holds the logits (see
            `mechscope.capture.select_output`); give the methods the same `output=`.
        random_maps: Also score uniformly random maps (the "random" entry). The curves of
            every method and of the random maps do not depend on what else is scored, so
            results of separate calls on the same inputs combine.

    Returns:
        FaithfulnessResult; `result.random_baseline` holds the random maps' areas.

    Raises:
        DataError: `inputs` is not a float image batch, holds NaN/inf, or has another dtype
            than the model's parameters; or a method's maps hold NaN/inf.

    Example:
        >>> result = faithfulness(model, [GradCAM(model), Saliency(model)], x_test[:200])
        >>> result.deletion_auc["Grad-CAM"] < result.random_baseline["deletion_auc"]
        True
    """
    named = named_methods(methods)
    if RANDOM in named:
        raise ConfigError(f"{RANDOM!r} labels the random baseline; give the method another label.")
    x = check_images(inputs, model, check_finite=check_finite)
    with eval_mode(model), torch.no_grad(), explain_dtype_errors(model, x):
        index = resolve_target(target, model(x), output=output)
    generator = torch.Generator().manual_seed(seed)
    maps = {label: method.attribute(x, index, check_finite=False) for label, method in named.items()}
    if check_finite:
        for label, value in maps.items():
            check_tensor_finite(
                value, f"the {label} maps", fix="The model gives NaN/inf on finite inputs: check its weights"
            )
    if random_maps:
        maps[RANDOM] = torch.rand(x.shape[0], x.shape[-2], x.shape[-1], generator=generator,
                                  device="cpu").to(x.device)
    fractions: Tensor | None = None
    deletion: dict[str, list[float]] = {}
    insertion: dict[str, list[float]] = {}
    deletion_auc: dict[str, float] = {}
    insertion_auc: dict[str, float] = {}
    for label, value in tqdm(maps.items(), desc="faithfulness", leave=False, disable=None):
        fractions, deleted, inserted = perturbation_curves(
            model, x, value, index, n_steps=n_steps, baseline=baseline, seed=seed, batch_size=batch_size,
            check_finite=False, output=output,  # inputs and maps were checked above
        )
        deletion[label] = deleted.mean(dim=0).tolist()
        insertion[label] = inserted.mean(dim=0).tolist()
        deletion_auc[label] = float(area_under_curve(fractions, deleted).mean())
        insertion_auc[label] = float(area_under_curve(fractions, inserted).mean())
    points = [] if fractions is None else fractions.tolist()
    return FaithfulnessResult(points, deletion, insertion, deletion_auc, insertion_auc, int(x.shape[0]))


def perturbation_curves(
    model: nn.Module,
    inputs: Tensor,
    maps: Tensor,
    target: Target = None,
    *,
    n_steps: int = 64,
    baseline: float = 0.0,
    seed: int = 0,
    batch_size: int = 1024,
    check_finite: bool = True,
    output: OutputSpec = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Target-class probability as pixels are deleted or inserted in the order of `maps`.

    Args:
        model: The classifier.
        inputs: Images (batch, channel, height, width); a pixel is all channels at one place.
        maps: Importance (batch, height, width); higher = removed/inserted earlier.
        target: Class per image; None = predicted class of the unperturbed image.
        n_steps: Points after the start, evenly spaced in pixel count (capped at the pixel count).
        baseline: Value of deleted pixels and of the empty image.
        seed: Seeds the order among tied map values.
        batch_size: Perturbed images per forward pass.
        check_finite: Raise DataError on NaN/inf in `inputs` or `maps`.
        output: Which of the model's outputs holds the logits (see `mechscope.capture.select_output`).

    Returns:
        (fractions (n_steps + 1,), deletion (batch, n_steps + 1), insertion (batch, n_steps + 1)).

    Raises:
        DataError: `inputs` or `maps` is malformed or holds NaN/inf (a NaN map has no ranking).
    """
    x = check_images(inputs, model, check_finite=check_finite)
    batch, _, height, width = x.shape
    if tuple(maps.shape) != (batch, height, width):
        raise DataError(f"maps must have shape {(batch, height, width)} to match the inputs; got {tuple(maps.shape)}.")
    if check_finite:
        check_tensor_finite(maps, "maps", skip_with="check_finite=False")
    for flag, value in (("n_steps", n_steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{flag} must be a positive integer; got {value!r}.")
    n_pixels = height * width
    steps = min(n_steps, n_pixels)
    # Pixels changed per point, computed on the CPU: a device's linspace may round a .5 the other way.
    counts = torch.linspace(0, n_pixels, steps + 1, device="cpu").round().long().to(x.device)
    rank = _pixel_ranks(maps.to(x.device).flatten(1), seed).view(batch, 1, height, width)
    empty = torch.full_like(x, float(baseline))
    deletion = torch.empty(steps + 1, batch, device=x.device)
    insertion = torch.empty(steps + 1, batch, device=x.device)
    per_chunk = max(1, batch_size // (2 * batch))
    with eval_mode(model), torch.no_grad(), explain_dtype_errors(model, x):
        index = resolve_target(target, model(x), output=output)
        for first in range(0, steps + 1, per_chunk):
            chunk = counts[first : first + per_chunk]
            mask = rank[None] < chunk.view(-1, 1, 1, 1, 1)  # (k, batch, 1, height, width): changed pixels
            deleted = torch.where(mask, empty, x)
            inserted = torch.where(mask, x, empty)
            batch_images = torch.cat([deleted, inserted]).flatten(0, 1)
            logits = select_output(channels_last_call(model, batch_images, lambda: model(batch_images)), output)
            probs = logits.softmax(dim=1).gather(1, index.repeat(2 * chunk.numel())[:, None]).view(2, -1, batch)
            deletion[first : first + chunk.numel()] = probs[0]
            insertion[first : first + chunk.numel()] = probs[1]
    fractions = counts.double() / n_pixels
    return fractions.float(), deletion.T.contiguous(), insertion.T.contiguous()


def area_under_curve(fractions: Tensor, curves: Tensor) -> Tensor:
    """Trapezoidal area under each curve (..., points) over `fractions` (points,)."""
    return torch.trapezoid(curves, fractions.to(curves), dim=-1)


def _pixel_ranks(maps: Tensor, seed: int) -> Tensor:
    """Rank of each pixel (batch, n), 0 = highest map value; ties in random order."""
    generator = torch.Generator().manual_seed(seed)
    shuffle = torch.rand(maps.shape, generator=generator, device="cpu").argsort(dim=1).to(maps.device)
    order = shuffle.gather(1, maps.gather(1, shuffle).argsort(dim=1, descending=True, stable=True))
    positions = torch.arange(maps.shape[1], device=maps.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)
