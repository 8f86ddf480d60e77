"""Weight reading: the exact affine pieces of piecewise-linear networks, as verified formulas."""

from __future__ import annotations

from mechscope.symbolic.chain import (
    NON_PIECEWISE_LINEAR,
    SUPPORTED_LAYERS,
    ActivationStep,
    AffineStep,
    PiecewiseLinearChain,
    trace_chain,
)
from mechscope.symbolic.formula import SimplifiedFormula, article_formula, simplify_formula, simplify_number, variable_names
from mechscope.symbolic.linearize import LOCAL_LABEL, LocalLinearization, linearize
from mechscope.symbolic.reader import FormulaReport, RegionFormula, read_formula
from mechscope.symbolic.regions import AffineRegion, RegionMap, extract_regions, network_outputs
from mechscope.symbolic.relations import OneUnitWeights, Relation, article_relations, one_unit_weights
from mechscope.symbolic.transforms import TRANSFORM_NAMES, Transforms

__all__ = [
    "ActivationStep",
    "AffineRegion",
    "AffineStep",
    "FormulaReport",
    "LOCAL_LABEL",
    "LocalLinearization",
    "NON_PIECEWISE_LINEAR",
    "OneUnitWeights",
    "PiecewiseLinearChain",
    "RegionFormula",
    "RegionMap",
    "Relation",
    "SUPPORTED_LAYERS",
    "SimplifiedFormula",
    "TRANSFORM_NAMES",
    "Transforms",
    "article_formula",
    "article_relations",
    "extract_regions",
    "linearize",
    "network_outputs",
    "one_unit_weights",
    "read_formula",
    "simplify_formula",
    "simplify_number",
    "trace_chain",
    "variable_names",
]
