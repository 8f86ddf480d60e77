"""One module per report section; each exposes `build_<key>(ctx) -> Section`."""

from mechscope.report.sections.attribution import build_attribution
from mechscope.report.sections.circuits import build_circuits
from mechscope.report.sections.depth import build_depth
from mechscope.report.sections.formula import build_formula
from mechscope.report.sections.fourier import build_fourier
from mechscope.report.sections.overview import write_overview
from mechscope.report.sections.probes import build_probes
from mechscope.report.sections.units import build_units

__all__ = [
    "build_attribution",
    "build_circuits",
    "build_depth",
    "build_formula",
    "build_fourier",
    "build_probes",
    "build_units",
    "write_overview",
]
