"""Model-parameter randomisation test (Adebayo et al., 2018, "Sanity Checks for Saliency Maps").

Re-initialise the model's layers one at a time from the top (logits) down, cumulatively, and
after each step compare every method's map with the map of the trained model by the Spearman
rank correlation of their absolute values. A map that explains what the model learned must
change when the learned weights are destroyed: its correlation falls toward 0 along the
cascade. Guided backprop is the known failure: its maps keep looking like the input while the
top layers are random.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.attribution.base import Attribution, check_images, eval_mode
from mechscope.attribution.targets import Target, resolve_target
from mechscope.capture import get_layer
from mechscope.capture.modes import model_device
from mechscope.capture.outputs import OutputSpec
from mechscope.data.dtypes import explain_dtype_errors
from mechscope.errors import ConfigError

__all__ = ["SanityResult", "cascading_randomization", "randomization_order", "spearman", "named_methods"]


@dataclass(frozen=True)
class SanityResult:
    """Spearman correlation with the trained model's maps after each randomisation step."""

    steps: list[str]  # layers re-initialised, cumulatively, top first: step i = steps[: i + 1] random
    spearman: dict[str, list[float]]  # method label -> mean Spearman(|map|, |trained map|) per step
    spearman_std: dict[str, list[float]]  # method label -> standard deviation over images per step
    passes: dict[str, bool]  # method label -> mean correlation over the steps < threshold
    threshold: float  # pass mark for the mean correlation
    n_images: int  # images averaged over


def cascading_randomization(
    model: nn.Module,
    methods: Mapping[str, Attribution] | Sequence[Attribution],
    inputs: Tensor,
    target: Target = None,
    *,
    threshold: float = 0.5,
    seed: int = 0,
    layers: Sequence[str] | None = None,
    check_finite: bool = True,
    output: OutputSpec = None,
) -> SanityResult:
    """Run the cascading parameter-randomisation sanity check for several methods.

    The model itself is never modified: a copy is re-initialised layer by layer (each layer's
    `reset_parameters()`, i.e. its initial distribution, under `seed`).

    Args:
        model: The trained classifier the methods were built for.
        methods: Methods by label, or a sequence (labelled by `label`).
        inputs: Images (batch, channel, height, width).
        target: Class per image; None = the trained model's predicted class (kept fixed
            for every randomised model).
        threshold: A method passes when its correlation, averaged over the steps (the area under
            the cascade curve), is below this: its maps lost most of their agreement with the
            trained model's maps while the weights were destroyed.
        seed: Seeds the re-initialisation.
        layers: Layers to randomise, top first; None = every module that owns parameters,
            in reverse registration order.
        check_finite: Raise DataError on NaN/inf in `inputs`, once, before any work.
        output: Which of the model's outputs holds the logits, for the predicted class
            (see `mechscope.capture.select_output`); give the methods the same `output=`.

    Returns:
        SanityResult with per-step mean correlations and pass/fail per method.

    Raises:
        DataError: `inputs` is not a float image batch, holds NaN/inf, or has another dtype
            than the model's parameters.

    Example:
        >>> result = cascading_randomization(model, [Saliency(model), GradCAM(model)], x_test[:64])
        >>> result.passes
        {'Saliency': True, 'Grad-CAM': True}
    """
    named = named_methods(methods)
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"threshold must be in (0, 1]; got {threshold!r}.")
    order = randomization_order(model) if layers is None else list(layers)
    for name in order:
        get_layer(model, name)  # unknown names fail before any work, with close matches
    if not order:
        raise ConfigError(f"{type(model).__name__} has no parameters to randomise; pass layers=[...].")
    x = check_images(inputs, model, check_finite=check_finite)
    with eval_mode(model), torch.no_grad(), explain_dtype_errors(model, x):
        index = resolve_target(target, model(x), output=output)
    # `x` is checked once here; the many attribute calls below need not repeat it.
    reference = {label: method.attribute(x, index, check_finite=False).abs() for label, method in named.items()}
    randomized = copy.deepcopy(model)
    means: dict[str, list[float]] = {label: [] for label in named}
    stds: dict[str, list[float]] = {label: [] for label in named}
    for step, name in enumerate(tqdm(order, desc="randomise", leave=False, disable=None)):
        _reinitialize(get_layer(randomized, name), seed + step)
        for label, method in named.items():
            maps = method.with_model(randomized).attribute(x, index, check_finite=False).abs()
            rho = spearman(reference[label].flatten(1), maps.flatten(1))
            means[label].append(float(rho.mean()))
            stds[label].append(float(rho.std(unbiased=False)))
    passes = {label: sum(means[label]) / len(means[label]) < threshold for label in named}
    return SanityResult(list(order), means, stds, passes, float(threshold), int(x.shape[0]))


def randomization_order(model: nn.Module) -> list[str]:
    """Modules that own parameters, last registered (nearest the logits) first."""
    owners = [
        name
        for name, module in model.named_modules()
        if name and next(module.parameters(recurse=False), None) is not None
    ]
    return owners[::-1]


def named_methods(methods: Mapping[str, Attribution] | Sequence[Attribution]) -> dict[str, Attribution]:
    """Label methods by `label` unless a mapping gives the labels; labels must be unique."""
    if isinstance(methods, Mapping):
        named = dict(methods)
    else:
        named = {}
        for method in methods:
            label = method.label
            if label in named:
                raise ConfigError(f"Two methods are labelled {label!r}; pass a dict {{label: method}} instead.")
            named[label] = method
    if not named:
        raise ConfigError("No attribution method given; pass e.g. [Saliency(model), GradCAM(model)].")
    for label, method in named.items():
        if not isinstance(method, Attribution):
            raise ConfigError(f"{label!r} is a {type(method).__name__}, not an Attribution method.")
    return named


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation between matching rows of `a` and `b` (batch, n), ties averaged.

    A constant row carries no ranking; its correlation is reported as 0.

    Example:
        >>> spearman(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[10.0, 30.0, 20.0]]))
        tensor([0.5000])
    """
    ra, rb = _average_ranks(a.double()), _average_ranks(b.double())
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    denominator = (ra.pow(2).sum(dim=1) * rb.pow(2).sum(dim=1)).sqrt()
    rho = (ra * rb).sum(dim=1) / torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, rho, torch.zeros_like(rho)).float()


def _average_ranks(x: Tensor) -> Tensor:
    """Ranks 0..n-1 along dim 1; tied values share the mean of their ranks."""
    values, order = x.sort(dim=1)
    n = x.shape[1]
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    group = starts.long().cumsum(dim=1) - 1  # (batch, n): tie-group id of each sorted entry
    position = torch.arange(n, dtype=x.dtype, device=x.device).expand_as(values)
    sums = torch.zeros_like(values).scatter_add_(1, group, position)
    counts = torch.zeros_like(values).scatter_add_(1, group, torch.ones_like(values))
    mean_rank = (sums / counts.clamp(min=1)).gather(1, group)
    return torch.empty_like(values).scatter_(1, order, mean_rank)


def _reinitialize(module: nn.Module, seed: int) -> None:
    """Redraw the module's own parameters under `seed`, on the CPU: the same draws on every device."""
    device = model_device(module)
    module.to("cpu")
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                return
            for param in module.parameters(recurse=False):
                std = float(param.std()) if param.numel() > 1 else 1.0
                param.normal_(0.0, std if std > 0 else 1.0)
    finally:
        module.to(device)
