"""Figures for features and circuits: activation grids, depth statistics, kernels, dataset
examples, polysemanticity, class circuits, conv connections and the ablation check.

Each function returns a matplotlib Figure; write it with `mechscope.plots.save_figure`.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from torch import Tensor

from mechscope.circuits.ablation import CausalCheck
from mechscope.circuits.activations import ActivationMaps, DepthStatistics
from mechscope.circuits.circuit import ClassCircuits
from mechscope.circuits.connections import ConvConnections
from mechscope.circuits.contributions import ClassContributions
from mechscope.circuits.examples import LayerExamples
from mechscope.circuits.filters import Kernels
from mechscope.circuits.polysemantic import Polysemanticity
from mechscope.plots._mosaic import Mosaic
from mechscope.plots._style import CATEGORICAL, DIVERGING, IMAGE, SEQUENTIAL, Figure, plt

__all__ = [
    "plot_activation_maps",
    "plot_depth_statistics",
    "plot_conv_kernels",
    "plot_dataset_examples",
    "plot_polysemanticity",
    "plot_class_circuits",
    "plot_class_circuit",
    "plot_connections",
    "plot_causal_check",
]

_CELL = 0.85  # inches per thumbnail


def plot_activation_maps(maps: ActivationMaps, *, max_channels: int = 64) -> Figure:
    """Draw the input and, per layer, every channel's activation map (one colour scale per layer).

    Args:
        maps: Result of `activation_maps`.
        max_channels: Channels drawn per layer (the first ones).
    """
    layers = [(name, value[:max_channels]) for name, value in maps.maps.items()]
    layers = [(name, v if v.dim() >= 3 else v.reshape(-1, 1, 1)) for name, v in layers]
    cols = 16
    grids = []
    for _, value in layers:
        n, h, w = value.shape[0], value.shape[-2], value.shape[-1]
        rows = math.ceil(n / cols)
        padded = torch.full((rows * cols, h, w), float("nan"), device="cpu")
        padded[:n] = value.reshape(n, -1, h, w)[:, 0].float()
        grids.append((Mosaic(rows, cols, h, w), padded.reshape(rows, cols, h, w).numpy()))
    heights = [2.2] + [g.rows * 0.95 + 0.35 for g, _ in grids]
    fig, axes = plt.subplots(len(layers) + 1, 1, figsize=(cols * 0.75 + 1.2, sum(heights) + 0.6),
                             height_ratios=heights, squeeze=False, layout="constrained")
    _image(axes[0, 0], maps.image, cmap=IMAGE)
    axes[0, 0].set_title("input")
    for ax, (name, value), (grid, tiles) in zip(axes[1:, 0], layers, grids):
        finite = tiles[np.isfinite(tiles)]
        vmin, vmax = min(0.0, float(finite.min())), float(finite.max()) or 1.0
        im = grid.draw(ax, tiles, cmap=SEQUENTIAL, vmin=vmin, vmax=vmax,
                       titles=[[str(r * cols + c) if r * cols + c < value.shape[0] else "" for c in range(cols)]
                               for r in range(grid.rows)])
        fig.colorbar(im, ax=ax, label="activation", fraction=0.03, pad=0.01)
        ax.set_title(f"{name}: {value.shape[0]} channels of {'x'.join(str(d) for d in value.shape[1:])}")
    fig.suptitle("Activation maps of every channel, layer by layer (shallow to deep)")
    return fig


def plot_depth_statistics(stats: DepthStatistics) -> Figure:
    """Draw mean activation, fraction of zeros and active units per input against depth."""
    names = [s.layer for s in stats.layers]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].plot(x, [s.mean_activation for s in stats.layers], "o-", label="all units")
    axes[0].plot(x, [s.mean_active_value for s in stats.layers], "s--", label="non-zero units only")
    axes[0].set_ylabel("mean activation")
    axes[0].legend()
    axes[1].plot(x, [s.fraction_zeros for s in stats.layers], "o-", color="C3")
    axes[1].set_ylabel("fraction of zeros")
    axes[1].set_ylim(0, 1)
    bars = axes[2].bar(x, [s.active_units for s in stats.layers], color="C2")
    for bar, s in zip(bars, stats.layers):
        axes[2].annotate(f"{s.active_fraction:.0%} of {s.n_units}",
                         (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=9)
    axes[2].set_ylabel("active units per input")
    axes[2].set_ylim(0, 1.15 * max(s.active_units for s in stats.layers) + 1e-9)
    titles = ["Mean activation", "Sparsity", "Active units per input"]
    for ax, title in zip(axes, titles):
        ax.set_xticks(x, names)
        ax.set_xlabel("layer (shallow to deep)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    verdict = "holds" if stats.claim_holds else "does not hold"
    fig.suptitle(
        f"Statistics by depth over {stats.n_inputs} inputs: 'deeper activations are sparser, early ones larger' "
        f"{verdict}\n(sparser deeper: {stats.sparser_deeper}, larger early: {stats.larger_early})"
    )
    fig.tight_layout()
    return fig


def plot_conv_kernels(kernels: Kernels, *, max_out: int = 32, max_in: int = 16) -> Figure:
    """Draw a conv layer's kernels: one tile per (output, input) channel pair on a shared signed scale.

    A layer with one input channel wraps its output channels in rows of 8; otherwise rows are
    output channels and columns input channels. The colour scale is symmetric about 0.

    Args:
        kernels: Result of `conv_kernels`.
        max_out: Output channels drawn (the first ones).
        max_in: Input channels drawn (the first ones).
    """
    weight = kernels.weight.float()
    if weight.dim() == 3:  # Conv1d: each kernel as a one-row image
        weight = weight[:, :, None, :]
    elif weight.dim() != 4:
        weight = weight.flatten(2)[:, :, None, :]
    n_out, n_in = min(weight.shape[0], max_out), min(weight.shape[1], max_in)
    h, w = weight.shape[2], weight.shape[3]
    limit = float(weight.abs().max()) or 1.0
    if n_in == 1:  # first layer: wrap the output channels in rows of 8
        cols = min(n_out, 8)
        rows = math.ceil(n_out / cols)
        tiles = torch.full((rows * cols, h, w), float("nan"), device="cpu")
        tiles[:n_out] = weight[:n_out, 0]
        tiles = tiles.reshape(rows, cols, h, w)
        titles = [[f"out {r * cols + c}" if r * cols + c < n_out else "" for c in range(cols)] for r in range(rows)]
        row_labels = None
    else:
        rows, cols = n_out, n_in
        tiles = weight[:n_out, :n_in]
        titles = [[str(c) if r == 0 else "" for c in range(cols)] for r in range(rows)]
        row_labels = [str(r) for r in range(rows)]
    grid = Mosaic(rows, cols, h, w)
    cell = 1.0 if n_in == 1 else 0.5
    fig, ax = plt.subplots(figsize=(cols * cell + 2.2, rows * cell * grid.aspect + 1.3), layout="constrained")
    im = grid.draw(ax, tiles.numpy(), cmap=DIVERGING, vmin=-limit, vmax=limit, titles=titles, row_labels=row_labels)
    if row_labels is not None:
        ax.set_xlabel("input channel (numbers on top)")
        ax.set_ylabel("output channel", labelpad=18)
    fig.colorbar(im, ax=ax, shrink=0.6, label="weight")
    shown = "" if (n_out, n_in) == tuple(kernels.weight.shape[:2]) else f" (first {n_out} x {n_in} shown)"
    fig.suptitle(f"Kernels of {kernels.layer}: {tuple(kernels.weight.shape)}{shown}")
    return fig


def plot_dataset_examples(
    examples: LayerExamples,
    inputs: Tensor,
    *,
    labels: Tensor | None = None,
    which: str = "top",
    units: list[int] | None = None,
    crops: bool = False,
) -> Figure:
    """Draw a grid of each unit's dataset examples (rows: units, columns: rank).

    Whole inputs carry a red box around the receptive field of the unit's maximum; with
    `crops=True` the box's contents are shown instead. Cell titles give label and score.

    Args:
        examples: One layer's dataset examples.
        inputs: The dataset they were collected from.
        labels: Class per input, shown in the titles.
        which: "top" or "bottom".
        units: Units to draw; None draws the first 16.
        crops: Draw receptive-field crops instead of whole inputs.
    """
    side: Literal["top", "bottom"] = "top" if which == "top" else "bottom"
    ranked = examples.top if side == "top" else examples.bottom
    chosen = list(range(min(examples.n_units, 16))) if units is None else list(units)
    windows = examples.windows(side)
    if crops and windows is not None:
        pictures = examples.crops(inputs, side)[chosen]  # (unit, k, channel, height, width)
    else:
        pictures = inputs.detach().cpu()[ranked.indices[chosen]]
    tiles = pictures.float().mean(dim=2) if pictures.dim() == 5 else pictures.float()  # grey tiles
    k = examples.k
    grid = Mosaic(len(chosen), k, tiles.shape[-2], tiles.shape[-1])
    titles = [
        [(f"y={int(labels[int(ranked.indices[u, j])])} " if labels is not None else "")
         + f"{float(ranked.values[u, j]):.2f}" for j in range(k)]
        for u in chosen
    ]
    fig, ax = plt.subplots(figsize=(k * _CELL + 1.0, len(chosen) * _CELL * grid.aspect + 1.1), layout="constrained")
    grid.draw(ax, tiles.numpy(), cmap=IMAGE, vmin=0.0, vmax=float(inputs.max()) or 1.0, titles=titles,
              row_labels=[f"unit {u}" for u in chosen])
    if windows is not None and not crops:
        height, width = inputs.shape[-2], inputs.shape[-1]
        for row, u in enumerate(chosen):
            for col in range(k):
                (r0, h), (c0, w) = windows[u, col].tolist()[:2]
                # Clip the box to the image so a field larger than the input still shows.
                r1, c1, r0, c0 = min(r0 + h, height), min(c0 + w, width), max(r0, 0), max(c0, 0)
                x, y = grid.origin(row, col)
                ax.add_patch(Rectangle((x + c0 - 0.5, y + r0 - 0.5), c1 - c0, r1 - r0, fill=False,
                                       edgecolor="red", linewidth=1.2))
    what = "receptive-field crops" if crops and windows is not None else (
        "inputs, red box: receptive field of the maximum" if windows is not None else "inputs")
    score = f"{examples.reduce} activation" if len(examples.activation_shape) > 1 else "activation"
    fig.suptitle(f"{side.capitalize()}-{k} dataset examples of {examples.layer} over {examples.n_inputs} inputs "
                 f"({what})\ncell titles: {'label and ' if labels is not None else ''}{score}")
    return fig


def plot_polysemanticity(poly: Polysemanticity, *, max_units: int = 64) -> Figure:
    """Draw the label mix of every unit's top examples as stacked bars, most polysemantic first."""
    order = poly.ranking.tolist()[:max_units]
    shown = "" if len(order) == len(poly.entropy) else f"; the {len(order)} most polysemantic shown"
    counts = poly.label_counts[order].double()
    shares = (counts / counts.sum(dim=1, keepdim=True).clamp_min(1)).numpy()
    colours = plt.get_cmap(CATEGORICAL)
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(order) + 1.8))
    y = np.arange(len(order))
    left = np.zeros(len(order))
    for c, name in enumerate(poly.class_names):
        ax.barh(y, shares[:, c], left=left, color=colours(c % 10), label=name, height=0.8)
        left += shares[:, c]
    flags, dead = poly.is_polysemantic, poly.is_dead
    ticks = [f"unit {u} (dead)" if dead[u] else f"{'* ' if flags[u] else ''}unit {u}  H={float(poly.entropy[u]):.2f}"
             for u in order]
    ax.set_yticks(y, ticks, fontsize=8)
    for row, u in enumerate(order):
        if dead[u]:  # a constant unit has no real top examples: grey it out
            ax.barh(row, 1.0, color="0.85", height=0.8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of the top-{poly.k} examples by label")
    ax.legend(title="label", bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8)
    ax.set_ylabel("unit, ranked by label entropy H (bits)")
    ax.set_title(f"Polysemanticity of {poly.layer}: {int(flags.sum())} of {len(flags)} units need "
                 f">= {poly.min_classes} classes to cover {poly.coverage:.0%} (*){shown}")
    fig.tight_layout()
    return fig


def plot_class_circuits(found: ClassContributions, class_means: Tensor) -> Figure:
    """Draw one row per class: its mean input, then its top channels' mean activation maps on that class."""
    n, top = found.top_channels.shape
    maps = torch.stack([found.top_maps(c) for c in range(n)]).float()  # (n_classes, top, *spatial)
    means = torch.stack([_as_picture(m) for m in class_means])  # (n_classes, height, width), grey
    if maps.dim() == 2:  # dense layer: one value per unit
        maps = maps[:, :, None, None]
    elif maps.dim() == 3:  # 1-D maps: one row each
        maps = maps[:, :, None, :]
    size = tuple(means.shape[-2:])
    # Upsample the maps (nearest) to the input size so both mosaics share their rows.
    maps = torch.nn.functional.interpolate(maps, size=size, mode="nearest")
    left, right = Mosaic(n, 1, *size), Mosaic(n, top, *size)
    fig, axes = plt.subplots(1, 2, figsize=((top + 1) * 1.25 + 2.0, n * 1.25 * left.aspect + 1.2),
                             width_ratios=[1, top], layout="constrained")
    left.draw(axes[0], means[:, None].numpy(), cmap=IMAGE, titles=[[f"class {name}"] for name in found.class_names])
    vmax = float(maps.max()) or 1.0
    im = right.draw(
        axes[1], maps.numpy(), cmap=SEQUENTIAL, vmin=0.0, vmax=vmax,
        titles=[[f"ch {int(ch)}: {float(found.contributions[c, int(ch)]):+.2f}" for ch in found.top_channels[c]]
                for c in range(n)],
    )
    axes[0].set_title("mean input")
    axes[1].set_title(f"top {top} channels: mean activation on the class")
    fig.colorbar(im, ax=axes[1], shrink=0.5, label=f"mean activation of {found.layer}")
    how = "head weight x mean activation (exact, GAP head)" if found.method == "gap" else "gradient x activation"
    fig.suptitle(f"Main detectors of each class in {found.layer}\ncontribution to the class logit = {how}")
    return fig


def plot_class_circuit(circuits: ClassCircuits, cls: int, *, n_inbound: int = 2) -> Figure:
    """Draw one class's circuit: source channels -> top detectors -> class logit, each with its mean map.

    Edge width is the connection's L2 norm (source -> detector) or the contribution
    (detector -> logit); red edges excite (positive signed sum), blue edges inhibit.
    """
    found = circuits.contributions
    detectors = found.top_channels[cls].tolist()
    pair = circuits.feeding()
    sources: list[int] = []
    if pair is not None and circuits.source_maps is not None:
        for d in detectors:
            for s in pair.top_inbound[d, :n_inbound].tolist():
                if s not in sources:
                    sources.append(s)
    width, height = 11.0, 7.0
    fig = plt.figure(figsize=(width, height))
    # One canvas holds edges and thumbnails (images placed by extent): far cheaper than an axes each.
    canvas_height = 0.76
    canvas = fig.add_axes((0, 0.09, 1, canvas_height))
    canvas.set_xlim(0, 1)
    canvas.set_ylim(0, 1)
    canvas.set_aspect("auto")
    canvas.axis("off")
    # Thumbnails are square, 0.9 inch at most, smaller when a column holds many nodes (title room kept).
    crowd = max(len(sources), len(detectors), 2)
    side = min(0.9, 0.7 / (crowd - 1) * canvas_height * height - 0.28)
    half_w, half_h = side / 2 / width, side / 2 / (canvas_height * height)

    def thumbnail(picture: Tensor, x: float, y: float, title: str, **style: object) -> AxesImage:
        array = _as_picture(picture)
        im = canvas.imshow(array.numpy(), extent=(x - half_w, x + half_w, y - half_h, y + half_h),
                           interpolation="nearest", aspect="auto", **style)  # type: ignore[arg-type]
        canvas.add_patch(Rectangle((x - half_w, y - half_h), 2 * half_w, 2 * half_h, fill=False, edgecolor="0.5",
                                   linewidth=0.6))
        canvas.text(x, y + half_h + 0.01, title, ha="center", va="bottom", fontsize=9)
        return im

    det_y = _spread(len(detectors))
    src_y = _spread(len(sources))
    x_src, x_det, x_cls = 0.12, 0.5, 0.86
    det_max = float(found.mean_maps[cls, detectors].max()) or 1.0
    contributions = [float(found.contributions[cls, d]) for d in detectors]
    widest = max(abs(v) for v in contributions) or 1.0
    for d, y, value in zip(detectors, det_y, contributions):
        _edge(canvas, (x_det + half_w, y), (x_cls - half_w, 0.5), value, widest)
        canvas.text((x_det + x_cls) / 2, (y + 0.5) / 2 + 0.02, f"{value:+.2f}", ha="center", fontsize=9)
    if pair is not None and circuits.source_maps is not None and sources:
        strongest = float(pair.l2[detectors][:, sources].max()) or 1.0
        src_max = float(circuits.source_maps[cls, sources].max()) or 1.0
        for s, ys in zip(sources, src_y):
            for d, yd in zip(detectors, det_y):
                if s in pair.top_inbound[d, :n_inbound].tolist():
                    sign = 1.0 if float(pair.signed_sum[d, s]) >= 0 else -1.0
                    _edge(canvas, (x_src + half_w, ys), (x_det - half_w, yd), sign * float(pair.l2[d, s]), strongest)
            im_src = thumbnail(circuits.source_maps[cls, s], x_src, ys, f"{circuits.source_layer} ch {s}",
                               cmap=SEQUENTIAL, vmin=0.0, vmax=src_max)
        fig.colorbar(im_src, cax=fig.add_axes((0.03, 0.05, 0.18, 0.02)), orientation="horizontal",
                     label=f"mean {circuits.source_layer} activation")
        canvas.text(x_src, 1.02, f"{pair.source} channels (top {n_inbound} inbound per detector)", ha="center",
                    va="bottom", fontsize=10)
    for d, y in zip(detectors, det_y):
        im_det = thumbnail(found.mean_maps[cls, d], x_det, y, f"{found.layer} ch {d}", cmap=SEQUENTIAL, vmin=0.0,
                           vmax=det_max)
    fig.colorbar(im_det, cax=fig.add_axes((0.41, 0.05, 0.18, 0.02)), orientation="horizontal",
                 label=f"mean {found.layer} activation")
    thumbnail(circuits.class_mean_inputs[cls], x_cls, 0.5, f"logit of class {found.class_names[cls]}\n(mean input)",
              cmap=IMAGE)
    canvas.text(x_det, 1.02, "top detectors", ha="center", va="bottom", fontsize=10)
    canvas.set_xlim(0, 1)  # imshow widened the limits to its extents
    canvas.set_ylim(0, 1)
    check = circuits.causal
    fig.suptitle(
        f"Circuit of class {found.class_names[cls]}: maps are mean activations on the class; edge width = weight "
        f"strength,\nred excites, blue inhibits; ablating these detectors costs {float(check.top_drop[cls]):.0%} "
        f"accuracy on the class, {float(check.random_drop[cls]):.0%} for as many random channels "
        f"({check.mode} ablation)"
    )
    return fig


def plot_connections(pair: ConvConnections) -> Figure:
    """Draw both connection matrices of a conv pair: L2 norm and signed sum of each kernel slice."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    im = axes[0].imshow(pair.l2.numpy(), cmap=SEQUENTIAL, aspect="auto")
    fig.colorbar(im, ax=axes[0], label="L2 norm of kernel slice")
    axes[0].set_title("Connection strength (L2 norm)")
    limit = float(pair.signed_sum.abs().max()) or 1.0
    im = axes[1].imshow(pair.signed_sum.numpy(), cmap=DIVERGING, vmin=-limit, vmax=limit, aspect="auto")
    fig.colorbar(im, ax=axes[1], label="sum of kernel slice (+ excites, - inhibits)")
    axes[1].set_title("Signed sum")
    for ax in axes:
        ax.set_xlabel(f"source channel ({pair.source} output)")
        ax.set_ylabel(f"target channel ({pair.target} output)")
    fig.suptitle(f"Channel-to-channel connections {pair.source} -> {pair.target}, read from the weights")
    fig.tight_layout()
    return fig


def plot_causal_check(check: CausalCheck, *, class_names: tuple[str, ...] | None = None) -> Figure:
    """Draw per-class accuracy drops (top detectors vs random channels) and the cross-class drop matrix."""
    n = check.top_drop.shape[0]
    names = class_names or tuple(str(c) for c in range(n))
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [1.3, 1]})
    x = np.arange(n)
    axes[0].bar(x - 0.2, check.top_drop.numpy(), width=0.4, label=f"top {check.top_channels.shape[1]} detectors")
    axes[0].bar(x + 0.2, check.random_drop.numpy(), width=0.4,
                label=f"{check.top_channels.shape[1]} random channels (mean of {check.n_random})")
    axes[0].set_xticks(x, names)
    axes[0].set_xlabel("class")
    axes[0].set_ylabel("accuracy drop on the class")
    axes[0].axhline(0, color="0.3", linewidth=0.8)
    axes[0].legend()
    axes[0].set_title(f"Ablating a class's detectors ({check.mode}): ratio {check.ratio:.3g}")
    limit = float(check.cross_drop.abs().max()) or 1.0
    im = axes[1].imshow(check.cross_drop.numpy(), cmap=DIVERGING, vmin=-limit, vmax=limit)
    fig.colorbar(im, ax=axes[1], label="accuracy drop")
    axes[1].set_xticks(x, names)
    axes[1].set_yticks(x, names)
    axes[1].set_xlabel("class evaluated")
    axes[1].set_ylabel("class whose detectors are ablated")
    axes[1].set_title("Which classes each ablation hurts")
    fig.suptitle(f"Causal check in {check.layer}: {check.classes_hurt_more} of {n} classes lose more from their "
                 "own detectors than from random channels")
    fig.tight_layout()
    return fig


def _as_picture(value: Tensor) -> Tensor:
    """A 2-D float picture of a map or input: channels averaged, vectors as one row, scalars as 1x1."""
    array = value.detach().cpu().float()
    if array.dim() == 0:
        return array.reshape(1, 1)
    if array.dim() == 1:
        return array[None, :]
    return array.reshape(-1, *array.shape[-2:]).mean(dim=0) if array.dim() > 2 else array


def _image(ax: Axes, picture: Tensor, *, cmap: str, vmin: float | None = None, vmax: float | None = None) -> AxesImage:
    array = picture.detach().cpu().float()
    rgb = array.dim() == 3 and array.shape[0] == 3
    array = array.permute(1, 2, 0).clamp(0, 1) if rgb else _as_picture(array)
    im = ax.imshow(array.numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks([])  # keep the frame: white pixels at an image border stay visible
    ax.set_yticks([])
    return im


def _spread(n: int) -> list[float]:
    if n == 0:
        return []
    return [float(v) for v in np.linspace(0.85, 0.15, n)] if n > 1 else [0.5]  # spacing 0.7 / (n - 1)


def _edge(ax: Axes, start: tuple[float, float], end: tuple[float, float], value: float, scale: float) -> None:
    colour = "tab:red" if value >= 0 else "tab:blue"
    ax.plot([start[0], end[0]], [start[1], end[1]], color=colour, alpha=0.75,
            linewidth=0.5 + 5.0 * abs(value) / scale, solid_capstyle="round")
