"""Figure for weight reading: formula vs network per region, region coverage, recovered coefficients."""

from __future__ import annotations

import numpy as np
import torch

from mechscope.plots._style import CATEGORICAL, DIVERGING, Figure, plt
from mechscope.symbolic.reader import FormulaReport

__all__ = ["plot_formula"]

_MAX_POINTS = 4000  # scatter points drawn (a fixed subsample keeps files small)


def plot_formula(report: FormulaReport, *, max_regions: int = 7) -> Figure:
    """Draw a three-panel figure summarising a FormulaReport.

    Panels: each point's region formula against the network's own output (one colour per
    region, the largest `max_regions` named), the coverage of the largest regions, and the
    main region's coefficients beside the true ones when the target is known (a heatmap
    for several outputs or many inputs).

    Args:
        report: Result of `read_formula`.
        max_regions: Regions given their own colour and bar.

    Returns:
        The figure; write it with `save_figure`.
    """
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1.1, 0.9, 1.3]})
    _scatter(axes[0], report, max_regions)
    _coverage(axes[1], report, max_regions)
    _coefficients(fig, axes[2], report)
    state = "affine on the data" if report.affine_on_data else "NOT affine on the data"
    fig.suptitle(
        f"Weight reading: {len(report.region_map.regions)} region(s), network {state}; "
        f"max |formula - network| = {report.region_map.max_abs_error:.2g}"
    )
    fig.tight_layout()
    return fig


def _scatter(ax: plt.Axes, report: FormulaReport, max_regions: int) -> None:
    rm = report.region_map
    n = rm.n_points
    generator = torch.Generator().manual_seed(0)
    keep = torch.randperm(n, generator=generator, device="cpu")[:_MAX_POINTS] if n > _MAX_POINTS else None
    index = rm.region_index if keep is None else rm.region_index[keep]
    network = (rm.network_output if keep is None else rm.network_output[keep]).numpy()
    formula = (rm.formula_output if keep is None else rm.formula_output[keep]).numpy()
    colours = plt.get_cmap(CATEGORICAL)
    shown = min(max_regions, len(rm.regions))
    rest = (index >= shown).numpy()
    if rest.any():  # drawn first so the named regions stay visible on top
        ax.scatter(network[rest].ravel(), formula[rest].ravel(), s=6, alpha=0.5, color="0.6", label="other regions")
    for r in range(shown):
        mask = (index == r).numpy()
        if mask.any():
            ax.scatter(
                network[mask].ravel(),
                formula[mask].ravel(),
                s=6,
                alpha=0.6,
                color=colours(r % 10),
                label=f"region {r + 1} ({rm.regions[r].coverage:.2%})",
            )
    low, high = float(np.min(network)), float(np.max(network))
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, linestyle="--", label="formula = network")
    ax.set_xlabel("network output")
    ax.set_ylabel("region formula A x + b")
    ax.set_title("Each point's region formula vs the network")
    ax.legend(fontsize=8, loc="upper left", markerscale=2)


def _coverage(ax: plt.Axes, report: FormulaReport, max_regions: int) -> None:
    regions = report.region_map.regions[:max_regions]
    colours = plt.get_cmap(CATEGORICAL)
    labels = [str(i + 1) for i in range(len(regions))]
    values = [100 * r.coverage for r in regions]
    bars = ax.bar(labels, values, color=[colours(i % 10) for i in range(len(regions))])
    for bar, value in zip(bars, values):
        ax.annotate(f"{value:.2f}%", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 112)
    ax.set_xlabel("region (sorted by coverage)")
    ax.set_ylabel("coverage of the data (%)")
    ax.set_title(f"Coverage of the largest regions (affine if one >= {report.region_map.affine_threshold:.0%})")


def _coefficients(fig: plt.Figure, ax: plt.Axes, report: FormulaReport) -> None:
    top = report.region_map.dominant
    a, b = top.coefficients.numpy(), top.intercept.numpy()
    n_outputs, n_features = a.shape
    if n_outputs == 1 and n_features <= 40:
        names = [f"x{i + 1}" for i in range(n_features)] + ["const"]
        recovered = np.concatenate([a[0], b])
        positions = np.arange(len(names))
        width = 0.4 if report.target else 0.8
        ax.bar(positions - (width / 2 if report.target else 0), recovered, width, label="recovered (region 1)",
               color=plt.get_cmap(CATEGORICAL)(0))
        if report.target:
            true = np.array([*report.target["coefficients"], report.target["constant"]])
            ax.bar(positions + width / 2, true, width, label="true", color=plt.get_cmap(CATEGORICAL)(1))
        ax.axhline(0, color="black", linewidth=0.6)
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.25 * (high - low))  # headroom for the legend
        ax.set_xticks(positions, names, rotation=0 if n_features <= 12 else 90)
        ax.set_xlabel("input (and constant)")
        ax.set_ylabel("coefficient (network space)")
        ax.set_title("Recovered vs true coefficients" if report.target else "Recovered coefficients")
        ax.legend(fontsize=8, loc="upper center", ncol=2)
        return
    limit = float(np.abs(a).max()) or 1.0
    image = ax.imshow(a, aspect="auto", cmap=DIVERGING, vmin=-limit, vmax=limit, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="coefficient")
    if n_features <= 20:
        ax.set_xticks(range(n_features), [f"x{i + 1}" for i in range(n_features)])
    if n_outputs <= 20:
        ax.set_yticks(range(n_outputs), [f"f{k + 1}" for k in range(n_outputs)])
    ax.set_xlabel("input feature")
    ax.set_ylabel("output")
    ax.set_title("Region 1 coefficients A (rows: outputs)")
