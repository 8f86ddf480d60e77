"""The one NaN/inf check every mechscope entry point runs on the tensors it is given.

`check_finite` costs a single vectorised `torch.isfinite(x).all()` when the data is clean;
only when it fails does it look for the first bad element, so the message can say which
tensor, which kind of value (nan, inf, -inf), where the first one sits, how many there
are and how to fix it.

Example:
    >>> check_finite(torch.tensor([[0.0, 1.0], [float("nan"), 2.0]]), "x_train")
    Traceback (most recent call last):
    DataError: Non-finite values in x_train: 1 of 4 (1 nan); the first is nan at index (1, 0). ...
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.errors import DataError

__all__ = ["check_finite"]

_CLEAN = "Clean the data first: drop or impute those values"


def check_finite(tensor: Tensor, name: str, *, fix: str | None = None, skip_with: str | None = None) -> Tensor:
    """Return `tensor` unchanged if every value is finite, else raise DataError.

    Integer and boolean tensors are always finite and return at once.

    Args:
        tensor: Any tensor, on any device.
        name: What the tensor is, as the message should call it ("x_train", "inputs",
            "the weights of layer 'fc1'").
        fix: How to fix it; default: drop or impute the values.
        skip_with: The opt-out of the calling entry point (e.g. "check_finite=False");
            when given, the message mentions it.

    Returns:
        `tensor`, so a check can wrap an expression.

    Raises:
        DataError: `tensor` holds NaN or +-inf. The message names `name`, the kinds of
            value and their counts, the index of the first one as a tuple, and the fix
            (a 0-d tensor, such as a loss, is reported as "... {name} is nan").

    Example:
        >>> x = check_finite(torch.rand(4, 2), "inputs")
    """
    if not isinstance(tensor, Tensor):
        raise DataError(
            f"{name} must be a torch.Tensor, got {type(tensor).__name__}; wrap it with torch.as_tensor(...)."
        )
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return tensor
    finite = torch.isfinite(tensor)
    if bool(finite.all()):
        return tensor
    raise DataError(_message(tensor, ~finite, name, fix, skip_with))


def _message(tensor: Tensor, bad: Tensor, name: str, fix: str | None, skip_with: str | None) -> str:
    """Describe the non-finite values of `tensor` (`bad` marks them); runs only on failure."""
    advice = fix if fix is not None else _CLEAN
    if skip_with is not None:
        advice += f", or pass {skip_with} to let them through (results will then hold NaN)"
    if tensor.dim() == 0:
        return f"Non-finite value: {name} is {_kind(tensor)}. {advice}."
    flat_bad = bad.reshape(-1)
    first = int(torch.argmax(flat_bad.to(torch.uint8)))  # argmax returns the first maximal entry
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(first), tuple(tensor.shape)))
    count = int(flat_bad.sum())
    kinds = _kind_counts(tensor)
    breakdown = ", ".join(f"{n:,} {kind}" for kind, n in kinds.items() if n)
    return (
        f"Non-finite values in {name}: {count:,} of {tensor.numel():,} ({breakdown}); the first is "
        f"{_kind(tensor.reshape(-1)[first])} at index {index}. {advice}."
    )


def _kind_counts(tensor: Tensor) -> dict[str, int]:
    if tensor.is_complex():
        nan = torch.isnan(tensor)
        return {"nan": int(nan.sum()), "inf": int((torch.isinf(tensor) & ~nan).sum())}
    return {
        "nan": int(torch.isnan(tensor).sum()),
        "inf": int(torch.isposinf(tensor).sum()),
        "-inf": int(torch.isneginf(tensor).sum()),
    }


def _kind(value: Tensor) -> str:
    if bool(torch.isnan(value)):
        return "nan"
    if value.is_complex():
        return "inf"
    return "inf" if float(value) > 0 else "-inf"
