"""Dataset examples: the top-k and bottom-k inputs of every channel or neuron, in one streaming pass.

A unit is read along the layer's unit axis (`mechscope.capture.units`): a channel of a conv
map, a feature of a sequence (batch, pos, d_model), a neuron of a dense layer. A unit with
positions (conv maps: pixels; sequences: tokens) scores an input by its largest activation
(or its mean) over them, and the position of that largest value is kept; a dense neuron
scores an input by its value. `StreamingTopK` keeps, per unit, the k best scores seen so far and
merges each new batch into them, so memory is O(k x units) whatever the dataset size: the
activations of the whole dataset are never held at once. The merge is a stable sort of the
running k rows stacked on the batch, so ties (common: a ReLU channel that stays at zero)
are broken by dataset order and the result equals a brute-force ranking of all scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.capture import UnitAxes, capture, unit_axes
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.names import LayerSpec, resolve_layers
from mechscope.capture.record import Inputs, iter_batches
from mechscope.capture.units import LayerAxes, layer_unit_axes
from mechscope.circuits.layers import ReceptiveField, receptive_field
from mechscope.data.finite import check_finite
from mechscope.cache import TaskCache
from mechscope.engine import Engine, LocalEngine
from mechscope.errors import ConfigError, DataError

__all__ = [
    "Reduce",
    "StreamingTopK",
    "RankedExamples",
    "LayerExamples",
    "DatasetExamples",
    "dataset_examples",
    "merge_examples",
    "unit_scores",
]

Reduce = Literal["max", "mean"]
"""How a unit with positions scores an input: its largest activation or its mean over positions."""


class StreamingTopK:
    """Running top-k (or bottom-k) per unit over batches of scores, in O(k x units) memory.

    Example:
        >>> top = StreamingTopK(3)
        >>> for first, scores in enumerate(batches):            # scores (batch, unit)
        ...     top.update(scores, torch.arange(first * 64, first * 64 + len(scores)))
        >>> top.values_.shape, top.indices_.shape                 # (k, unit) each
    """

    def __init__(self, k: int, *, largest: bool = True) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be a positive integer; got {k!r}.")
        self.k = k
        self.largest = largest
        self.values_: Tensor | None = None  # (m, unit), m <= k, best first
        self.indices_: Tensor | None = None  # (m, unit) dataset positions
        self.positions_: Tensor | None = None  # (m, unit, n_spatial) argmax positions, if given

    def update(self, scores: Tensor, indices: Tensor, positions: Tensor | None = None) -> None:
        """Merge one batch: `scores` (batch, unit), `indices` (batch,), `positions` (batch, unit, n_spatial)."""
        if scores.dim() != 2 or indices.shape != scores.shape[:1]:
            raise DataError(
                f"update takes scores (batch, unit) and indices (batch,); got {tuple(scores.shape)} and "
                f"{tuple(indices.shape)}."
            )
        batch_indices = indices.to(scores.device)[:, None].expand_as(scores)
        if self.values_ is None or self.indices_ is None:
            values, index = scores, batch_indices
            pos = positions
        else:
            # Running rows first: they hold earlier inputs, so the stable sort prefers them on ties.
            values = torch.cat([self.values_, scores])
            index = torch.cat([self.indices_, batch_indices])
            pos = None if positions is None or self.positions_ is None else torch.cat([self.positions_, positions])
        order = torch.sort(values, dim=0, descending=self.largest, stable=True).indices[: self.k]  # (k, unit)
        self.values_ = values.gather(0, order)
        self.indices_ = index.gather(0, order)
        if pos is not None:
            self.positions_ = pos.gather(0, order[:, :, None].expand(-1, -1, pos.shape[2]))


def unit_scores(
    activations: Tensor, reduce: Reduce = "max", *, axes: UnitAxes | None = None
) -> tuple[Tensor, Tensor | None]:
    """Score each input per unit and locate each unit's maximum.

    Args:
        activations: (batch, unit) for dense layers, (batch, channel, *spatial) for conv
            layers, (batch, pos, d_model) for sequences.
        reduce: "max" or "mean" over positions (layers with positions only).
        axes: Where the units and positions lie; None infers them from the shape alone
            (`mechscope.capture.unit_axes`: 3-D is a sequence, 4-D or more a conv map), so
            pass `unit_axes(module, shape)` or `UnitAxes(1, (2,), "conv")` for Conv1d maps.

    Returns:
        scores (batch, unit) and positions (batch, unit, n_spatial) of the maximum (for a
        sequence, n_spatial = 1: the token), or None for a dense layer.
    """
    if reduce not in ("max", "mean"):
        raise ConfigError(f"reduce must be 'max' or 'mean'; got {reduce!r}.")
    if activations.dim() < 2:
        raise DataError(f"activations need a batch and a unit dimension; got shape {tuple(activations.shape)}.")
    layout = unit_axes(None, activations.shape) if axes is None else axes
    if not layout.spatial:
        return layout.units_first(activations), None
    activations = layout.units_first(activations)  # (batch, unit, *spatial)
    spatial = tuple(activations.shape[2:])
    flat = activations.flatten(2)  # (batch, unit, positions)
    peak, where = flat.max(dim=2)
    scores = peak if reduce == "max" else flat.mean(dim=2)
    positions = torch.stack(torch.unravel_index(where, spatial), dim=-1)  # (batch, unit, n_spatial)
    return scores, positions


@dataclass(frozen=True)
class RankedExamples:
    """The k best (or worst) inputs of every unit."""

    values: Tensor  # (unit, k) scores, best first
    indices: Tensor  # (unit, k) int64 positions in the dataset
    positions: Tensor | None  # (unit, k, n_spatial) where each input peaks (sequences: the token); None if dense

    def of_unit(self, unit: int) -> dict[str, Tensor]:
        """One unit's `indices`, `values` and (when known) `positions`."""
        out = {"indices": self.indices[unit], "values": self.values[unit]}
        if self.positions is not None:
            out["positions"] = self.positions[unit]
        return out


@dataclass(frozen=True)
class LayerExamples:
    """Top-k and bottom-k dataset examples of every unit of one layer."""

    layer: str  # dotted layer name
    reduce: str  # "max" or "mean": how a unit with positions scores an input
    top: RankedExamples  # highest scores first
    bottom: RankedExamples  # lowest scores first
    activation_shape: tuple[int, ...]  # one input's activation shape at this layer
    receptive_field: ReceptiveField | None  # where a position looks in the input; None for dense and sequence layers
    n_inputs: int  # inputs streamed
    unit_axes: UnitAxes | None = None  # where the units and positions of the (batch, ...) output lie

    @property
    def n_units(self) -> int:
        """Channels (conv), features (sequence) or neurons (dense) of the layer."""
        return int(self.top.values.shape[0])

    @property
    def k(self) -> int:
        """Examples kept per unit (fewer than asked when the dataset is smaller)."""
        return int(self.top.values.shape[1])

    def windows(self, which: Literal["top", "bottom"] = "top") -> Tensor | None:
        """Input window around each example's maximum: (unit, k, n_spatial, 2) holding (first, size) per axis.

        Windows may reach past the image border; `crops` pads with zeros there. None when the
        receptive field is unknown (dense or sequence layer, or a module whose geometry mechscope
        cannot read).
        """
        ranked = self._ranked(which)
        field = self.receptive_field
        if field is None or ranked.positions is None:
            return None
        pos = ranked.positions.double()
        start = torch.tensor(field.start, dtype=torch.float64, device=pos.device)
        jump = torch.tensor(field.jump, dtype=torch.float64, device=pos.device)
        size = torch.tensor(field.size, dtype=torch.float64, device=pos.device)
        first = torch.round(start + pos * jump - (size - 1) / 2).long()
        return torch.stack([first, size.long().expand_as(first)], dim=-1)

    def crops(self, inputs: Tensor, which: Literal["top", "bottom"] = "top") -> Tensor:
        """Cut the receptive-field window around each example's maximum out of `inputs`.

        Args:
            inputs: The dataset the examples were collected from, (batch, channel, *spatial).
            which: "top" or "bottom" examples.

        Returns:
            (unit, k, channel, *window) crops, zero outside the image.

        Raises:
            DataError: The layer has no receptive field (dense layer) or `inputs` is not the dataset.
        """
        windows = self.windows(which)
        if windows is None:
            raise DataError(f"Layer {self.layer!r} has no spatial receptive field, so its examples cannot be cropped; "
                            "show the whole inputs instead.")
        if inputs.shape[0] != self.n_inputs:
            raise DataError(f"crops needs the {self.n_inputs} inputs the examples came from; got {inputs.shape[0]}.")
        ranked = self._ranked(which)
        size = windows[0, 0, :, 1].tolist()
        pad = max(size)
        chosen = inputs[ranked.indices.flatten()].detach().cpu()  # (unit * k, channel, *spatial)
        n_axes = len(size)
        padded = F.pad(chosen, [pad] * (2 * n_axes))
        flat = windows.reshape(-1, n_axes, 2)
        crops = []
        for item, window in zip(padded, flat):
            slices = tuple(slice(int(f) + pad, int(f) + pad + int(s)) for f, s in window)
            crops.append(item[(slice(None),) + slices])
        return torch.stack(crops).reshape(*ranked.indices.shape, inputs.shape[1], *size)

    def __json__(self) -> dict[str, Any]:
        """The layer's geometry, then per unit the indices, values and maximum positions of its examples."""
        return {
            "layer": self.layer,
            "reduce": self.reduce,
            "unit_axes": self.unit_axes,
            "k": self.k,
            "n_inputs": self.n_inputs,
            "activation_shape": self.activation_shape,
            "receptive_field": self.receptive_field,
            "units": [
                {"unit": u, "top": self.top.of_unit(u), "bottom": self.bottom.of_unit(u)} for u in range(self.n_units)
            ],
        }

    def _ranked(self, which: str) -> RankedExamples:
        if which not in ("top", "bottom"):
            raise ConfigError(f"which must be 'top' or 'bottom'; got {which!r}.")
        return self.top if which == "top" else self.bottom


@dataclass(frozen=True)
class DatasetExamples:
    """Dataset examples of several layers."""

    layers: dict[str, LayerExamples]  # layer name -> its examples

    def __getitem__(self, layer: str) -> LayerExamples:
        return self.layers[layer]


def dataset_examples(
    model: nn.Module,
    data: Inputs,
    layers: LayerSpec,
    *,
    k: int = 9,
    reduce: Reduce = "max",
    batch_size: int = 256,
    progress: bool = True,
    axes: LayerAxes = None,
    engine: Engine | None = None,
    cache: TaskCache | None = None,
) -> DatasetExamples:
    """Find the top-k and bottom-k inputs of every unit of `layers` in one pass over `data`.

    Args:
        model: Any module.
        data: Inputs (batch, ...), a Dataset or a DataLoader (iterated in order; indices count
            inputs in the order they arrive).
        layers: Layer names; conv outputs (batch, channel, *spatial) rank channels, sequence
            outputs (batch, pos, d_model) rank features, dense outputs (batch, unit) rank neurons.
        k: Examples kept per unit and direction.
        reduce: The score of a unit with positions: "max" (default) or "mean" over them.
        batch_size: Inputs per forward pass (tensors and Datasets).
        progress: Show a progress bar on a terminal.
        axes: Unit axes: None infers them per layer (`mechscope.capture.units.layer_unit_axes`); a
            UnitAxes, kind or unit axis index for all layers, or a mapping by layer name.
        engine: Where to run (`mechscope.engine`): with several workers a tensor `data` is cut
            into shards of whole batches, searched as tasks and merged exactly
            (`merge_examples`); the result equals the one-pass search, indices included.
        cache: Keep each shard's result (`mechscope.cache.TaskCache`): a tensor `data` is then
            searched in shards even in one process, and a rerun reuses the finished ones.

    Returns:
        DatasetExamples; `result[layer].top.indices[unit]` are the unit's top inputs.

    Raises:
        DataError: `data` is empty or holds NaN/inf (a tensor is checked once before any
            forward pass, a Dataset or DataLoader batch by batch).

    Example:
        >>> found = dataset_examples(model, data.x_test, ["relu1", "relu3"], k=9)
        >>> found["relu3"].top.indices[5], found["relu3"].crops(data.x_test).shape
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1; got {batch_size}.")
    if reduce not in ("max", "mean"):
        raise ConfigError(f"reduce must be 'max' or 'mean'; got {reduce!r}.")
    names = resolve_layers(model, layers)
    if isinstance(data, Tensor):
        check_finite(data, "data")
    options = _Options(names, k, reduce, batch_size, axes)
    sharding = cache is not None or (engine is not None and engine.workers > 1)
    if sharding and isinstance(data, Tensor) and data.shape[0] > batch_size:
        return _sharded(model, data, options, engine or LocalEngine(), cache)
    return _stream(model, data, options, first=0, progress=progress)


def merge_examples(parts: Sequence[DatasetExamples]) -> DatasetExamples:
    """Merge the examples of consecutive shards of one dataset, in dataset order, into the one-pass result.

    Each part's indices must already count from the start of the whole dataset. Ties keep
    dataset order (earlier parts first), as the one-pass search does, so the merge equals
    `dataset_examples` over the whole dataset exactly, indices included.

    Raises:
        DataError: no parts, or parts of different layers or shapes.
    """
    if not parts:
        raise DataError("merge_examples needs at least one part.")
    merged: dict[str, LayerExamples] = {}
    for name, first in parts[0].layers.items():
        layers = [part.layers.get(name) for part in parts]
        if any(layer is None or layer.activation_shape != first.activation_shape for layer in layers):
            raise DataError(f"the parts disagree on layer {name!r}; merge shards of one search only.")
        chosen = [layer for layer in layers if layer is not None]
        merged[name] = replace(first, top=_merge_ranked([x.top for x in chosen], first.k, largest=True),
                               bottom=_merge_ranked([x.bottom for x in chosen], first.k, largest=False),
                               n_inputs=sum(x.n_inputs for x in chosen))
    return DatasetExamples(merged)


@dataclass(frozen=True)
class _Options:
    """What one search asks for (the same in every shard)."""

    names: list[str]
    k: int
    reduce: Reduce
    batch_size: int
    axes: LayerAxes


def _stream(model: nn.Module, data: Inputs, options: _Options, *, first: int, progress: bool) -> DatasetExamples:
    """One pass over `data`, whose first input is dataset position `first`."""
    rankings = {name: _LayerRanking(name, options.k) for name in options.names}
    batches, total = iter_batches(data, options.batch_size)
    device = model_device(model)
    seen = 0
    with eval_mode(model), torch.no_grad():
        bar = tqdm(batches, desc="dataset examples", leave=False, disable=None if progress else True,
                   total=None if total is None else -(-total // options.batch_size))
        for number, batch in enumerate(bar):
            if not isinstance(data, Tensor):
                check_finite(batch, f"data (batch {number}, from example {seen})")
            batch = batch.to(device)
            with capture(model, options.names, check_finite=False) as store:
                model(batch)
            indices = torch.arange(first + seen, first + seen + batch.shape[0], device=device)
            for name, ranking in rankings.items():
                ranking.update(model, store.act(name), tuple(batch.shape[1:]), indices, reduce=options.reduce,
                               axes=options.axes)
            seen += batch.shape[0]
    if seen == 0:
        raise DataError("dataset_examples got an empty dataset; pass at least one input.")
    return DatasetExamples({name: ranking.result(options.reduce, seen) for name, ranking in rankings.items()})


def _sharded(model: nn.Module, data: Tensor, options: _Options, engine: Engine,
             cache: TaskCache | None) -> DatasetExamples:
    """Shards of whole batches (so every input meets the same batch as in one pass), searched as tasks, merged."""
    n, per_batch = int(data.shape[0]), options.batch_size
    batches = -(-n // per_batch)
    per_shard = -(-batches // (2 * engine.workers)) * per_batch  # two shards per worker
    shards = [(data[start:start + per_shard], start, options) for start in range(0, n, per_shard)]
    return merge_examples(engine.map(_shard_task, shards, shared=model, cache=cache, desc="dataset examples"))


def _shard_task(model: nn.Module, shard: tuple[Tensor, int, _Options]) -> DatasetExamples:
    data, first, options = shard
    return _stream(model, data, options, first=first, progress=False)


def _merge_ranked(parts: list[RankedExamples], k: int, *, largest: bool) -> RankedExamples:
    values = torch.cat([p.values for p in parts], dim=1)  # (unit, sum of k), parts in dataset order
    indices = torch.cat([p.indices for p in parts], dim=1)
    order = torch.sort(values, dim=1, descending=largest, stable=True).indices[:, :k]
    positions = None
    if all(p.positions is not None for p in parts):
        stacked = torch.cat([p.positions for p in parts if p.positions is not None], dim=1)
        positions = stacked.gather(1, order[:, :, None].expand(-1, -1, stacked.shape[2]))
    return RankedExamples(values.gather(1, order), indices.gather(1, order), positions)


class _LayerRanking:
    """The running top-k and bottom-k of one layer's units, with the layout read from the first batch."""

    def __init__(self, name: str, k: int) -> None:
        self.name = name  # dotted layer name
        self.top = StreamingTopK(k, largest=True)
        self.bottom = StreamingTopK(k, largest=False)
        self.shape: tuple[int, ...] | None = None  # one input's activation shape
        self.layout: UnitAxes | None = None  # where the units and positions lie
        self.field: ReceptiveField | None = None  # where a position looks in the input (conv layers)

    def update(
        self, model: nn.Module, act: Tensor, input_shape: tuple[int, ...], indices: Tensor, *, reduce: Reduce,
        axes: LayerAxes,
    ) -> None:
        """Merge one batch's activations (batch, ...) of inputs at dataset positions `indices` into the rankings."""
        if self.layout is None:
            self.shape = tuple(act.shape[1:])
            self.layout = layer_unit_axes(model, self.name, act.shape, axes)
            self.field = receptive_field(model, self.name, input_shape, self.shape) \
                if self.layout.kind == "conv" else None
        scores, positions = unit_scores(act, reduce, axes=self.layout)
        self.top.update(scores, indices, positions)
        self.bottom.update(scores, indices, positions)

    def result(self, reduce: str, n_inputs: int) -> LayerExamples:
        """The layer's examples after `n_inputs` streamed inputs."""
        if self.shape is None:
            raise DataError("no scores were streamed; pass at least one input.")
        return LayerExamples(
            layer=self.name,
            reduce=reduce,
            top=_finish(self.top),
            bottom=_finish(self.bottom),
            activation_shape=self.shape,
            receptive_field=self.field,
            n_inputs=n_inputs,
            unit_axes=self.layout,
        )


def _finish(acc: StreamingTopK) -> RankedExamples:
    if acc.values_ is None or acc.indices_ is None:
        raise DataError("no scores were streamed; pass at least one input.")
    positions = None if acc.positions_ is None else acc.positions_.transpose(0, 1).cpu()
    return RankedExamples(acc.values_.t().cpu(), acc.indices_.t().cpu(), positions)
