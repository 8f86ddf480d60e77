"""Choose the explained output of a model that returns more than one tensor.

Every analysis that reads a model's output (attribution targets, logit objectives, class
circuits, ablations, the report) passes what the model returned through `select_output`,
with the `output=` its caller was given. That is the one way to say which output is
explained, so a model returning a dict, a tuple or a Hugging Face `ModelOutput` needs no
wrapper module (compare pytorch-grad-cam's documented wrappers and Captum's
`forward_func`).

`output` is one of:

* None (auto): a tensor is itself; a mapping (a Hugging Face `ModelOutput` is one) with a
  "logits" entry gives that; a tuple, list or mapping holding exactly one tensor gives it.
  Anything else is ambiguous and raises, naming the keys or positions to choose from.
* a key (str): `value[key]` of a mapping (or the attribute of a named tuple).
* an index (int): `value[index]` of a tuple or list; for a `ModelOutput`, the index-th of
  its set fields (as `ModelOutput.to_tuple()`).
* a callable: `output(value)`, e.g. `lambda o: o.logits[:, -1]` for the last position of a
  language model.

Example:
    >>> select_output({"logits": logits, "features": features}) is logits
    True
    >>> select_output((logits, aux), 0) is logits
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from mechscope.errors import ConfigError, UnsupportedModelError

__all__ = ["OutputSpec", "select_output", "describe_output"]

OutputSpec = str | int | Callable[[Any], Tensor] | None
"""Which model output is explained: None (auto), a key, an index or a callable (see the module doc)."""

_AUTO_KEY = "logits"


def select_output(value: Any, output: OutputSpec = None) -> Tensor:
    """Return the tensor of a model's output that an analysis explains.

    Args:
        value: What `model(x)` returned: a tensor, a mapping (dict, `ModelOutput`), a tuple
            or list, or anything a callable `output` understands.
        output: None (auto), a key, an index or a callable; see the module docstring.

    Returns:
        The chosen tensor, with its autograd graph.

    Raises:
        UnsupportedModelError: `output` is None and the value holds no tensor, or several
            with no "logits" among them; the message lists the keys or positions.
        ConfigError: `output` is of another type, names a missing key or position, or a
            callable returns something other than a tensor.

    Example:
        >>> logits = select_output(gpt2(ids), lambda o: o.logits[:, -1])   # (batch, vocab)
    """
    if output is None:
        return _auto(value)
    if isinstance(output, bool):
        raise ConfigError(f"output must be a key, an index or a callable; got the bool {output!r}.")
    if isinstance(output, str):
        return _checked(_by_key(value, output), f"output={output!r}")
    if isinstance(output, int):
        return _checked(_by_index(value, output), f"output={output!r}")
    if callable(output):
        return _checked(output(value), f"output={_callable_name(output)}")
    raise ConfigError(
        f"output must be None, a key (str), an index (int) or a callable; got {type(output).__name__} {output!r}."
    )


def describe_output(output: OutputSpec) -> str:
    """Readable form of an output choice for reports: "auto", "'logits'", "0" or the callable's name."""
    if output is None:
        return "auto"
    if callable(output) and not isinstance(output, (str, int)):
        return _callable_name(output)
    return repr(output)


def _auto(value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, Mapping):
        found = value.get(_AUTO_KEY)
        if isinstance(found, Tensor):
            return found
        tensors = [(repr(k), v) for k, v in value.items() if isinstance(v, Tensor)]
        where, kind = "keys", "a key"
    elif isinstance(value, (tuple, list)):
        tensors = [(str(i), v) for i, v in enumerate(value) if isinstance(v, Tensor)]
        where, kind = "positions", "an index"
    else:
        raise UnsupportedModelError(
            f"The model returned a {type(value).__name__}, not a tensor, a mapping or a tuple of tensors; pass "
            "output=<callable> that picks the explained tensor from it."
        )
    if len(tensors) == 1:
        return tensors[0][1]
    listing = ", ".join(f"{name} {_shape(t)}" for name, t in tensors) or "none"
    what = "no tensor" if not tensors else f"{len(tensors)} tensors and no {_AUTO_KEY!r} entry"
    example = f"output={tensors[0][0]}" if tensors else "output=lambda out: ..."
    raise UnsupportedModelError(
        f"The model returned a {type(value).__name__} with {what} ({where}: {listing}), so the explained output is "
        f"ambiguous; pass output= with {kind} or a callable that picks it (e.g. {example})."
    )


def _by_key(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        keys = ", ".join(repr(k) for k in value.keys()) or "none"
        raise ConfigError(f"output={key!r} is not a key of the model's {type(value).__name__} (keys: {keys}).")
    fields = getattr(value, "_fields", None)  # a named tuple
    if isinstance(fields, tuple) and key in fields:
        return getattr(value, key)
    raise ConfigError(
        f"output={key!r} selects a key, but the model returned a {type(value).__name__}"
        + (f" with positions 0-{len(value) - 1}; pass an index instead." if isinstance(value, (tuple, list))
           else "; pass output=<callable> instead.")
    )


def _by_index(value: Any, index: int) -> Any:
    if isinstance(value, Mapping):
        if index in value:
            return value[index]
        to_tuple = getattr(value, "to_tuple", None)  # a Hugging Face ModelOutput indexes its set fields
        if callable(to_tuple):
            items = tuple(to_tuple())
            if -len(items) <= index < len(items):
                return items[index]
        keys = ", ".join(repr(k) for k in value.keys()) or "none"
        raise ConfigError(
            f"output={index!r} selects a position, but the model returned a {type(value).__name__} with keys "
            f"{keys}; pass one of the keys instead."
        )
    if isinstance(value, (tuple, list)):
        if -len(value) <= index < len(value):
            return value[index]
        raise ConfigError(
            f"output={index!r} is out of range: the model returned a {type(value).__name__} of {len(value)} items "
            f"(positions 0-{len(value) - 1})."
        )
    raise ConfigError(
        f"output={index!r} selects a position, but the model returned a {type(value).__name__}; "
        "pass output=<callable> instead."
    )


def _checked(chosen: Any, how: str) -> Tensor:
    if not isinstance(chosen, Tensor):
        raise ConfigError(f"{how} picked a {type(chosen).__name__} from the model's output, not a tensor.")
    return chosen


def _shape(tensor: Tensor) -> str:
    return "(" + ", ".join(str(d) for d in tensor.shape) + ")"


def _callable_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__
