"""Weight reading: recover the function a piecewise-linear network computes as verified formulas.

`read_formula` ties the pieces together: the affine regions the data visits
(`extract_regions`), each region's formula in the article's style and in a simplified
sympy form (in the original space when transforms are declared), the article's weight
relations for one-unit networks, and the fit to the data's targets.

Example:
    >>> data = function_data("weighted")
    >>> report = read_formula(model, data)          # test split, transforms from data.extras
    >>> report.affine_on_data, report.formulas[0].formula
    (True, 'f(X) = 1.45*x1 + 0.05*x2 + -0.84*x3 + -0.38*x4 + 0.19*x5 + -0.85')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.data.bundle import DataBundle, DataPart
from mechscope.errors import ConfigError, DataError, UnsupportedModelError
from mechscope.serialize import to_json
from mechscope.symbolic.formula import SimplifiedFormula, article_formula, simplify_formula
from mechscope.symbolic.regions import AffineRegion, RegionMap, extract_regions
from mechscope.symbolic.relations import Relation, article_relations
from mechscope.symbolic.transforms import Transforms

__all__ = ["RegionFormula", "FormulaReport", "read_formula"]


@dataclass(frozen=True)
class RegionFormula:
    """One region with its formulas.

    Attributes:
        region: The affine region (coverage, exact map, error against the network).
        formula: Article-style formula, in the original space when transforms are declared.
        network_formula: Article-style formula of the exact map in the network's own space.
        simplified: Readable sympy form with its own measured error.
    """

    region: AffineRegion
    formula: str
    network_formula: str
    simplified: SimplifiedFormula

    def __json__(self) -> dict[str, Any]:
        """The region's JSON, flat, plus `formula`, `network_formula` and `simplified`."""
        return {
            **to_json(self.region),
            "formula": self.formula,
            "network_formula": self.network_formula,
            "simplified": self.simplified,
        }


@dataclass(frozen=True)
class FormulaReport:
    """What `read_formula` found.

    Attributes:
        region_map: Every region the data visits, with per-point assignments.
        formulas: Formulas of the largest regions (at most `max_regions`), largest first.
        transforms: Declared input/output transforms.
        relations: The article's weight relations (empty unless the target is known and the
            network is one ReLU unit).
        target: Known target {"coefficients": [...], "constant": c}, or None.
        metrics: "mse" against the data's targets in the network's space, "mse_original" in
            the original space (with transforms), plus coefficient errors when a target is known.
        notes: Why something was left out (e.g. relations for a wider network).
    """

    region_map: RegionMap
    formulas: tuple[RegionFormula, ...]
    transforms: Transforms
    relations: dict[str, Relation] = field(default_factory=dict)
    target: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def affine_on_data(self) -> bool:
        """True when one region covers at least the affine threshold (99% by default) of the data."""
        return self.region_map.affine_on_data

    @property
    def formula(self) -> str | None:
        """The network's formula on the data when it is affine there, else None."""
        return self.formulas[0].formula if self.affine_on_data else None

    def holds_on(self) -> str:
        """Where the main formula holds, in words."""
        top = self.region_map.dominant
        rest = 1.0 - top.coverage
        units = self.region_map.unit_names
        if len(units) == 1:
            share = float(self.region_map.unit_active_fraction[0])
            state = "active" if top.patterns[0] == "1" else "inactive"
            if rest == 0.0:
                return (
                    f"The ReLU unit is active on {share:.4%} of the data; the formula (unit {state}) "
                    "holds on every point."
                )
            return (
                f"The ReLU unit is active on {share:.4%} of the data. The formula holds only where the unit is "
                f"{state} ({top.coverage:.4%} of the points); on the other {rest:.4%} the network computes a "
                "different affine piece."
            )
        if rest == 0.0:
            return f"The formula holds on all {self.region_map.n_points} points (one activation region)."
        return (
            f"The formula holds only on its region ({top.coverage:.4%} of the points); the other {rest:.4%} "
            f"fall in {len(self.region_map.regions) - 1} other region(s) with their own formulas."
        )

    def __json__(self) -> dict[str, Any]:
        """The headline (`affine_on_data`, `formula`, `holds_on`), the listed regions, then the counts."""
        rm = self.region_map
        return {
            "affine_on_data": self.affine_on_data,
            "formula": self.formula,
            "simplified_formula": self.formulas[0].simplified.text if self.affine_on_data else None,
            "holds_on": self.holds_on(),
            "regions": self.formulas,
            "relations": self.relations,
            "n_points": rm.n_points,
            "n_patterns": rm.n_patterns,
            "n_regions": len(rm.regions),
            "regions_listed": len(self.formulas),
            "affine_threshold": rm.affine_threshold,
            "max_abs_error": rm.max_abs_error,
            "unit_active_fraction": dict(zip(rm.unit_names, rm.unit_active_fraction.tolist())),
            "transforms": self.transforms,
            "target": self.target,
            "metrics": self.metrics,
            "notes": self.notes,
        }

    def to_text(self) -> str:
        """A readable summary of the report."""
        rm = self.region_map
        lines = []
        if self.affine_on_data:
            lines.append(f"The network is affine on the data: one region covers {rm.dominant.coverage:.4%}.")
        else:
            lines.append(
                f"The network is NOT affine on the data: the largest of {len(rm.regions)} regions covers "
                f"{rm.dominant.coverage:.4%} (< {rm.affine_threshold:.0%})."
            )
        lines.append(self.holds_on())
        for i, f in enumerate(self.formulas, start=1):
            lines.append("")
            lines.append(
                f"Region {i}: coverage {f.region.coverage:.4%} ({f.region.n_points} points), "
                f"max |formula - network| = {f.region.max_abs_error:.3g}"
            )
            lines.append(_indent(f.formula))
            if not self.transforms.is_identity:
                lines.append(_indent(f"network space: {f.network_formula}"))
            lines.append(
                f"  simplified (tolerance {f.simplified.tolerance:g}), max |simplified - network| = "
                f"{f.simplified.max_abs_error:.3g} ({f.simplified.space} space):"
            )
            lines.append(_indent(f.simplified.text))
        if len(rm.regions) > len(self.formulas):
            rest = sum(r.coverage for r in rm.regions[len(self.formulas) :])
            lines.append(f"... {len(rm.regions) - len(self.formulas)} more region(s) covering {rest:.4%}.")
        if self.relations:
            tol = next(iter(self.relations.values())).tolerance
            lines.append("")
            lines.append(f"Relations (tolerance {tol:g}):")
            for r in self.relations.values():
                mark = "holds" if r.holds else "FAILS"
                lines.append(f"  {r.statement}: {r.value:.6g} vs {r.expected:.6g}  {mark}")
        if self.metrics:
            lines.append("")
            lines.append("Metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items()))
        lines.extend(f"Note: {note}" for note in self.notes)
        return "\n".join(lines)


def read_formula(
    model: nn.Module,
    data: DataBundle | Tensor,
    *,
    split: DataPart = "test",
    transforms: Transforms | None = None,
    target: Mapping[str, Any] | None = None,
    tolerance: float = 0.01,
    relation_tolerance: float = 1e-2,
    affine_threshold: float = 0.99,
    max_regions: int = 20,
) -> FormulaReport:
    """Read the formula(s) a piecewise-linear network computes on data, verified against it.

    Args:
        model: A chain of Linear / ReLU / LeakyReLU / Identity / BatchNorm1d / Flatten /
            Dropout layers (see `trace_chain`).
        data: A DataBundle (its `split` is used; transforms and the target function are read
            from its extras) or a tensor of inputs (batch, ...).
        split: "test", "train" or "all" (train then test) for a DataBundle.
        transforms: Declared input/output transforms; None reads `data.extras["transforms"]`.
        target: Known target {"coefficients": [...], "constant": c}; None reads a function
            DataBundle's extras.
        tolerance: Largest change the simplified formula may make to any displayed parameter.
        relation_tolerance: Absolute tolerance of the article's relations.
        affine_threshold: Coverage from which the network counts as affine on the data.
        max_regions: Regions to write formulas for (all regions are still enumerated).

    Returns:
        FormulaReport; every formula's error is measured against the network itself.

    Raises:
        UnsupportedModelError: The model is not piecewise linear (use `linearize`).
        ConfigError: Unknown split, max_regions < 1, or a malformed target.
        DataError: The data does not fit the model.
    """
    if isinstance(max_regions, bool) or not isinstance(max_regions, int) or max_regions < 1:
        raise ConfigError(f"max_regions must be a positive integer, got {max_regions!r}.")
    x, y, y_original = _split(data, split)
    if transforms is None:
        transforms = Transforms.from_extras(data.extras) if isinstance(data, DataBundle) else Transforms()
    if target is None and isinstance(data, DataBundle):
        target = _target_from(data)
    region_map = extract_regions(model, x, affine_threshold=affine_threshold)
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    formulas = _region_formulas(region_map, flat, transforms, tolerance=tolerance, max_regions=max_regions)
    notes: list[str] = []
    relations: dict[str, Relation] = {}
    target_dict = None
    metrics = _fit_metrics(region_map, y, y_original, transforms)
    if target is not None:
        coefficients, constant = _check_target(target, flat.shape[1], region_map.network_output.shape[1])
        target_dict = {"coefficients": coefficients, "constant": constant}
        metrics.update(_coefficient_errors(region_map.dominant, coefficients, constant))
        try:
            relations = article_relations(
                model, x[:4], coefficients=coefficients, constant=constant, tolerance=relation_tolerance
            )
        except UnsupportedModelError as err:
            notes.append(f"Relations skipped: {err}")
    return FormulaReport(
        region_map=region_map,
        formulas=formulas,
        transforms=transforms,
        relations=relations,
        target=target_dict,
        metrics=metrics,
        notes=tuple(notes),
    )


def _region_formulas(
    region_map: RegionMap, flat: Tensor, transforms: Transforms, *, tolerance: float, max_regions: int
) -> tuple[RegionFormula, ...]:
    """The formulas of the `max_regions` largest regions, each simplified on the points it covers.

    Args:
        region_map: The regions, largest first.
        flat: The inputs, (batch, n_features) float64.
        transforms: Declared input/output transforms.
        tolerance: Largest change the simplified formula may make to any displayed parameter.
        max_regions: Regions to write formulas for.
    """
    formulas = []
    for index, region in enumerate(region_map.regions[:max_regions]):
        covered = region_map.region_index == index
        formulas.append(
            RegionFormula(
                region=region,
                formula=article_formula(region.coefficients, region.intercept, transforms=transforms),
                network_formula=article_formula(region.coefficients, region.intercept),
                simplified=simplify_formula(
                    region.coefficients,
                    region.intercept,
                    flat[covered],
                    region_map.network_output[covered],
                    transforms=transforms,
                    tolerance=tolerance,
                ),
            )
        )
    return tuple(formulas)


def _indent(text: str) -> str:
    """Indent every line of a (possibly multi-line) formula by two spaces."""
    return "\n".join(f"  {line}" for line in text.splitlines())


def _split(data: DataBundle | Tensor, split: str) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(inputs, targets or None, original-space targets or None) of the requested split, on the CPU."""
    if isinstance(data, Tensor):
        return data.detach().cpu(), None, None  # formulas are read on the CPU; the model's passes move them
    if not isinstance(data, DataBundle):
        raise DataError(f"data must be a DataBundle or an input tensor, got {type(data).__name__}.")
    if split == "test":
        raw = data.extras.get("y_test_raw")
        return data.x_test, data.y_test, raw if isinstance(raw, Tensor) else None
    if split == "train":
        return data.x_train, data.y_train, None
    if split == "all":
        return torch.cat([data.x_train, data.x_test]), torch.cat([data.y_train, data.y_test]), None
    raise ConfigError(f"split must be 'test', 'train' or 'all', got {split!r}.")


def _target_from(data: DataBundle) -> dict[str, Any] | None:
    """The known target function of function data, else None."""
    if data.spec.get("kind") != "function" or "coefficients" not in data.extras:
        return None
    return {"coefficients": list(data.extras["coefficients"]), "constant": float(data.extras.get("constant", 0.0))}


def _check_target(target: Mapping[str, Any], n_features: int, n_outputs: int) -> tuple[list[float], float]:
    try:
        coefficients = [float(c) for c in target["coefficients"]]
        constant = float(target.get("constant", 0.0))
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f'target must look like {{"coefficients": [m1, ..., mn], "constant": c}}, got {dict(target)!r}.'
        ) from err
    if len(coefficients) != n_features or n_outputs != 1:
        raise ConfigError(
            f"target has {len(coefficients)} coefficients for a network with {n_features} inputs and "
            f"{n_outputs} outputs; a target needs one output and one coefficient per input."
        )
    return coefficients, constant


def _fit_metrics(
    region_map: RegionMap, y: Tensor | None, y_original: Tensor | None, transforms: Transforms
) -> dict[str, float]:
    """MSE of the network against the data's targets, in network and original space."""
    if y is None or not y.is_floating_point():
        return {}
    out = region_map.network_output
    target = y.reshape(y.shape[0], -1).to(torch.float64)
    if target.shape != out.shape:
        return {}
    metrics = {"mse": float(((out - target) ** 2).mean())}
    if not transforms.is_identity:
        original = (
            y_original.reshape(out.shape).to(torch.float64)
            if y_original is not None
            else transforms.original_outputs(target)
        )
        metrics["mse_original"] = float(((transforms.original_outputs(out) - original) ** 2).mean())
    return metrics


def _coefficient_errors(region: AffineRegion, coefficients: Sequence[float], constant: float) -> dict[str, float]:
    """Largest |recovered - true| coefficient and |recovered - true| constant of the main region."""
    true = torch.tensor(coefficients, dtype=torch.float64, device="cpu")
    error = (region.coefficients[0] - true).abs().max()
    return {"max_coefficient_error": float(error), "constant_error": abs(float(region.intercept[0]) - constant)}
