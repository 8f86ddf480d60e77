"""Objectives: what a feature visualisation maximises, as composable per-row scores.

An objective reads layer activations and returns one score per batch row, so one
optimisation renders many units at once: row i of `channel("relu2", [0, 3, 7])`
scores channel `[0, 3, 7][i]`. Objectives combine with `+`, `-`, unary `-`, and `*` or
`/` by numbers (after `lucent/optvis/objectives.py` and `micrograd/engine.py`); each
carries a readable `description`.

`table(acts)` scores every unit on every input, (batch, n_rows); the evidence step uses it
to find each unit's best dataset example. Objectives that couple rows (diversity) have none.

`channel`, `neuron` and `direction` read units along the layer's unit axis
(`mechscope.capture.units`): channels of (batch, channel, height, width), features of
(batch, pos, d_model) with the positions as their spatial axis, neurons of (batch, unit).
`render` and `evidence` pass a `LayerReader`, which infers the axes from the model's
modules; with a plain callable the axes come from the shape alone (3-D is a sequence), and
`axes=` overrides both.

Example:
    >>> objective = channel("relu2", range(16)) - 0.1 * layer("relu1")
    >>> objective.description
    'relu2 channels 0-15 - 0.1 * mean of relu1'
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mechscope.capture import UnitAxes, select_output, unit_axes
from mechscope.capture.outputs import OutputSpec, describe_output
from mechscope.capture.units import AxesSpec, layer_unit_axes
from mechscope.errors import ConfigError

__all__ = [
    "Activations",
    "LayerReader",
    "Objective",
    "Units",
    "channel",
    "direction",
    "diversity",
    "layer",
    "logit",
    "neuron",
    "prob",
]

Activations = Callable[[str | None], Tensor]
"""`acts(name)` returns a layer's output (batch, ...); `acts(None)` returns the model's output as
the model returned it (a tensor, or a dict, tuple or `ModelOutput` from which `logit` and
`prob` pick theirs with `output=`)."""

Units = int | Iterable[int]
"""One unit index or several (one per batch row)."""


class LayerReader:
    """An `Activations` lookup that also knows each layer's unit axes, from the model's modules.

    Args:
        read: `read(name)` returns a layer's output; `read(None)` the model's output.
        model: The model the layers belong to; None infers unit axes from shapes alone.
    """

    def __init__(self, read: Activations, model: nn.Module | None = None) -> None:
        self.read = read
        self.model = model

    def __call__(self, name: str | None) -> Tensor:
        return self.read(name)

    def unit_axes(self, name: str, shape: Sequence[int]) -> UnitAxes:
        """Unit axes of layer `name`, whose output has batched `shape`."""
        if self.model is None:
            return unit_axes(None, shape)
        return layer_unit_axes(self.model, name, shape)


class Objective:
    """A score per batch row that rendering maximises; combine with + - and scalar * /.

    Attributes:
        description: Readable text, e.g. "relu2 channel 3 + 0.5 * mean of relu1".
        layers: Layer names the objective reads (None stands for the model's output).
        units: The unit each batch row renders, or None when any number of rows works.
    """

    description: str = "objective"
    layers: frozenset[str | None] = frozenset()
    units: tuple[int, ...] | None = None

    @property
    def n_rows(self) -> int | None:
        """Batch rows the objective fixes (one per unit), or None when it fits any batch."""
        return None if self.units is None else len(self.units)

    def __call__(self, acts: Activations) -> Tensor:
        """Score each batch row; row i scores `units[i]`. Returns (batch,)."""
        table = self.table(acts)  # (batch, n_rows) or (batch, 1)
        if table.shape[1] == 1 and self.units is None:
            return table[:, 0]
        rows = _check_rows(self, table.shape[0], table.device)
        return table[rows, rows]

    def table(self, acts: Activations) -> Tensor:
        """Score every unit on every input: (batch, n_rows), or (batch, 1) when units is None."""
        raise NotImplementedError(f"{type(self).__name__} must implement table()")

    # -- algebra -------------------------------------------------------------------------------
    def __add__(self, other: Any) -> Objective:
        return _Sum.of([(1.0, self), (1.0, _as_term(other, "+"))])

    def __radd__(self, other: Any) -> Objective:
        return _Sum.of([(1.0, _as_term(other, "+")), (1.0, self)])

    def __sub__(self, other: Any) -> Objective:
        return _Sum.of([(1.0, self), (-1.0, _as_term(other, "-"))])

    def __rsub__(self, other: Any) -> Objective:
        return _Sum.of([(1.0, _as_term(other, "-")), (-1.0, self)])

    def __neg__(self) -> Objective:
        return _Sum.of([(-1.0, self)])

    def __mul__(self, other: Any) -> Objective:
        return _Sum.of([(_as_scalar(other, "*"), self)])

    def __rmul__(self, other: Any) -> Objective:
        return self.__mul__(other)

    def __truediv__(self, other: Any) -> Objective:
        scalar = _as_scalar(other, "/")
        if scalar == 0:
            raise ZeroDivisionError(f"Cannot divide the objective {self.description!r} by zero.")
        return _Sum.of([(1.0 / scalar, self)])

    def __rtruediv__(self, other: Any) -> Objective:
        raise TypeError(
            f"Cannot divide {type(other).__name__} by an Objective; objectives can only be divided by a number."
        )

    def __repr__(self) -> str:
        rows = "any" if self.n_rows is None else self.n_rows
        return f"Objective({self.description!r}, rows={rows})"


def channel(layer: str, units: Units, *, axes: AxesSpec | None = None) -> Objective:
    """Mean activation of units over their positions: channels over space, features over tokens.

    A unit of a linear layer (batch, unit) has no positions: its value is the score.

    Args:
        layer: Dotted layer name, as in `mechscope.capture`.
        units: Unit index along the unit axis, or several (row i renders `units[i]`).
        axes: The layer's unit axes (UnitAxes, kind or unit axis index); None infers them.

    Example:
        >>> channel("relu2", range(16))   # all 16 channels in one render
    """
    return _Channel(layer, units, axes)


def neuron(
    layer: str,
    units: Units,
    *,
    y: int | None = None,
    x: int | None = None,
    pos: int | None = None,
    axes: AxesSpec | None = None,
) -> Objective:
    """Activation of a unit at one position, or of a unit of a linear layer.

    Args:
        layer: Dotted layer name.
        units: Unit index along the unit axis, or several (one per row).
        y: Row of the position in a 2-D map; None takes the centre (height // 2).
        x: Column of the position in a 2-D map; None takes the centre (width // 2).
        pos: Position in a sequence or 1-D map; None takes the centre (length // 2).
        axes: The layer's unit axes (UnitAxes, kind or unit axis index); None infers them.
    """
    return _Neuron(layer, units, y, x, pos, axes)


def layer(name: str) -> Objective:
    """Mean activation of a whole layer ("DeepDream"); fits any number of rows."""
    return _LayerMean(name)


def logit(units: Units, *, layer: str | None = None, output: OutputSpec = None) -> Objective:
    """Pre-softmax class score.

    Args:
        units: Class index or several (one per row).
        layer: Layer holding the logits; None takes the model's output.
        output: Which of the model's outputs holds the logits when `layer` is None (see
            `mechscope.capture.select_output`): None (auto: a tensor, or the "logits"
            entry of a dict or `ModelOutput`), a key, an index or a callable.

    Raises:
        ConfigError: both `layer` and `output` are given.

    Example:
        >>> logit(3, output="logits")        # class 3 of a model returning {"logits": ..., ...}
    """
    return _Logit(layer, units, output)


def prob(units: Units, *, layer: str | None = None, output: OutputSpec = None) -> Objective:
    """Post-softmax class probability (raising it can mean lowering the other classes).

    Args:
        units: Class index or several (one per row).
        layer: Layer holding the logits; None takes the model's output.
        output: Which of the model's outputs holds the logits, as in `logit`.

    Raises:
        ConfigError: both `layer` and `output` are given.
    """
    return _Prob(layer, units, output)


def direction(layer: str, vectors: Tensor) -> Objective:
    """Projection of the activation vector onto directions in activation space.

    Conv and sequence activations are projected at every position and averaged over positions.

    Args:
        layer: Dotted layer name.
        vectors: (channel,) for one direction or (unit, channel) for one per row; each is
            scaled to unit length.
    """
    return _Direction(layer, vectors)


def diversity(layer: str) -> Objective:
    """Penalise rows for looking alike: minus each row's mean cosine similarity to the others.

    Conv layers compare Gram matrices of the channels (style, not position), as in Lucid.
    Rows are coupled, so a render with diversity differs from single-unit renders.
    """
    return _Diversity(layer)


# -- unit objectives ----------------------------------------------------------------------


class _UnitObjective(Objective):
    """Scores one unit per row from one layer; subclasses give `_table` and `_rows`."""

    kind = "unit"
    plural = ""  # irregular plural of `kind`, if any
    reads_unit_axis = False  # True: units lie along the layer's unit axis, not always on axis 1

    def __init__(self, layer_name: str | None, units: Units, axes: AxesSpec | None = None) -> None:
        if layer_name is not None and not isinstance(layer_name, str):
            raise ConfigError(f"Layer names are strings such as 'relu2', got {layer_name!r}.")
        self.axes = axes
        self.layer = layer_name
        self.unit_ids = _as_units(units, self.kind)
        self.units = self.unit_ids
        self.layers = frozenset([layer_name])
        where = "" if layer_name is None else f"{layer_name} "
        noun = self.kind if len(self.unit_ids) == 1 else self.plural or f"{self.kind}s"
        self.description = f"{where}{noun} {_format_units(self.unit_ids)}"

    def table(self, acts: Activations) -> Tensor:
        act = self._act(acts)
        return self._table(act, torch.tensor(self.unit_ids, device=act.device))

    def __call__(self, acts: Activations) -> Tensor:
        act = self._act(acts)
        _check_rows(self, act.shape[0], act.device)
        return self._rows(act, torch.tensor(self.unit_ids, device=act.device))

    def _act(self, acts: Activations) -> Tensor:
        act = acts(self.layer)
        if act.dim() < 2:
            raise ConfigError(
                f"{self._where()} has shape {tuple(act.shape)}; a {self.kind} objective needs "
                "(batch, unit) or (batch, channel, height, width) activations."
            )
        if self.reads_unit_axis:
            act = self._unit_axes(acts, act).units_first(act)  # (batch, unit, *positions)
        size = act.shape[1]
        bad = [u for u in self.unit_ids if not 0 <= u < size]
        if bad:
            raise ConfigError(
                f"{self.kind.capitalize()} {bad[0]} is out of range: {self._where()} has {size} "
                f"{'channels' if act.dim() > 2 else 'units'} (valid 0-{size - 1}); pick units in that range."
            )
        return act

    def _where(self) -> str:
        return "the model output" if self.layer is None else f"layer {self.layer!r}"

    def _unit_axes(self, acts: Activations, act: Tensor) -> UnitAxes:
        """`axes=` if given, else what a LayerReader infers from the model, else the shape alone."""
        if self.axes is not None:
            return unit_axes(None, act.shape, self.axes)
        if isinstance(acts, LayerReader) and self.layer is not None:
            return acts.unit_axes(self.layer, act.shape)
        return unit_axes(None, act.shape)

    def _table(self, act: Tensor, units: Tensor) -> Tensor:  # (batch, n_rows)
        raise NotImplementedError

    def _rows(self, act: Tensor, units: Tensor) -> Tensor:  # (batch,)
        raise NotImplementedError


class _Channel(_UnitObjective):
    kind = "channel"
    reads_unit_axis = True

    def _table(self, act: Tensor, units: Tensor) -> Tensor:
        return _space_mean(act[:, units])

    def _rows(self, act: Tensor, units: Tensor) -> Tensor:
        return _row_mean(act[torch.arange(act.shape[0], device=act.device), units])


class _Neuron(_UnitObjective):
    kind = "neuron"
    reads_unit_axis = True

    def __init__(
        self, layer_name: str, units: Units, y: int | None, x: int | None, pos: int | None, axes: AxesSpec | None
    ) -> None:
        super().__init__(layer_name, units, axes)
        self.y, self.x, self.pos = y, x, pos
        if y is not None or x is not None:
            self.description += f" at (y={y if y is not None else 'centre'}, x={x if x is not None else 'centre'})"
        if pos is not None:
            self.description += f" at position {pos}"

    def _position(self, act: Tensor) -> tuple[int, ...]:
        """The position read in units-first activations (batch, unit, *positions)."""
        if act.dim() == 3:
            if self.y is not None or self.x is not None:
                raise ConfigError(f"y= and x= address 2-D maps, but {self._where()} has one position axis; "
                                  "use pos= instead.")
            length = act.shape[2]
            p = length // 2 if self.pos is None else self.pos
            if not 0 <= p < length:
                raise ConfigError(
                    f"Neuron position {p} is outside {self._where()}, which has {length} positions; "
                    f"use 0 <= pos < {length}."
                )
            return (p,)
        if act.dim() != 4:
            raise ConfigError(
                f"{self._where()} has shape {tuple(act.shape)}; a neuron objective needs (batch, unit), "
                "(batch, pos, d_model) or (batch, channel, height, width) activations."
            )
        if self.pos is not None:
            raise ConfigError(f"pos= addresses sequences and 1-D maps, but {self._where()} has 2-D maps; "
                              "use y= and x= instead.")
        h, w = act.shape[-2:]
        y = h // 2 if self.y is None else self.y
        x = w // 2 if self.x is None else self.x
        if not (0 <= y < h and 0 <= x < w):
            raise ConfigError(
                f"Neuron position (y={y}, x={x}) is outside {self._where()}, whose maps are {h}x{w}; "
                f"use 0 <= y < {h} and 0 <= x < {w}."
            )
        return y, x

    def _table(self, act: Tensor, units: Tensor) -> Tensor:
        if act.dim() == 2:
            return act[:, units]
        index: tuple[slice | Tensor | int, ...] = (slice(None), units) + self._position(act)
        return act[index]

    def _rows(self, act: Tensor, units: Tensor) -> Tensor:
        rows = torch.arange(act.shape[0], device=act.device)
        if act.dim() == 2:
            return act[rows, units]
        index: tuple[Tensor | int, ...] = (rows, units) + self._position(act)
        return act[index]


class _Logit(_UnitObjective):
    kind = "logit"

    def __init__(self, layer_name: str | None, units: Units, output: OutputSpec = None) -> None:
        super().__init__(layer_name, units)
        if layer_name is not None and output is not None:
            raise ConfigError(
                f"output={describe_output(output)} picks among the model's outputs, but layer={layer_name!r} reads a "
                "layer; pass one of them."
            )
        self.output = output
        if output is not None:
            self.description += f" of output {describe_output(output)}"

    def _act(self, acts: Activations) -> Tensor:
        if self.layer is not None:
            return super()._act(acts)
        return super()._act(lambda name: select_output(acts(name), self.output))

    def _table(self, act: Tensor, units: Tensor) -> Tensor:
        return _space_mean(act)[:, units]

    def _rows(self, act: Tensor, units: Tensor) -> Tensor:
        return _gather(_space_mean(act), units)


class _Prob(_Logit):
    kind = "probability"
    plural = "probabilities"

    def _table(self, act: Tensor, units: Tensor) -> Tensor:
        return F.softmax(_space_mean(act), dim=1)[:, units]

    def _rows(self, act: Tensor, units: Tensor) -> Tensor:
        return _gather(F.softmax(_space_mean(act), dim=1), units)


class _Direction(_UnitObjective):
    kind = "direction"

    def __init__(self, layer_name: str, vectors: Tensor) -> None:
        if not isinstance(vectors, Tensor) or vectors.dim() not in (1, 2) or vectors.numel() == 0:
            raise ConfigError(
                f"direction vectors must be a (channel,) or (unit, channel) tensor, got "
                f"{tuple(vectors.shape) if isinstance(vectors, Tensor) else type(vectors).__name__}."
            )
        matrix = vectors.detach().float().reshape(-1, vectors.shape[-1])
        norms = matrix.norm(dim=1, keepdim=True)
        if bool((norms == 0).any()):
            raise ConfigError("direction vectors must be non-zero; a zero vector has no direction.")
        super().__init__(layer_name, range(matrix.shape[0]))
        self.vectors = matrix / norms  # (unit, channel)

    def _act(self, acts: Activations) -> Tensor:
        act = acts(self.layer)
        if act.dim() >= 2:
            act = self._unit_axes(acts, act).units_first(act)  # (batch, unit, *positions)
        if act.dim() < 2 or act.shape[1] != self.vectors.shape[1]:
            raise ConfigError(
                f"direction vectors have {self.vectors.shape[1]} entries but {self._where()} has "
                f"{act.shape[1] if act.dim() > 1 else 'no'} channels (shape {tuple(act.shape)}); "
                "give one entry per channel."
            )
        return act

    def _table(self, act: Tensor, units: Tensor) -> Tensor:
        vectors = self.vectors.to(act)
        return _space_mean(torch.einsum("bc...,nc->bn...", act, vectors))

    def _rows(self, act: Tensor, units: Tensor) -> Tensor:
        vectors = self.vectors.to(act)
        return _row_mean(torch.einsum("bc...,bc->b...", act, vectors))


# -- objectives that fit any batch --------------------------------------------------------


class _LayerMean(Objective):
    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise ConfigError(f"Layer names are strings such as 'relu2', got {name!r}.")
        self.layer = name
        self.layers = frozenset([name])
        self.description = f"mean of {name}"

    def table(self, acts: Activations) -> Tensor:
        act = acts(self.layer)
        return act.flatten(1).mean(1, keepdim=True)


class _Diversity(Objective):
    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise ConfigError(f"Layer names are strings such as 'relu2', got {name!r}.")
        self.layer = name
        self.layers = frozenset([name])
        self.description = f"diversity of {name}"

    def __call__(self, acts: Activations) -> Tensor:
        act = acts(self.layer)
        batch = act.shape[0]
        if batch < 2:
            return act.new_zeros(batch)
        if act.dim() > 2:
            flat = act.flatten(2)  # (batch, channel, position)
            features = torch.bmm(flat, flat.transpose(1, 2)).flatten(1)  # Gram matrices (batch, channel*channel)
        else:
            features = act
        unit = F.normalize(features, dim=1)
        similarity = unit @ unit.T  # (batch, batch)
        return -(similarity.sum(1) - similarity.diagonal()) / (batch - 1)

    def table(self, acts: Activations) -> Tensor:
        raise ConfigError(
            f"{self.description!r} couples the rows of a batch, so it has no per-input score table; "
            "measure evidence with the unit objectives alone."
        )


class _Sum(Objective):
    """Weighted sum of objectives plus a constant."""

    def __init__(self, terms: tuple[tuple[float, Objective], ...], constant: float) -> None:
        self.terms = terms
        self.constant = constant
        self.layers = frozenset().union(*(obj.layers for _, obj in terms)) if terms else frozenset()
        sized = [obj for _, obj in terms if obj.units is not None]
        for obj in sized[1:]:
            if obj.n_rows != sized[0].n_rows:
                raise ConfigError(
                    f"Cannot combine {sized[0].description!r} ({sized[0].n_rows} rows) with "
                    f"{obj.description!r} ({obj.n_rows} rows): objectives that fix units need the same "
                    "number of rows; select as many units in each."
                )
        self.units = sized[0].units if sized else None
        self.description = _describe(terms, constant)

    @classmethod
    def of(cls, terms: Sequence[tuple[float, Objective | float]]) -> Objective:
        flat: list[tuple[float, Objective]] = []
        constant = 0.0
        for weight, term in terms:
            if isinstance(term, _Sum):
                flat.extend((weight * w, obj) for w, obj in term.terms)
                constant += weight * term.constant
            elif isinstance(term, Objective):
                flat.append((weight, term))
            else:
                constant += weight * float(term)
        return cls(tuple(flat), constant)

    def __call__(self, acts: Activations) -> Tensor:
        total: Tensor | None = None
        for weight, obj in self.terms:
            value = weight * obj(acts)
            total = value if total is None else total + value
        if total is None:
            raise ConfigError("An objective made of constants alone has nothing to optimise.")
        return total + self.constant

    def table(self, acts: Activations) -> Tensor:
        total: Tensor | None = None
        for weight, obj in self.terms:
            value = weight * obj.table(acts)
            total = value if total is None else total + value
        if total is None:
            raise ConfigError("An objective made of constants alone has nothing to score.")
        return total + self.constant


# -- helpers ------------------------------------------------------------------------------


def _as_scalar(value: Any, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Objectives can only be scaled by a number with {op!r}, got {type(value).__name__}; "
            "combine objectives with + and -."
        )
    return float(value)


def _as_term(value: Any, op: str) -> Objective | float:
    if isinstance(value, Objective):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Objectives combine with {op!r} only with other objectives or numbers, got {type(value).__name__}."
        )
    return float(value)


def _as_units(units: Units, kind: str) -> tuple[int, ...]:
    values: Any = units.flatten().tolist() if isinstance(units, Tensor) else units
    if _is_int(values):
        values = [values]
    if not isinstance(values, Iterable) or isinstance(values, (str, bytes)):
        raise ConfigError(f"{kind} units must be an int or a sequence of ints, got {units!r}.")
    values = list(values)
    if not values:
        raise ConfigError(f"A {kind} objective needs at least one unit, got {units!r}.")
    for value in values:
        if not _is_int(value):
            raise ConfigError(f"{kind} units must be integers, got {value!r} in {units!r}.")
    return tuple(int(v) for v in values)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_rows(objective: Objective, batch: int, device: torch.device) -> Tensor:
    if objective.n_rows is not None and batch != objective.n_rows:
        raise ConfigError(
            f"{objective.description!r} renders {_count(objective.n_rows, 'unit')}, one per row, but the batch "
            f"has {_count(batch, 'row')}; render with as many rows as units."
        )
    return torch.arange(batch, device=device)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _space_mean(values: Tensor) -> Tensor:
    """Average every dimension after the first two: (batch, n, ...) -> (batch, n); 1-D rows pass."""
    return values.flatten(2).mean(2) if values.dim() > 2 else values


def _row_mean(values: Tensor) -> Tensor:
    """Average every dimension after the first: (batch, ...) -> (batch,)."""
    return values.flatten(1).mean(1) if values.dim() > 1 else values


def _gather(values: Tensor, units: Tensor) -> Tensor:
    return values[torch.arange(values.shape[0], device=values.device), units]


def _format_units(units: tuple[int, ...]) -> str:
    if len(units) > 2 and list(units) == list(range(units[0], units[0] + len(units))):
        return f"{units[0]}-{units[-1]}"
    return ", ".join(str(u) for u in units)


def _format_weight(weight: float) -> str:
    return f"{weight:g}"


def _describe(terms: tuple[tuple[float, Objective], ...], constant: float) -> str:
    parts: list[str] = []
    for weight, obj in terms:
        text = obj.description if not isinstance(obj, _Sum) else f"({obj.description})"
        magnitude = abs(weight)
        body = text if magnitude == 1 else f"{_format_weight(magnitude)} * {text}"
        if not parts:
            parts.append(f"-{body}" if weight < 0 else body)
        else:
            parts.append(f"{'-' if weight < 0 else '+'} {body}")
    if constant or not parts:
        if not parts:
            parts.append(_format_weight(constant))
        else:
            parts.append(f"{'-' if constant < 0 else '+'} {_format_weight(abs(constant))}")
    return " ".join(parts)
