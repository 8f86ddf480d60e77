"""Attribution galleries with their sanity check (parameter randomisation) and faithfulness curves."""

from __future__ import annotations

import torch

from mechscope.attribution import METHODS, Attribution, build_method, cascading_randomization, faithfulness
from mechscope.capture import describe_output
from mechscope.errors import UnsupportedModelError
from mechscope.report.context import ReportContext
from mechscope.report.html import paragraph, table, tag
from mechscope.report.section import Section, figure_path, section_crumbs, skipped
from mechscope.report.widgets import bullets, figure

__all__ = ["build_attribution", "TITLE"]

TITLE = "Attribution"


def build_attribution(ctx: ReportContext) -> Section:
    """Maps of every method that fits the model, over test images of different classes, with checks."""
    if ctx.data is None or not ctx.is_image or not ctx.is_classifier:
        what = "no data was given" if ctx.data is None else (
            f"the model takes inputs of shape {'x'.join(str(d) for d in ctx.data.x_test.shape[1:])}, not images"
            if not ctx.is_image else "the model is not a classifier returning logits")
        return skipped("attribution", TITLE, f"attribution maps explain image classifiers; {what}.")
    from mechscope.plots import save_figure
    from mechscope.plots.attribution import plot_attribution_grid, plot_perturbation_curves, plot_sanity_curves

    settings, data, model = ctx.settings, ctx.data, ctx.model
    methods, skipped_methods = _methods(ctx)
    labelled = {m.label: m for m in methods.values()}
    page = ctx.site.rel("attribution.html")
    shown = _one_per_class(data.y_test, settings.attribution_images)
    x = data.x_test[shown]
    predicted = ctx.explained(x).argmax(dim=1)
    output = ctx.settings.output
    maps = {label: m.attribute(x, predicted) for label, m in labelled.items()}
    names = ctx.class_names
    rows = [f"label {names[int(y)]}\npredicted {names[int(p)]}" for y, p in zip(data.y_test[shown], predicted)]
    low, high = float(data.x_test.min()), float(data.x_test.max())
    pictures = (x - low) / ((high - low) or 1.0)  # the gallery draws inputs on [0, 1]
    rel_maps, path = figure_path(ctx, "attribution-maps.png")
    grid = plot_attribution_grid(pictures, maps, row_labels=rows, title="Attribution maps for the predicted class")
    save_figure(grid, path)

    n_faith = min(settings.faithfulness_images, data.x_test.shape[0])
    faith = faithfulness(model, labelled, data.x_test[:n_faith], n_steps=32, output=output)
    rel_faith, path = figure_path(ctx, "faithfulness.png")
    save_figure(plot_perturbation_curves(faith), path)
    n_sanity = min(settings.sanity_images, data.x_test.shape[0])
    sanity = cascading_randomization(model, labelled, data.x_test[:n_sanity], output=output)
    rel_sanity, path = figure_path(ctx, "sanity.png")
    save_figure(plot_sanity_curves(sanity), path)

    result_rows = []
    for label in labelled:
        values = sanity.spearman[label]
        result_rows.append([
            label, faith.deletion_auc[label], faith.insertion_auc[label], sum(values) / len(values),
            "pass" if sanity.passes[label] else "FAIL",
        ])
    result_rows.append(["random map", faith.random_baseline["deletion_auc"], faith.random_baseline["insertion_auc"],
                        "", ""])
    layer = _layer(methods)
    where = "" if layer is None else (
        f" Layer methods ({', '.join(m.label for m in methods.values() if m.uses_layer)}) weight the channels "
        f"of {layer}, the default layer: the last map with spatial structure, taken after its nonlinearity at the "
        "block output (mechscope.capture.default_layer).")
    which = "" if output is None else f" The explained output is {describe_output(output)} of what the model returns."
    body = [
        paragraph(f"Each method explains the predicted class of {len(shown)} held-out images (one per class where "
                  f"possible). Maps are divided by their own largest magnitude.{where}{which}"),
        figure(ctx.site.href(page, rel_maps), "attribution maps", "Rows: images; columns: methods. Colour bars "
               "under each column; the image is outlined on every map."),
        tag("h2", "Do the maps mean something?"),
        table(["method", "deletion AUC (lower is better)", "insertion AUC (higher is better)",
               "mean Spearman under randomisation", f"sanity (< {sanity.threshold:g})"], result_rows),
        paragraph(f"Faithfulness over {faith.n_images} images: deleting a faithful map's top pixels first makes the "
                  "class probability fall faster than deleting random pixels. Sanity over "
                  f"{sanity.n_images} images: a map that explains the learned model must change as its layers are "
                  "re-initialised from the logits down (Adebayo et al., 2018)."),
        figure(ctx.site.href(page, rel_faith), "deletion and insertion curves", "Deletion and insertion curves."),
        figure(ctx.site.href(page, rel_sanity), "sanity check curves", "Cascading parameter randomisation."),
    ]
    if skipped_methods:
        body.append(tag("h2", "Methods that do not fit this model"))
        body.append(bullets([f"{name}: {why}" for name, why in skipped_methods.items()]))
    ctx.site.write_page(page, TITLE, body, crumbs=section_crumbs(ctx, TITLE))
    passing = [label for label in labelled if sanity.passes[label]]
    best = min(labelled, key=lambda label: faith.deletion_auc[label])
    summary = tag("p", f"{len(labelled)} methods; {len(passing)} pass the sanity check; lowest deletion AUC: {best} "
                  f"({faith.deletion_auc[best]:.3f} vs random {faith.random_baseline['deletion_auc']:.3f}).")
    data_out = {"methods": list(labelled), "layer": layer, "skipped": skipped_methods,
                "faithfulness": faith.to_dict(), "sanity": sanity.to_dict()}
    ctx.results["attribution"] = data_out
    return Section("attribution", TITLE, page, summary=summary, data=data_out)


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
