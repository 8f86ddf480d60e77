"""Turn torch's dtype errors from a forward pass into a DataError that says what to convert.

A float64 batch fed to a float32 model fails deep inside torch ("mat1 and mat2 must have
the same dtype", "Input type (double) and bias type (float) should be the same", "RNN input
dtype ... does not match weight dtype"). Checking dtypes *before* the forward would break
models that cast their inputs themselves and models whose nn.Embedding takes integer ids,
so mechscope checks *after*: when the forward raises a dtype error and the inputs' dtype
differs from the model's floating parameters, the error becomes a DataError naming both
dtypes and the conversion; anything else propagates unchanged.

Example:
    >>> with explain_dtype_errors(model, x):
    ...     model(x)
    Traceback (most recent call last):
    DataError: inputs are float64 but the model's parameters are float32; convert with x.float() ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from mechscope.errors import DataError, MechscopeError

__all__ = ["dtype_error", "dtype_mismatch", "explain_dtype_errors", "parameter_dtype"]

_CONVERTERS = {
    torch.float32: "float",
    torch.float64: "double",
    torch.float16: "half",
    torch.bfloat16: "bfloat16",
}
_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


def parameter_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating parameter (or buffer); None if it has none."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def dtype_mismatch(model: nn.Module, inputs: Tensor, name: str = "inputs") -> str | None:
    """Say how `inputs`' dtype disagrees with the model's floating parameters, or return None.

    Integer inputs to a model that holds an nn.Embedding are token ids, not a mismatch.

    Args:
        model: The model `inputs` are fed to.
        inputs: Its input batch.
        name: What to call `inputs` in the message.

    Returns:
        A sentence naming both dtypes and the conversion, or None when they agree.
    """
    expected = parameter_dtype(model)
    if expected is None or not isinstance(inputs, Tensor) or inputs.dtype == expected:
        return None
    is_float = inputs.is_floating_point() or inputs.is_complex()
    if not is_float and any(isinstance(m, _EMBEDDINGS) for m in model.modules()):
        return None
    got, want = _short(inputs.dtype), _short(expected)
    fix = f"convert with x.{_CONVERTERS[expected]}()" if expected in _CONVERTERS else f"convert with x.to({expected})"
    if is_float and inputs.dtype in _CONVERTERS:
        fix += f" (or model.{_CONVERTERS[inputs.dtype]}())"
    elif not is_float:
        fix += "; a model that takes integer ids needs an nn.Embedding to read them"
    return f"{name} are {got} but the model's parameters are {want}; {fix}"


def dtype_error(err: BaseException, model: nn.Module, inputs: Tensor, name: str = "inputs") -> DataError | None:
    """The DataError to raise instead of `err`, if `err` is a torch dtype error explained by `inputs`.

    Args:
        err: What the forward pass raised.
        model: The model that ran.
        inputs: The batch it was given.
        name: What to call `inputs` in the message.

    Returns:
        A DataError naming the mismatch and quoting torch, or None to let `err` propagate.
    """
    if isinstance(err, MechscopeError) or not isinstance(err, (RuntimeError, TypeError, ValueError)):
        return None
    said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "type" not in said.lower():  # every torch dtype complaint says "dtype", "type" or "datatype"
        return None
    message = dtype_mismatch(model, inputs, name)
    if message is None:
        return None
    return DataError(f"{message}. (torch said: {said})")


@contextmanager
def explain_dtype_errors(model: nn.Module, inputs: Tensor, name: str = "inputs") -> Iterator[None]:
    """Re-raise a torch dtype error from the block as a DataError when `inputs` caused it.

    Example:
        >>> with explain_dtype_errors(model, x):
        ...     logits = model(x)
    """
    try:
        yield
    except (RuntimeError, TypeError, ValueError) as err:
        clear = dtype_error(err, model, inputs, name)
        if clear is None:
            raise
        raise clear from err


def _short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
