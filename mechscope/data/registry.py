"""Rebuild a DataBundle from its JSON spec by dispatching on spec["kind"]."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from mechscope.data.arrays import npz_data, safetensors_data
from mechscope.data.bundle import DataBundle
from mechscope.data.digits import digits_data
from mechscope.data.functions import function_data
from mechscope.data.images import image_data
from mechscope.data.modular import modular_data
from mechscope.errors import ConfigError, close_matches

__all__ = ["load_data", "DATA_BUILDERS"]

DATA_BUILDERS: dict[str, Callable[..., DataBundle]] = {
    "modular": modular_data,
    "function": function_data,
    "digits": digits_data,
    "npz": npz_data,
    "safetensors": safetensors_data,
    "images": image_data,
}
"""spec["kind"] -> the function whose keyword arguments are the rest of the spec."""

_IN_MEMORY = "tensors"  # the kind DataBundle.from_tensors records; no builder can rebuild it


def load_data(spec: Mapping[str, Any]) -> DataBundle:
    """Rebuild the bundle a spec describes; `load_data(bundle.spec) == bundle`.

    Args:
        spec: A bundle's `spec` (also after a JSON round trip): "kind" plus the
            builder's arguments, e.g. {"kind": "modular", "modulus": 2, ...}.

    Returns:
        The DataBundle the builder returns for those arguments.

    Raises:
        ConfigError: spec is not a mapping, lacks "kind", names an unknown kind or the
            "tensors" kind of in-memory data (which has no builder), or carries keys the
            builder does not take (plus any error of the builder).

    Example:
        >>> from mechscope.data import modular_data
        >>> data = modular_data(5, "*")
        >>> load_data(data.spec) == data
        True
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"A data spec is a dict such as bundle.spec, got {type(spec).__name__}: {spec!r}.")
    kinds = ", ".join(repr(k) for k in DATA_BUILDERS)
    if "kind" not in spec:
        raise ConfigError(f"Data spec {dict(spec)!r} has no 'kind'; add one of {kinds}.")
    kind = spec["kind"]
    if kind == _IN_MEMORY:
        raise ConfigError(
            "This data spec describes a bundle built from in-memory tensors (DataBundle.from_tensors), which cannot "
            "be rebuilt from its spec; save the data with bundle.save('data.safetensors') (or np.savez) and use the "
            "spec of the bundle that returns (or load_data({'kind': 'npz', 'path': ...}))."
        )
    builder = DATA_BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        hint = close_matches(kind, DATA_BUILDERS) if isinstance(kind, str) else []
        did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(f"Unknown data kind {kind!r}; choose one of {kinds}.{did_you_mean}")
    arguments = {key: value for key, value in spec.items() if key != "kind"}
    accepted = set(inspect.signature(builder).parameters)
    unknown = sorted(set(arguments) - accepted)
    if unknown:
        raise ConfigError(
            f"Data spec for kind {kind!r} has unknown keys {unknown}; {builder.__name__} takes "
            f"{sorted(accepted)}. Use a spec produced by a DataBundle."
        )
    return builder(**arguments)
