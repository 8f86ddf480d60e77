"""Probe layer by layer: where in the network each target becomes decodable.

For every layer and every target group, a separate probe (default: LinearProbe) is
fitted on that layer's activations and scored held-out over several seeds, with the
majority baseline, the control task and an untrained copy, as in `evaluate_probe`.

Example:
    >>> table = probe_by_layer(model, data.x_test, {"a": a, "b": b, "output": out},
    ...                        ["hidden.0", "hidden.2", "hidden.4"], types=pairs)
    >>> print(table.format())
    >>> save_figure(table.plot(), "by_layer.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.capture import ActivationStore, LayerSpec, record, resolve_layers
from mechscope.errors import DataError
from mechscope.probes.base import Probe
from mechscope.probes.control import input_types, untrained_copy
from mechscope.probes.linear import LinearProbe
from mechscope.probes.rigor import Split, evaluate_probe
from mechscope.probes.targets import GroupKind, Targets, TargetsLike, as_targets

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["LayerScore", "LayerProbeTable", "probe_by_layer"]


@dataclass(frozen=True)
class LayerScore:
    """Held-out score of one probe on one layer for one target group (means and stds over seeds).

    Attributes:
        layer: Layer name.
        target: Target group name.
        kind: "categorical" (scores are accuracies) or "continuous" (scores are R^2).
        score: Mean held-out score on the real task.
        score_std: Its standard deviation over seeds.
        baseline: Majority-class accuracy (R^2 of the training mean for continuous groups).
        control: Mean score on the control task.
        selectivity: score - control (mean over seeds).
        untrained: Mean score on an untrained copy (None when not run).
    """

    layer: str
    target: str
    kind: GroupKind
    score: float
    score_std: float
    baseline: float
    control: float
    selectivity: float
    untrained: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly copy."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class LayerProbeTable:
    """Scores for every (layer, target) pair.

    Attributes:
        rows: One LayerScore per layer and target, layers in order.
        layers: Layer names in order.
        targets: Target group names in order.
        probe: repr of the probe used.
        seeds: Seeds run.
    """

    rows: tuple[LayerScore, ...]
    layers: tuple[str, ...]
    targets: tuple[str, ...]
    probe: str
    seeds: tuple[int, ...]

    def get(self, layer: str, target: str) -> LayerScore:
        """The row of `layer` and `target`."""
        for row in self.rows:
            if row.layer == layer and row.target == target:
                return row
        raise DataError(
            f"no row for layer {layer!r} and target {target!r}; layers {self.layers}, targets {self.targets}."
        )

    def plot(self) -> Figure:
        """Held-out score by layer, one panel per target (see plots.probes.plot_accuracy_by_layer)."""
        from mechscope.plots.probes import plot_accuracy_by_layer  # plotting stays optional for the table

        return plot_accuracy_by_layer(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON: the probe, seeds, and one dict per row."""
        return {"probe": self.probe, "seeds": list(self.seeds), "rows": [row.to_dict() for row in self.rows]}

    def format(self) -> str:
        """A text table: one line per layer and target."""
        width = max(len(r.layer) for r in self.rows)
        lines = [
            f"{'layer':<{width}}  {'target':<10} {'score':>17} {'baseline':>9} {'control':>8} {'select.':>8} "
            f"{'untrained':>9}"
        ]
        for r in self.rows:
            untrained = "-" if r.untrained is None else f"{r.untrained:.3f}"
            lines.append(
                f"{r.layer:<{width}}  {r.target:<10} {r.score:>8.3f} +/- {r.score_std:.3f} {r.baseline:>9.3f} "
                f"{r.control:>8.3f} {r.selectivity:>8.3f} {untrained:>9}"
            )
        return "\n".join(lines)


def probe_by_layer(
    model: nn.Module,
    inputs: Tensor,
    targets: TargetsLike,
    layers: LayerSpec,
    *,
    probe: Probe | None = None,
    types: Tensor | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.2,
    split: Split = "examples",
    use_untrained: bool = True,
    progress: bool = False,
) -> LayerProbeTable:
    """Fit one probe per layer and per target group and score each held-out with controls.

    Args:
        model: Any module.
        inputs: Model inputs (batch, ...).
        targets: Target groups, one value per input.
        layers: Layers to probe (their outputs, flattened).
        probe: Unfitted probe, cloned for every fit; default LinearProbe().
        types: Input type per example for the control task; default distinct rows of `inputs`.
        seeds: Seeds of the repeated splits.
        test_fraction: Held-out share of each split.
        split: "examples" or "types" (hold out whole input types; see evaluate_probe).
        use_untrained: Also probe untrained copies (fresh weights per seed).
        progress: Show a progress bar over layers and targets.

    Returns:
        LayerProbeTable (plot it with mechscope.plots.probes.plot_accuracy_by_layer).

    Raises:
        LayerNameError: A layer does not exist.
        DataError: Lengths differ, activations hold NaN/inf, or a group has one class.
    """
    names = resolve_layers(model, layers)
    real = as_targets(targets)
    if len(real) != inputs.shape[0]:
        raise DataError(f"inputs hold {inputs.shape[0]} examples but the targets {len(real)}; pass one per input.")
    probe = LinearProbe() if probe is None else probe
    source = inputs if types is None else types
    # Type ids once for all fits (distinct rows of the inputs, or the given types).
    type_ids = source if source.dim() == 1 and not source.is_floating_point() else input_types(source)
    trained = record(model, names, inputs, batch_size=4096, progress=False)
    copies: dict[int, ActivationStore] = {}
    if use_untrained:
        copies = {
            s: record(untrained_copy(model, seed=s), names, inputs, batch_size=4096, progress=False) for s in seeds
        }
    kinds = real.kinds
    rows = []
    n_fits = len(names) * len(real.names)
    bar = tqdm(total=n_fits, desc="probe by layer", disable=None if progress else True, leave=False)
    with bar:
        for layer in names:
            acts = _flat(trained, layer)
            for group in real:

                def untrained(seed: int, layer: str = layer) -> Tensor:
                    return _flat(copies[seed], layer)

                report = evaluate_probe(
                    probe,
                    acts,
                    Targets([group]),
                    types=type_ids,
                    seeds=seeds,
                    test_fraction=test_fraction,
                    untrained=untrained if use_untrained else None,
                    split=split,
                )
                name = group.name
                rows.append(
                    LayerScore(
                        layer=layer,
                        target=name,
                        kind=kinds[name],
                        score=report.heads[name],
                        score_std=report.heads_std[name],
                        baseline=report.baseline_heads[name],
                        control=report.control_heads[name],
                        selectivity=report.selectivity_heads[name],
                        untrained=None if report.untrained_heads is None else report.untrained_heads[name],
                    )
                )
                bar.update()
    return LayerProbeTable(tuple(rows), tuple(names), tuple(real.names), repr(probe), tuple(int(s) for s in seeds))


def _flat(store: ActivationStore, layer: str) -> Tensor:
    value = store.act(layer)
    return value.reshape(value.shape[0], -1).float()
