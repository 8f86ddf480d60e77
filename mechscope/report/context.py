"""What every section of a report needs to know about the model, its data and the site."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture import LayerInfo, describe_layers, layer_names, select_output
from mechscope.capture.modes import model_device
from mechscope.capture.names import resolve_layers
from mechscope.capture.outputs import describe_output
from mechscope.circuits.layers import conv_layers, depth_layers
from mechscope.data import DataBundle
from mechscope.cache import TaskCache
from mechscope.engine import Engine, LocalEngine
from mechscope.errors import ConfigError, UnsupportedModelError
from mechscope.models.checkpoint import Checkpoint, load_checkpoint
from mechscope.report.config import ReportConfig
from mechscope.report.site import Site

__all__ = ["ReportContext", "make_context", "unit_layers", "Source"]

Source = str | os.PathLike[str] | Checkpoint | nn.Module
"""What a report is built from: a checkpoint folder, a loaded Checkpoint, or a model."""

# Elementwise nonlinearities: their outputs are the "units" a report shows page by page.
_NONLINEAR = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
)

_ACTIVATION_WORDS = ("gelu", "relu", "silu", "swish", "mish", "activation")


@dataclass
class ReportContext:
    """The model under report, its data and metadata, and the site: what every section reads."""

    model: nn.Module  # in eval mode
    data: DataBundle | None  # train/test split, or None when none is known
    name: str  # what the report calls the model
    model_class: str  # class name
    config: dict[str, Any]  # model configuration (empty for a plain module)
    metrics: dict[str, Any]  # recorded train/test metrics
    history: list[dict[str, Any]]  # recorded training curve
    extra: dict[str, Any]  # anything else the checkpoint stored
    source: str | None  # checkpoint folder, if built from one
    settings: ReportConfig  # sizes of the analyses
    site: Site  # where pages go
    progress: bool  # show progress bars
    layers: list[LayerInfo] = field(default_factory=list)  # every named layer with its output shape
    unit_layers: list[str] = field(default_factory=list)  # layers whose units get pages, shallow first
    engine: Engine = field(default_factory=LocalEngine)  # where independent tasks run (mechscope.engine)
    cache: TaskCache | None = None  # where finished tasks are kept (mechscope.cache); None: nowhere

    @property
    def example(self) -> Tensor | None:
        """A small batch of held-out inputs, or None without data."""
        return None if self.data is None else self.data.x_test[:2]

    @cached_property
    def is_image(self) -> bool:
        """True for image inputs (batch, channel, height, width) of floats."""
        return self.data is not None and self.data.x_test.dim() == 4 and self.data.x_test.is_floating_point()

    @cached_property
    def is_classifier(self) -> bool:
        """True when the data is classification and the explained output is (batch, n_classes) logits."""
        if self.data is None or self.data.task != "classification" or self.example is None:
            return False
        out = self.explained(self.example)
        return out.dim() == 2 and out.shape[1] == (self.data.n_classes or out.shape[1])

    def explained(self, inputs: Tensor) -> Tensor:
        """The model's explained output on `inputs`, without gradients, on the CPU: `settings.output` picks it.

        `inputs` move to the model's device first (the data stays on the CPU).

        Raises:
            UnsupportedModelError, ConfigError: the output is ambiguous or `settings.output`
                does not fit it; the message says to set `ReportConfig(output=...)`.
        """
        with torch.no_grad():
            value = self.model(inputs.to(model_device(self.model)))
        try:
            return select_output(value, self.settings.output).cpu()
        except (UnsupportedModelError, ConfigError) as err:
            raise type(err)(
                f"{err} For a report, set ReportConfig(output=...) (now {describe_output(self.settings.output)})."
            ) from err

    @cached_property
    def is_conv(self) -> bool:
        """True for an image model with at least one conv layer."""
        return self.is_image and bool(conv_layers(self.model))

    @property
    def class_names(self) -> tuple[str, ...]:
        """Readable class labels ("0", "1", ... when the data names none)."""
        if self.data is None or self.data.n_classes is None:
            return ()
        if self.data.class_names is not None:
            return tuple(str(c) for c in self.data.class_names)
        return tuple(str(c) for c in range(self.data.n_classes))

    @property
    def data_kind(self) -> str:
        """The data spec's kind ("modular", "function", "digits", ...) or "unknown"."""
        return "unknown" if self.data is None else str(self.data.spec.get("kind", "unknown"))

    def layer_info(self, name: str) -> LayerInfo | None:
        """The summary row of a layer, if it ran."""
        return next((row for row in self.layers if row.name == name), None)


def unit_layers(model: nn.Module, *, image: bool) -> list[str]:
    """Layers whose units a report shows one by one, shallowest first.

    Image models with conv layers: the activation after every conv, then any later
    elementwise nonlinearity (a dense hidden layer). Other models: every elementwise
    nonlinearity; when it is the last child of a block (ModularMLP's `hidden.0.act`),
    the block itself, whose output it is.
    """
    names = layer_names(model)
    modules = dict(model.named_modules())
    chosen: list[str] = []
    if image and conv_layers(model):
        chosen = list(depth_layers(model))
        last = max(names.index(n) for n in chosen if n in names) if chosen else -1
        names = names[last + 1 :]
    for name in names:
        module = modules[name]
        if not _is_nonlinear(module) or name in chosen:
            continue
        parent_name = name.rsplit(".", 1)[0] if "." in name else ""
        parent = modules.get(parent_name)
        if parent_name and parent is not None and list(parent.children())[-1] is module:
            name = parent_name
        if name not in chosen:
            chosen.append(name)
    return chosen


def _is_nonlinear(module: nn.Module) -> bool:
    """An elementwise nonlinearity: torch's own, or a parameter-free one named like it (Hugging Face's GELUs)."""
    if isinstance(module, _NONLINEAR):
        return True
    name = type(module).__name__.lower()
    return (not any(True for _ in module.children()) and not any(True for _ in module.parameters())
            and any(word in name for word in _ACTIVATION_WORDS))


def make_context(
    source: Source,
    out_dir: str | os.PathLike[str],
    *,
    data: DataBundle | None,
    settings: ReportConfig,
    home: tuple[str, Path] | None,
    progress: bool,
) -> ReportContext:
    """Load the model (and its data, for a checkpoint) and describe its layers."""
    if isinstance(source, nn.Module):
        model, meta = source, None
    elif isinstance(source, Checkpoint):
        model, meta = source.model, source
    elif isinstance(source, (str, os.PathLike)):
        meta = load_checkpoint(source)
        model = meta.model
    else:
        raise ConfigError(
            f"build_report takes a checkpoint folder, a Checkpoint or an nn.Module; got {type(source).__name__}."
        )
    if data is None and meta is not None and meta.data_spec is not None:
        data = meta.data()
    model.eval()
    name = type(model).__name__ if meta is None else Path(meta.path).name
    site = Site(out_dir, title=name, home=home)
    ctx = ReportContext(
        model=model,
        data=data,
        name=name,
        model_class=type(model).__name__ if meta is None else meta.model_class,
        config={} if meta is None else dict(meta.config),
        metrics={} if meta is None else dict(meta.metrics),
        history=[] if meta is None else list(meta.history),
        extra={} if meta is None else dict(meta.extra),
        source=None if meta is None else str(meta.path),
        settings=settings,
        site=site,
        progress=progress,
    )
    if ctx.example is not None:
        ctx.layers = describe_layers(model, ctx.example)
    ctx.unit_layers = unit_layers(model, image=ctx.is_image) if settings.layers is None else _chosen(ctx)
    return ctx


def _chosen(ctx: ReportContext) -> list[str]:
    """The layers `ReportConfig.layers` names (`name` or `name:k`), checked like every layer name."""
    return resolve_layers(ctx.model, list(ctx.settings.layers or ()))
