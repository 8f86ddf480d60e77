"""Render: optimise input images by gradient ascent on an objective, many units per batch.

One optimisation renders every row of a batched objective (e.g. all channels of a layer),
which is far cheaper per unit than one optimisation per unit (`bench/featurevis_batched.py`).
Rows never interact unless the objective couples them (diversity): the loss is a sum of
per-row scores, Adam updates elementwise, gradient normalisation is per row, and each row
draws its start and its transformations from a generator seeded by (seed, unit, occurrence).
So rendering channel 5 alone starts and moves like row 5 among all channels. Batched and
single convolutions round differently (~1e-7); the pictures agree to 1e-6 over tens of
steps, but over hundreds Adam can amplify the difference for a few rows (a near-zero
gradient changes sign) and they settle in another, similarly good optimum.

Example:
    >>> space = InputSpace.from_data(data.x_train)
    >>> result = render(model, channel("relu2", range(16)), space, config=RenderConfig(steps=256))
    >>> result.images.shape, result.trace.shape
    (torch.Size([16, 1, 28, 28]), torch.Size([256, 16]))
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.capture import get_layer
from mechscope.capture.modes import eval_mode, model_device
from mechscope.errors import ConfigError
from mechscope.featurevis._forward import forward_until, reader
from mechscope.featurevis.objectives import Activations, LayerReader, Objective
from mechscope.featurevis.param import ImageFn, Init, InputSpace, ParamFactory, fft_image, pixel_image
from mechscope.featurevis.transforms import Transform

__all__ = ["ParamName", "RenderConfig", "RenderResult", "render", "row_seeds"]

ParamName = Literal["fft", "pixel"]


@dataclass(frozen=True)
class RenderConfig:
    """Settings of one `render` call.

    Example:
        >>> RenderConfig(steps=512, lr=0.05, param="pixel", init="zeros", normalize_grad=True)
    """

    steps: int = 256  # Adam steps
    lr: float = 0.05  # Adam learning rate
    seed: int = 0  # seeds each row's start and transformations (per row: batch size does not matter)
    param: ParamName = "pixel"  # "pixel", or "fft" (1/f spectrum); pixels reached more units on digit CNNs
    init: Init = "random"  # "random" (small noise) or "zeros" (flat mid-range image)
    normalize_grad: bool = False  # divide each row's gradient by its norm every step (seed 004's trick)
    relu_leak: float = 0.1  # gradient share through objective ReLUs below zero, fading linearly to 0

    batch: int | None = None  # rows when the objective fixes no units (layer, diversity); None: 1
    restarts: int = 1  # starts per unit, each from its own seed; the one reaching the highest activation is kept

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {self.steps!r}.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive finite number, got {self.lr!r}; e.g. lr=0.05.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}.")
        if self.param not in get_args(ParamName):
            raise ConfigError(f"param must be one of {get_args(ParamName)!r}, got {self.param!r}.")
        if self.init not in get_args(Init):
            raise ConfigError(f"init must be one of {get_args(Init)!r}, got {self.init!r}.")
        if not (isinstance(self.relu_leak, (int, float)) and 0 <= self.relu_leak <= 1):
            raise ConfigError(f"relu_leak must be in [0, 1], got {self.relu_leak!r}.")
        if isinstance(self.restarts, bool) or not isinstance(self.restarts, int) or self.restarts < 1:
            raise ConfigError(f"restarts must be a positive integer, got {self.restarts!r}.")
        if self.batch is not None and (isinstance(self.batch, bool) or not isinstance(self.batch, int)
                                       or self.batch < 1):
            raise ConfigError(f"batch must be a positive integer or None, got {self.batch!r}.")


@dataclass(frozen=True)
class RenderResult:
    """Rendered images and how the objective rose.

    Attributes:
        images: (batch, channel, height, width) in the data's valid range (not normalised).
        trace: (steps, batch) per-row objective at each step (on the transformed images).
        activation: (batch,) per-row objective on the final, untransformed images.
        units: Unit rendered in each row (None for objectives that fix none).
        description: The objective's description.
        seconds: Wall time of the optimisation.
    """

    json_skip: ClassVar[frozenset[str]] = frozenset({"trace"})  # JSON: its first and last steps only
    json_extra: ClassVar[tuple[str, ...]] = ("trace_first", "trace_last", "steps")

    images: Tensor
    trace: Tensor
    activation: Tensor
    units: tuple[int, ...] | None
    description: str
    seconds: float

    @property
    def steps(self) -> int:
        """Optimisation steps run."""
        return int(self.trace.shape[0])

    @property
    def trace_first(self) -> Tensor:
        """(batch,) per-row objective at the first step."""
        return self.trace[0]

    @property
    def trace_last(self) -> Tensor:
        """(batch,) per-row objective at the last step."""
        return self.trace[-1]


def render(
    model: nn.Module,
    objective: Objective,
    space: InputSpace,
    *,
    config: RenderConfig | None = None,
    transforms: Transform | None = None,
    param: ParamFactory | None = None,
    progress: bool = True,
) -> RenderResult:
    """Maximise `objective` over input images with Adam; one unit per batch row.

    Args:
        model: Any module taking (batch, channel, height, width) images; it is put in eval
            mode for the render and restored afterwards; its weights are not changed.
        objective: What to maximise, e.g. `channel("relu2", range(16))`.
        space: Image shape, valid range and normalisation (`InputSpace.from_data(x)`).
        config: Steps, learning rate, seed, parameterisation; see `RenderConfig`.
        transforms: Random transformations applied before every forward pass, e.g.
            `standard_transforms(28)`; None renders without.
        param: Custom parameterisation, called as `param(batch, seeds=..., device=...)`
            (e.g. `functools.partial(fft_image, space, decorrelate=True)`); overrides
            `config.param` and `config.init`.
        progress: Show a progress bar over steps (only on a terminal).

    Returns:
        RenderResult with images, per-step trace and final activations.

    Raises:
        LayerNameError: the objective reads an unknown layer.
        ConfigError: a unit is out of range, or rows and units disagree.
    """
    config = RenderConfig() if config is None else config
    if not isinstance(objective, Objective):
        raise ConfigError(f"render needs an Objective such as channel('relu2', 3), got {type(objective).__name__}.")
    batch = objective.n_rows or config.batch or 1
    if objective.n_rows is not None and config.batch not in (None, objective.n_rows):
        raise ConfigError(
            f"config.batch={config.batch} disagrees with the {objective.n_rows} units of "
            f"{objective.description!r}; leave batch=None for objectives that fix units."
        )
    device = model_device(model)
    # Restart j of every unit is the j-th block of `batch` rows; block 0 is what restarts=1 renders.
    rows = batch * config.restarts
    units = None if objective.units is None else list(objective.units) * config.restarts
    init_seeds, noise_seeds = row_seeds(config.seed, units, rows)
    params, image_fn = _build_param(param, config, space, rows, init_seeds, device)
    noise = _row_noise(noise_seeds, config.steps, 0 if transforms is None else transforms.n_random).to(device)
    optimizer = torch.optim.Adam(params, lr=config.lr)
    names = sorted(name for name in objective.layers if name is not None)
    leaky = _relu_layers(model, names) if config.relu_leak > 0 else set()
    trace = torch.empty(config.steps, rows, device="cpu")

    start = time.perf_counter()
    with eval_mode(model):
        for step in tqdm(range(config.steps), desc="render", unit="step", disable=None if progress else True):
            images = image_fn()
            if transforms is not None:
                images = transforms(images, noise[:, step])
            leak = config.relu_leak * (1.0 - step / config.steps)  # fades out, so the end optimises the true objective
            scores = _scores(model, objective, space, images, names, batch, leaky if leak > 0 else None, leak)
            grads = torch.autograd.grad(scores.sum().neg(), params)
            if config.normalize_grad:
                grads = _normalize_per_row(grads)
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()
            trace[step] = scores.detach().cpu()
        with torch.no_grad():
            final = image_fn().detach()
            activation = _scores(model, objective, space, final, names, batch).cpu()
    seconds = time.perf_counter() - start
    best = activation.view(config.restarts, batch).argmax(dim=0) * batch + torch.arange(batch, device="cpu")  # (batch,)
    return RenderResult(
        final.cpu()[best], trace[:, best], activation[best], objective.units, objective.description, seconds
    )


def row_seeds(seed: int, units: Sequence[int] | None, batch: int) -> tuple[list[int], list[int]]:
    """Seeds of each row's start and of its transformation noise.

    A row is keyed by (seed, unit, how often that unit appeared in earlier rows); rows of
    objectives without units are keyed by their index. Rendering a unit alone therefore
    gives it the same randomness it gets in any batch.

    Returns:
        (init seeds, noise seeds), one per row.
    """
    keys: list[tuple[int, int, int]]
    if units is None:
        keys = [(1, i, 0) for i in range(batch)]
    else:
        seen: dict[int, int] = {}
        keys = []
        for unit in units:
            keys.append((0, unit, seen.get(unit, 0)))
            seen[unit] = seen.get(unit, 0) + 1
    states = [np.random.SeedSequence([seed, *key]).generate_state(2, dtype=np.uint64) for key in keys]
    return [int(s[0]) for s in states], [int(s[1]) for s in states]


def _scores(
    model: nn.Module,
    objective: Objective,
    space: InputSpace,
    images: Tensor,
    names: list[str],
    block: int,
    leaky: set[str] | None = None,
    leak: float = 0.0,
) -> Tensor:
    """Per-row objective over blocks of `block` rows; ReLU layers in `leaky` pass `leak` of the gradient on."""
    leaky = leaky or set()
    output, store = forward_until(
        model, space.normalize(images), names, need_output=None in objective.layers, inputs=bool(leaky), detach=False
    )
    read = reader(output, store)

    def acts(name: str | None) -> Tensor:
        act = read(name)
        if name in leaky:
            # Same values; the gradient also flows to the pre-activation, so a unit that is
            # below zero everywhere at the start still learns which way is up.
            pre = store.input(name)
            act = act + leak * (pre - pre.detach())
        return act

    return _per_block(objective, LayerReader(acts, model), images.shape[0], block)


def _per_block(objective: Objective, acts: Activations, rows: int, block: int) -> Tensor:
    """Score each block of `block` rows separately (one block per restart)."""
    if rows == block:
        return objective(acts)
    return torch.cat([objective(_slice(acts, start, block)) for start in range(0, rows, block)])


def _slice(acts: Activations, start: int, block: int) -> Activations:
    rows: Activations = lambda name: acts(name)[start : start + block]
    return LayerReader(rows, acts.model) if isinstance(acts, LayerReader) else rows


def _relu_layers(model: nn.Module, names: list[str]) -> set[str]:
    """Names whose module is a ReLU that keeps its input (not in place)."""
    return {name for name in names if isinstance(get_layer(model, name), nn.ReLU)
            and not get_layer(model, name).inplace}


def _build_param(
    param: ParamFactory | None,
    config: RenderConfig,
    space: InputSpace,
    batch: int,
    seeds: list[int],
    device: torch.device,
) -> tuple[list[Tensor], ImageFn]:
    if param is not None:
        return param(batch, seeds=seeds, device=device)
    if config.param == "fft":
        return fft_image(space, batch, init=config.init, seeds=seeds, device=device)
    return pixel_image(space, batch, init=config.init, seeds=seeds, device=device)


def _row_noise(seeds: list[int], steps: int, n_random: int) -> Tensor:
    """(batch, steps, n_random) uniforms, each row from its own CPU generator (the same draws on any device)."""
    if n_random == 0:
        return torch.zeros(len(seeds), steps, 0, device="cpu")
    return torch.stack([torch.rand(steps, n_random, generator=torch.Generator().manual_seed(s), device="cpu")
                        for s in seeds])


def _normalize_per_row(grads: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    squares = sum(g.flatten(1).pow(2).sum(1) for g in grads)
    norm = torch.as_tensor(squares).sqrt().clamp(min=1e-12)  # (batch,)
    return tuple(g / norm.view(-1, *([1] * (g.dim() - 1))) for g in grads)

