"""Datasets as deterministic DataBundles: modular arithmetic, toy functions and digit images."""

from __future__ import annotations

from mechscope.data.bundle import DataBundle
from mechscope.data.digits import digits_data
from mechscope.data.dtypes import explain_dtype_errors
from mechscope.data.finite import check_finite
from mechscope.data.functions import function_data
from mechscope.data.idx import read_idx
from mechscope.data.modular import modular_data
from mechscope.data.registry import load_data

__all__ = [
    "DataBundle",
    "modular_data",
    "function_data",
    "digits_data",
    "read_idx",
    "load_data",
    "check_finite",
    "explain_dtype_errors",
]
