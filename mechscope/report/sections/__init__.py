"""One module per report section, each defining one `ReportSection` subclass; `SECTIONS` lists them."""

import typing

from mechscope.report import section
from mechscope.report.sections.attribution import AttributionSection
from mechscope.report.sections.circuits import CircuitsSection
from mechscope.report.sections.depth import DepthSection
from mechscope.report.sections.formula import FormulaSection
from mechscope.report.sections.fourier import FourierSection
from mechscope.report.sections.overview import write_overview
from mechscope.report.sections.probes import ProbesSection
from mechscope.report.sections.transformer import AttentionSection, LensSection, PatchingSection
from mechscope.report.sections.units import UnitsSection

__all__ = [
    "SECTIONS",
    "AttributionSection",
    "CircuitsSection",
    "DepthSection",
    "FormulaSection",
    "FourierSection",
    "ProbesSection",
    "UnitsSection",
    "AttentionSection",
    "PatchingSection",
    "LensSection",
    "write_overview",
]

SECTIONS: tuple[type[section.ReportSection[typing.Any]], ...] = (
    UnitsSection,
    DepthSection,
    CircuitsSection,
    AttributionSection,
    ProbesSection,
    FormulaSection,
    FourierSection,
    AttentionSection,
    PatchingSection,
    LensSection,
)
"""The built-in sections in the order the overview shows them; `build_report` runs them in the
order of their `needs` (depth before units, units before circuits, probes and Fourier)."""
