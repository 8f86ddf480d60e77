"""How much work a report does (examples per unit, render steps, images, seeds, memory) and which output it explains."""

from __future__ import annotations

from dataclasses import dataclass, fields

from mechscope.capture.outputs import OutputSpec
from mechscope.errors import ConfigError

__all__ = ["ReportConfig"]

_ALLOWED = {  # what a field that may also be None must be, for the error message
    "max_units": "a positive integer or None (every unit)",
    "max_memory": "a positive number of bytes or None (no budget)",
}


@dataclass(frozen=True)
class ReportConfig:
    """Sizes of the analyses behind a report, and the explained output. `ReportConfig.quick()` is the fast preset.

    Example:
        >>> ReportConfig(featurevis_steps=64, k=6)
        >>> ReportConfig.quick(output="logits")     # a model returning {"logits": ..., "aux": ...}
        >>> ReportConfig(max_memory=2 << 30)        # the per-unit work holds at most 2 GB of activations
    """

    k: int = 9  # dataset examples shown per unit (top and bottom)
    max_units: int | None = 128  # units per layer that get a page (the first ones); None: every unit
    featurevis_steps: int = 128  # optimisation steps of the per-layer feature visualisation
    featurevis_restarts: int = 2  # starts per unit in the same batch; the best is kept
    attribution_images: int = 8  # rows of the attribution gallery
    faithfulness_images: int = 100  # test images behind the deletion/insertion curves
    sanity_images: int = 16  # test images behind the randomisation sanity check
    probe_seeds: int = 3  # seeds (splits, initialisations, controls) of every probe
    probe_inputs: int = 1000  # most inputs a probe is fitted on
    circuit_draws: int = 20  # random channel sets per class in the causal check
    ablation_inputs: int = 1000  # held-out inputs behind each unit's ablation effect
    article_probe: bool = True  # also run seed 000's convolutional probe on a ModularMLP
    output: OutputSpec = None  # which model output the sections explain (mechscope.capture.select_output); None: auto
    layers: tuple[str, ...] | None = None  # layers whose units get pages (`name` or `name:k`); None: chosen by rule
    max_memory: int | None = None  # bytes the per-unit work's activations may take at once; None: no budget

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "layers":
                if value is not None and (not isinstance(value, tuple) or not value
                                          or not all(isinstance(v, str) and v for v in value)):
                    raise ConfigError(f"ReportConfig.layers must be None or a non-empty tuple of layer names, "
                                      f"got {value!r}.")
                continue
            if f.name == "output":
                is_key = isinstance(value, (str, int)) and not isinstance(value, bool)
                if not (value is None or is_key or callable(value)):
                    raise ConfigError(
                        f"ReportConfig.output must be None, a key, an index or a callable, got {value!r}."
                    )
                continue
            if f.name in ("max_units", "max_memory") and value is None:
                continue
            if f.name == "article_probe":
                if not isinstance(value, bool):
                    raise ConfigError(f"ReportConfig.article_probe must be True or False, got {value!r}.")
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                allowed = _ALLOWED.get(f.name, "a positive integer")
                raise ConfigError(f"ReportConfig.{f.name} must be {allowed}, got {value!r}.")

    @classmethod
    def quick(cls, *, output: OutputSpec = None, layers: tuple[str, ...] | None = None) -> ReportConfig:
        """A fast look: fewer steps, images, seeds and draws; `output` and `layers` as in the fields."""
        return cls(
            k=6,
            max_units=64,
            featurevis_steps=32,
            featurevis_restarts=1,
            attribution_images=6,
            faithfulness_images=32,
            sanity_images=8,
            probe_seeds=1,
            probe_inputs=600,
            circuit_draws=5,
            ablation_inputs=300,
            article_probe=False,
            output=output,
            layers=layers,
        )
