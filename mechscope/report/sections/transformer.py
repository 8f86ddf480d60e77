"""The pages of a transformer: attention patterns, a patching heatmap, and the logit lens.

Each section applies to residual-stream models: the GrokkingTransformer (its named hook
points), or a model with `nn.MultiheadAttention` / Hugging Face attentions (attention), a
list of blocks and a found unembedding (logit lens), and labelled data (patching).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from mechscope.errors import MechscopeError
from mechscope.lens import LogitAttribution, LogitLens, attention_patterns, direct_logit_attribution, logit_lens
from mechscope.lens.unembed import find_readout, residual_layers, stream_components
from mechscope.patching import PatchingComparison, PatchingResult, activation_patching, attribution_patching, compare
from mechscope.patching import default_pairing
from mechscope.patching.cells import default_layers
from mechscope.report.context import ReportContext
from mechscope.report.html import key_values, paragraph, tag
from mechscope.report.section import Deps, NotApplicable, Rendered, ReportSection, figure_path, require_data
from mechscope.report.section import section_crumbs
from mechscope.report.widgets import figure

__all__ = ["AttentionSection", "AttentionResult", "PatchingSection", "PatchingSummary", "LensSection", "LensResult"]

_EXAMPLES = 64  # held-out inputs the sections average over
_PAIRS = 16  # clean/corrupt pairs of the patching sweep


@dataclass(frozen=True)
class AttentionResult:
    """Mean attention pattern (head, query, key) per layer over held-out inputs."""

    json_skip: ClassVar[frozenset[str]] = frozenset({"patterns"})
    json_extra: ClassVar[tuple[str, ...]] = ("last_query",)

    patterns: dict[str, Tensor]
    tokens: list[str] | None  # what each position holds; None: numbered
    n_inputs: int

    @property
    def last_query(self) -> dict[str, list[list[float]]]:
        """Per layer and head: where the last position looks (mean over the inputs)."""
        return {name: pattern[:, -1].tolist() for name, pattern in self.patterns.items()}


class AttentionSection(ReportSection[AttentionResult]):
    """Where each head looks: mean attention patterns over held-out inputs."""

    key = "attention"
    title = "Attention patterns"

    def applies(self, ctx: ReportContext) -> str | None:
        if ctx.data is None:
            return "no data was given to run attention on."
        return None

    def analyse(self, ctx: ReportContext, deps: Deps) -> AttentionResult:
        x = require_data(ctx).x_test[:_EXAMPLES]
        try:
            found = attention_patterns(ctx.model, x)
        except MechscopeError as err:
            raise NotApplicable(f"{ctx.model_class} has no attention this report can read ({err})") from err
        return AttentionResult({k: v.double().mean(dim=0) for k, v in found.items()}, _tokens(ctx, x),
                               int(x.shape[0]))

    def render(self, ctx: ReportContext, result: AttentionResult) -> Rendered:
        from mechscope.plots import save_figure
        from mechscope.plots.patching import plot_attention

        page = ctx.site.rel("attention.html")
        body = [paragraph(f"Mean attention of every head over {result.n_inputs} held-out inputs: row = the "
                          "position that reads (query), column = the position read (key).")]
        for name, pattern in result.patterns.items():
            rel, path = figure_path(ctx, f"attention-{name}.png")
            save_figure(plot_attention(pattern, tokens=result.tokens, title=name), path)
            body.append(figure(ctx.site.href(page, rel), f"attention of {name}", f"{name}: one panel per head."))
        ctx.site.write_page(page, self.title, body, crumbs=section_crumbs(ctx, self.title))
        heads = sum(int(p.shape[0]) for p in result.patterns.values())
        return Rendered(page, tag("p", f"{len(result.patterns)} attention layers, {heads} heads."))


@dataclass(frozen=True)
class PatchingSummary:
    """Activation patching of every residual-stream position, its attribution estimate, and the heads."""

    json_skip: ClassVar[frozenset[str]] = frozenset({"comparison"})
    json_extra: ClassVar[tuple[str, ...]] = ("max_error", "mean_error")

    positions: PatchingResult
    comparison: PatchingComparison
    heads: PatchingResult | None
    tokens: list[str] | None  # what each position holds, for the figures; None: numbered

    @property
    def max_error(self) -> float:
        """Largest per-cell error of attribution patching against exact patching."""
        return self.comparison.max_error

    @property
    def mean_error(self) -> float:
        """Mean per-cell error of attribution patching against exact patching."""
        return self.comparison.mean_error


class PatchingSection(ReportSection[PatchingSummary]):
    """Which layer and position (and head) carries the answer: patching clean into corrupt runs."""

    key = "patching"
    title = "Activation patching"

    def applies(self, ctx: ReportContext) -> str | None:
        if ctx.data is None or ctx.data.task != "classification":
            return "patching pairs labelled held-out inputs; this model has no classification data."
        return None

    def analyse(self, ctx: ReportContext, deps: Deps) -> PatchingSummary:
        try:
            layers = default_layers(ctx.model, "pos")
            pairing = default_pairing(require_data(ctx), _PAIRS)
            args: dict[str, Any] = {"output": ctx.settings.output}
            exact = activation_patching(ctx.model, pairing.clean, pairing.corrupt, layers, pairing.metric, **args)
            approx = attribution_patching(ctx.model, pairing.clean, pairing.corrupt, layers, pairing.metric, **args)
            head_layers = [name for name, _ in ctx.model.named_modules() if name.endswith(".attn.z")]
            heads = activation_patching(ctx.model, pairing.clean, pairing.corrupt, head_layers, pairing.metric,
                                        along="head", **args) if head_layers else None
        except MechscopeError as err:
            raise NotApplicable(f"patching does not fit this model: {err}") from err
        return PatchingSummary(exact, compare(exact, approx), heads, _tokens(ctx, pairing.clean))

    def render(self, ctx: ReportContext, result: PatchingSummary) -> Rendered:
        from mechscope.plots import save_figure
        from mechscope.plots.patching import plot_patching, plot_patching_comparison

        page = ctx.site.rel("patching.html")
        shown = [("patching-positions.png", plot_patching(result.positions, cell_labels=result.tokens), "Recovered fraction per layer and "
                  "position: 1 where the clean activation restores the clean answer."),
                 ("patching-attribution.png", plot_patching_comparison(result.comparison, cell_labels=result.tokens),
                  "Attribution patching (one backward pass) beside exact patching, and their difference.")]
        if result.heads is not None:
            shown.append(("patching-heads.png", plot_patching(result.heads), "Recovered fraction per head."))
        body = [paragraph(f"Clean and corrupt held-out inputs in pairs, scored by {result.positions.metric} "
                          f"(clean {result.positions.clean_metric:.3g}, corrupt {result.positions.corrupt_metric:.3g})."),
                key_values([("attribution patching, max error", result.max_error),
                            ("attribution patching, mean error", result.mean_error)])]
        for name, fig, caption in shown:
            rel, path = figure_path(ctx, name)
            save_figure(fig, path)
            body.append(figure(ctx.site.href(page, rel), caption, caption))
        ctx.site.write_page(page, self.title, body, crumbs=section_crumbs(ctx, self.title))
        best = divmod(int(result.positions.values.nan_to_num(-1e9).argmax()), result.positions.values.shape[1])
        return Rendered(page, tag("p", f"Most recovery at {result.positions.layers[best[0]]}, position {best[1]}; "
                                       f"attribution patching max error {result.max_error:.2f}."))


@dataclass(frozen=True)
class LensResult:
    """The logit lens of the residual stream, and the direct logit attribution when the parts cover it."""

    lens: LogitLens
    attribution: LogitAttribution | None

    def __json__(self) -> dict[str, Any]:
        """Mean rank and probability per layer and position, and the mean share of each component."""
        out: dict[str, Any] = {"layers": self.lens.layers, "mean_rank": self.lens.mean_rank,
                               "mean_probability": self.lens.mean_probability}
        if self.attribution is not None:
            out["attribution"] = self.attribution.mean
        return out


class LensSection(ReportSection[LensResult]):
    """What the residual stream predicts at each depth, and which heads and MLPs write the answer."""

    key = "lens"
    title = "Logit lens"

    def applies(self, ctx: ReportContext) -> str | None:
        if ctx.data is None or ctx.data.task != "classification":
            return "the logit lens reads the answer of labelled inputs; this model has no classification data."
        return None

    def analyse(self, ctx: ReportContext, deps: Deps) -> LensResult:
        data = require_data(ctx)
        x, labels = data.x_test[:_EXAMPLES], data.y_test[:_EXAMPLES].long()
        try:
            out = find_readout(ctx.model)
            lens = logit_lens(ctx.model, x, residual_layers(ctx.model), unembed=out.unembed_name,
                              final_norm=out.norm_name, answer=labels)
        except MechscopeError as err:
            raise NotApplicable(f"no residual stream and unembedding were found ({err})") from err
        parts = stream_components(ctx.model)
        dla = direct_logit_attribution(ctx.model, x, parts, unembed=out.unembed_name,
                                       final_norm=out.norm_name, answer=labels) if parts else None
        return LensResult(lens, dla)

    def render(self, ctx: ReportContext, result: LensResult) -> Rendered:
        from mechscope.plots import save_figure
        from mechscope.plots.patching import plot_logit_attribution, plot_logit_lens

        page = ctx.site.rel("lens.html")
        rel, path = figure_path(ctx, "logit-lens.png")
        save_figure(plot_logit_lens(result.lens), path)
        body = [paragraph("Each residual-stream layer read through the final norm and unembedding, as if the "
                          "network stopped there: the answer's rank (0 = top) and probability per position."),
                figure(ctx.site.href(page, rel), "logit lens", "Answer rank and probability per layer and position.")]
        if result.attribution is not None:
            rel, path = figure_path(ctx, "logit-attribution.png")
            save_figure(plot_logit_attribution(result.attribution), path)
            body.append(figure(ctx.site.href(page, rel), "direct logit attribution",
                               "Each component's direct share of the answer's logit (mean over inputs)."))
        ctx.site.write_page(page, self.title, body, crumbs=section_crumbs(ctx, self.title))
        last = [row[-1] for row in result.lens.mean_rank]
        return Rendered(page, tag("p", "Mean answer rank at the last position by depth: "
                                       + " \u2192 ".join(f"{r:.1f}" for r in last) + "."))


def _tokens(ctx: ReportContext, x: Tensor) -> list[str] | None:
    """What each position holds, for the modular models (`a b =`); None: positions are numbered."""
    if ctx.data is not None and "modulus" in ctx.data.extras and x.dim() == 2 and x.shape[1] == 2:
        return ["a", "b", "="]
    return None
