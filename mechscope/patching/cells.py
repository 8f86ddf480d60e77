"""The cells of a patching sweep: one axis of a layer's output, cut into its positions, heads or units.

`cell_axis` says which axis of a layer output holds the cells; `write_cells` writes the
source activation into one cell per block of rows, for many cells in one forward pass: the
batch is the base inputs repeated once per cell, rows `j * n + i` are example `i` with
cell `cells[j]` patched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from mechscope.capture import get_layer, unit_axes
from mechscope.capture.layers import block_layers
from mechscope.capture.names import split_layer
from mechscope.errors import ConfigError

__all__ = ["Along", "CellKind", "cell_axis", "write_cells", "repeat_rows", "default_layers"]

CellKind = Literal["pos", "head", "unit"]
"""Cells by what they are: sequence positions, attention heads, units/channels."""

Along = CellKind | int
"""Which axis holds the cells: a CellKind, or an axis index of the layer output."""


def cell_axis(model: nn.Module, layer: str, shape: Sequence[int], along: Along) -> int:
    """Axis (>= 1) of the batched output `shape` of `layer` that holds the cells `along` names.

    "pos" and "head" use the module's declared `pos_axis`/`head_axis` (the GrokkingTransformer's
    hook points have them), else "pos" is the one position axis of a sequence output;
    "unit" is the unit axis (`mechscope.capture.unit_axes`).

    Raises:
        ConfigError: the axis cannot be told or does not exist; the message says how to name it.
    """
    ndim = len(shape)
    if isinstance(along, int) and not isinstance(along, bool):
        axis = along + ndim if along < 0 else along
        if not 1 <= axis < ndim:
            raise ConfigError(f"along={along} is not an axis of {layer!r}'s output {tuple(shape)} (axis 0 is the batch).")
        return axis
    module = get_layer(model, split_layer(model, layer)[0])
    declared = getattr(module, f"{along}_axis", None) if along in ("pos", "head") else None
    if isinstance(declared, int):
        return declared
    if along == "head":
        raise ConfigError(
            f"{layer!r} declares no head axis; give the axis index instead (e.g. along=2 for (batch, pos, head, d_head))."
        )
    axes = unit_axes(module, shape)
    if along == "unit":
        return axes.unit
    if along == "pos" and len(axes.spatial) == 1:
        return axes.spatial[0]
    if along != "pos":
        raise ConfigError(f"along must be 'pos', 'head', 'unit' or an axis index, got {along!r}.")
    raise ConfigError(
        f"{layer!r} outputs {tuple(shape)}, which has no single position axis; give the axis index with along=."
    )


def repeat_rows(x: Tensor, times: int) -> Tensor:
    """`x` (n, ...) repeated `times` times along the batch: row `j * n + i` is `x[i]`."""
    return x.repeat(times, *([1] * (x.dim() - 1)))


def write_cells(base: Tensor, source: Tensor, axis: int, cells: Tensor) -> Tensor:
    """Rows of block j take `source` at index `cells[j]` of `axis`; everything else stays `base`.

    Args:
        base: The layer output of the repeated batch, (k * n, ...).
        source: The activation to write, (n, ...) (same for every block).
        axis: Axis of the cells (>= 1).
        cells: (k,) cell index per block of n rows; -1 leaves that block as it is.
    """
    k, n = int(cells.shape[0]), int(source.shape[0])
    blocks = base.reshape(k, n, *base.shape[1:])
    mask_shape = [1] * blocks.dim()
    mask_shape[0], mask_shape[axis + 1] = k, base.shape[axis]
    mask = torch.zeros(k, base.shape[axis], dtype=torch.bool, device=base.device)
    cells = cells.to(base.device)
    chosen = (cells >= 0).nonzero()[:, 0]
    mask[chosen, cells[chosen]] = True
    patched = torch.where(mask.view(mask_shape), source.to(base.dtype).unsqueeze(0), blocks)
    return patched.reshape(base.shape)


_SITES = {"pos": (".resid_pre", ".resid_mid", ".resid_post"), "head": (".attn.z",), "unit": (".mlp.act",)}


def default_layers(model: nn.Module, along: Along) -> list[str]:
    """Layers a sweep patches by default: every block's residual stream (`pos`), heads' value mix (`head`)
    or MLP neurons (`unit`) of a GrokkingTransformer-style model; else the blocks of a list of blocks (`pos`).

    Raises:
        ConfigError: the model has no such hook points; name the layers.
    """
    names = [name for name, _ in model.named_modules()]
    found = [name for name in names if isinstance(along, str) and name.endswith(_SITES.get(along, ()))]
    if found:
        return found
    if along == "pos":
        blocks = block_layers(model)
        if blocks:
            return blocks
    raise ConfigError(
        f"{type(model).__name__} has no residual-stream hook points or list of blocks to patch along {along!r}; "
        "name the layers (layers=..., --layer)."
    )
