"""Attribution galleries with their sanity check (parameter randomisation) and faithfulness curves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mechscope.attribution import Attribution, FaithfulnessResult, SanityResult, cascading_randomization, faithfulness
from mechscope.attribution.faithfulness import RANDOM
from mechscope.attribution.registry import METHODS, build_method
from mechscope.capture.outputs import OutputSpec, describe_output
from mechscope.errors import UnsupportedModelError
from mechscope.report.context import ReportContext
from mechscope.report.html import paragraph, table, tag
from mechscope.report.section import Deps, Rendered, ReportSection, figure_path, require_data, section_crumbs
from mechscope.report.widgets import bullets, figure

__all__ = ["AttributionSection", "AttributionResult"]


@dataclass(frozen=True)
class AttributionResult:
    """The maps of every method that fits, and how faithful and how sane each is."""

    json_skip: ClassVar[frozenset[str]] = frozenset({"layer_methods", "pictures", "maps", "row_labels"})

    methods: tuple[str, ...]  # labels of the methods that ran
    layer: str | None  # the layer the layer methods weight; None without layer methods
    skipped: dict[str, str]  # method name -> why it does not fit this model
    faithfulness: FaithfulnessResult  # deletion and insertion curves
    sanity: SanityResult  # cascading parameter randomisation
    layer_methods: tuple[str, ...]  # labels of the methods that use `layer`
    pictures: Tensor  # (image, ...) the explained inputs on [0, 1]
    maps: dict[str, Tensor]  # label -> the maps of `pictures` for the predicted class
    row_labels: tuple[str, ...]  # "label ...\npredicted ..." per image


class AttributionSection(ReportSection[AttributionResult]):
    """Maps of every method that fits the model, over test images of different classes, with checks."""

    key = "attribution"
    title = "Attribution"

    def applies(self, ctx: ReportContext) -> str | None:
        if ctx.data is None or not ctx.is_image or not ctx.is_classifier:
            what = "no data was given" if ctx.data is None else (
                f"the model takes inputs of shape {'x'.join(str(d) for d in ctx.data.x_test.shape[1:])}, not images"
                if not ctx.is_image else "the model is not a classifier returning logits")
            return f"attribution maps explain image classifiers; {what}."
        return None

    def analyse(self, ctx: ReportContext, deps: Deps) -> AttributionResult:
        settings, data, model, output = ctx.settings, require_data(ctx), ctx.model, ctx.settings.output
        methods, skipped_methods = _methods(ctx)
        labelled = {m.label: m for m in methods.values()}
        shown = _one_per_class(data.y_test, settings.attribution_images)
        x = data.x_test[shown]
        predicted = ctx.explained(x).argmax(dim=1)
        n_faith = min(settings.faithfulness_images, data.x_test.shape[0])
        n_sanity = min(settings.sanity_images, data.x_test.shape[0])
        job = _MethodJob(model, x, predicted, data.x_test[:n_faith], data.x_test[:n_sanity], output)
        parts = ctx.engine.map(_method_task, [(name, i == 0) for i, name in enumerate(methods)], shared=job,
                               cache=ctx.cache, desc="attribution" if ctx.progress else None)
        maps = {part.label: part.maps for part in parts}
        faith, sanity = _joined_faithfulness([p.faithfulness for p in parts]), _joined_sanity([p.sanity for p in parts])
        names = ctx.class_names
        rows = tuple(f"label {names[int(y)]}\npredicted {names[int(p)]}" for y, p in zip(data.y_test[shown], predicted))
        low, high = float(data.x_test.min()), float(data.x_test.max())
        return AttributionResult(
            methods=tuple(labelled), layer=_layer(methods), skipped=skipped_methods, faithfulness=faith,
            sanity=sanity, layer_methods=tuple(m.label for m in methods.values() if m.uses_layer),
            pictures=(x - low) / ((high - low) or 1.0),  # the gallery draws inputs on [0, 1]
            maps=maps, row_labels=rows,
        )

    def render(self, ctx: ReportContext, result: AttributionResult) -> Rendered:
        from mechscope.plots import save_figure
        from mechscope.plots.attribution import plot_attribution_grid, plot_perturbation_curves, plot_sanity_curves

        faith, sanity, output = result.faithfulness, result.sanity, ctx.settings.output
        page = ctx.site.rel("attribution.html")
        rel_maps, path = figure_path(ctx, "attribution-maps.png")
        save_figure(plot_attribution_grid(result.pictures, result.maps, row_labels=result.row_labels,
                                          title="Attribution maps for the predicted class"), path)
        rel_faith, path = figure_path(ctx, "faithfulness.png")
        save_figure(plot_perturbation_curves(faith), path)
        rel_sanity, path = figure_path(ctx, "sanity.png")
        save_figure(plot_sanity_curves(sanity), path)
        result_rows: list[list[object]] = []
        for label in result.methods:
            values = sanity.spearman[label]
            result_rows.append([label, faith.deletion_auc[label], faith.insertion_auc[label], sum(values) / len(values),
                                "pass" if sanity.passes[label] else "FAIL"])
        result_rows.append(["random map", faith.random_baseline["deletion_auc"],
                            faith.random_baseline["insertion_auc"], "", ""])
        where = "" if result.layer is None else (
            f" Layer methods ({', '.join(result.layer_methods)}) weight the channels of {result.layer}, the default "
            "layer: the last map with spatial structure, taken after its nonlinearity at the block output "
            "(mechscope.capture.default_layer).")
        which = ("" if output is None
                 else f" The explained output is {describe_output(output)} of what the model returns.")
        body = [
            paragraph(f"Each method explains the predicted class of {len(result.row_labels)} held-out images (one per "
                      f"class where possible). Maps are divided by their own largest magnitude.{where}{which}"),
            figure(ctx.site.href(page, rel_maps), "attribution maps", "Rows: images; columns: methods. Colour bars "
                   "under each column; the image is outlined on every map."),
            tag("h2", "Do the maps mean something?"),
            table(["method", "deletion AUC (lower is better)", "insertion AUC (higher is better)",
                   "mean Spearman under randomisation", f"sanity (< {sanity.threshold:g})"], result_rows),
            paragraph(f"Faithfulness over {faith.n_images} images: deleting a faithful map's top pixels first makes "
                      "the class probability fall faster than deleting random pixels. Sanity over "
                      f"{sanity.n_images} images: a map that explains the learned model must change as its layers "
                      "are re-initialised from the logits down (Adebayo et al., 2018)."),
            figure(ctx.site.href(page, rel_faith), "deletion and insertion curves", "Deletion and insertion curves."),
            figure(ctx.site.href(page, rel_sanity), "sanity check curves", "Cascading parameter randomisation."),
        ]
        if result.skipped:
            body.append(tag("h2", "Methods that do not fit this model"))
            body.append(bullets([f"{name}: {why}" for name, why in result.skipped.items()]))
        ctx.site.write_page(page, self.title, body, crumbs=section_crumbs(ctx, self.title))
        passing = [label for label in result.methods if sanity.passes[label]]
        best = min(result.methods, key=lambda label: faith.deletion_auc[label])
        summary = tag("p", f"{len(result.methods)} methods; {len(passing)} pass the sanity check; lowest deletion "
                      f"AUC: {best} ({faith.deletion_auc[best]:.3f} vs random "
                      f"{faith.random_baseline['deletion_auc']:.3f}).")
        return Rendered(page, summary)


def _methods(ctx: ReportContext) -> tuple[dict[str, Attribution], dict[str, str]]:
    """Every built-in method that runs on this model; the others with the reason."""
    data = ctx.data
    methods: dict[str, Attribution] = {}
    reasons: dict[str, str] = {}
    for name in METHODS:
        try:
            method = build_method(name, ctx.model, output=ctx.settings.output)
            if data is not None:
                method.attribute(data.x_test[:1])
        except UnsupportedModelError as err:
            reasons[name] = str(err)
            continue
        methods[name] = method
    return methods, reasons


@dataclass(frozen=True)
class _MethodJob:
    """What every method's task shares: the model and the images of the gallery, faithfulness and sanity check."""

    model: nn.Module
    gallery: Tensor  # images drawn with their maps
    predicted: Tensor  # their predicted classes
    faithfulness: Tensor  # images behind the deletion/insertion curves
    sanity: Tensor  # images behind the randomisation check
    output: OutputSpec


@dataclass(frozen=True)
class _MethodPart:
    """One method's maps and checks."""

    label: str
    maps: Tensor
    faithfulness: FaithfulnessResult
    sanity: SanityResult


def _method_task(job: _MethodJob, item: tuple[str, bool]) -> _MethodPart:
    """Everything the page says about one method (a task); the first task also scores the random maps."""
    name, with_random = item
    method = build_method(name, job.model, output=job.output)
    label = method.label
    return _MethodPart(label, method.attribute(job.gallery, job.predicted),
                       faithfulness(job.model, {label: method}, job.faithfulness, n_steps=32, output=job.output,
                                    random_maps=with_random),
                       cascading_randomization(job.model, {label: method}, job.sanity, output=job.output))


def _joined_faithfulness(parts: list[FaithfulnessResult]) -> FaithfulnessResult:
    """The methods' curves as one call over all of them gives them: methods in order, the random maps last."""
    keys = [k for p in parts for k in p.deletion if k != RANDOM] + [RANDOM]

    def pick(field: str) -> dict[str, Any]:
        merged = {k: v for p in parts for k, v in getattr(p, field).items()}
        return {k: merged[k] for k in keys}

    return FaithfulnessResult(parts[0].fractions, pick("deletion"), pick("insertion"), pick("deletion_auc"),
                              pick("insertion_auc"), parts[0].n_images)


def _joined_sanity(parts: list[SanityResult]) -> SanityResult:
    """The methods' randomisation curves as one call over all of them gives them."""
    def pick(field: str) -> dict[str, Any]:
        return {k: v for p in parts for k, v in getattr(p, field).items()}

    return SanityResult(parts[0].steps, pick("spearman"), pick("spearman_std"), pick("passes"), parts[0].threshold,
                        parts[0].n_images)


def _layer(methods: dict[str, Attribution]) -> str | None:
    """The layer the layer methods used (their default layer, found on their first call)."""
    used = [getattr(m, "layer", None) for m in methods.values() if m.uses_layer]
    return next((name for name in used if isinstance(name, str)), None)


def _one_per_class(labels: torch.Tensor, n: int) -> list[int]:
    """Indices of up to `n` inputs, one per class first (in class order), then the next inputs."""
    chosen: list[int] = []
    for c in torch.unique(labels).tolist():
        if len(chosen) >= n:
            break
        chosen.append(int((labels == c).nonzero()[0, 0]))
    for i in range(labels.shape[0]):
        if len(chosen) >= n:
            break
        if i not in chosen:
            chosen.append(i)
    return sorted(chosen)
