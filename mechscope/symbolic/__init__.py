"""Weight reading: the exact affine pieces of piecewise-linear networks, as verified formulas.

`read_formula` reads a network's function as formulas checked against it, from the regions of
`extract_regions` over the chain of `trace_chain`; `linearize` gives local tangent maps where
activations are smooth. The rest lives in the submodules: `chain` (steps, supported layers),
`regions`, `formula` (the article's text, number simplification), `relations` (seed 002's weight
relations), `transforms`, `linearize` and `reader`.
"""

from mechscope.symbolic.chain import PiecewiseLinearChain, trace_chain
from mechscope.symbolic.formula import SimplifiedFormula, simplify_formula
from mechscope.symbolic.linearize import LocalLinearization, linearize
from mechscope.symbolic.reader import FormulaReport, RegionFormula, read_formula
from mechscope.symbolic.regions import AffineRegion, RegionMap, extract_regions
from mechscope.symbolic.relations import Relation
from mechscope.symbolic.transforms import Transforms

__all__ = [
    "AffineRegion",
    "FormulaReport",
    "LocalLinearization",
    "PiecewiseLinearChain",
    "RegionFormula",
    "RegionMap",
    "Relation",
    "SimplifiedFormula",
    "Transforms",
    "extract_regions",
    "linearize",
    "read_formula",
    "simplify_formula",
    "trace_chain",
]
