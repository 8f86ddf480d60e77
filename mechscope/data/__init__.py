"""Datasets as deterministic DataBundles: built-in toys and digits, or your own tensors, array files and images."""

from __future__ import annotations

from mechscope.data.arrays import npz_data, safetensors_data
from mechscope.data.bundle import DataBundle, DataPart
from mechscope.data.digits import digits_data
from mechscope.data.dtypes import explain_dtype_errors
from mechscope.data.finite import check_finite
from mechscope.data.functions import function_data
from mechscope.data.idx import read_idx
from mechscope.data.images import image_data
from mechscope.data.modular import modular_data
from mechscope.data.registry import load_data
from mechscope.data.sources import SOURCE_FORMS, data_from_source

__all__ = [
    "DataBundle",
    "DataPart",
    "modular_data",
    "function_data",
    "digits_data",
    "read_idx",
    "npz_data",
    "safetensors_data",
    "image_data",
    "data_from_source",
    "SOURCE_FORMS",
    "load_data",
    "check_finite",
    "explain_dtype_errors",
]
