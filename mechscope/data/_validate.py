"""Argument checks shared by the data builders; each raises ConfigError with a fix."""

from __future__ import annotations

import numbers
from typing import Any

from mechscope.errors import ConfigError

_MAX_SEED = 2**63 - 1


def check_int(name: str, value: Any, *, minimum: int, hint: str = "") -> int:
    """Return `value` as a Python int, or raise ConfigError if it is not an integer >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        fix = f" {hint}" if hint else ""
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.{fix}")
    return int(value)


def check_fraction(name: str, value: Any) -> float:
    """Return `value` as a float strictly between 0 and 1, or raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) < 1.0:
        raise ConfigError(
            f"{name} must be a number strictly between 0 and 1, got {value!r}; "
            f"pass e.g. {name}=0.25 to hold out a quarter of the examples."
        )
    return float(value)


def check_seed(value: Any) -> int:
    """Return `value` as a non-negative Python int usable by torch and numpy generators."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) <= _MAX_SEED:
        raise ConfigError(f"seed must be an integer in [0, 2**63 - 1], got {value!r}; pass e.g. seed=0.")
    return int(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return `value` if it is one of `choices`, else raise ConfigError listing them."""
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"Unknown {name} {value!r}; choose one of {options}.")
    return value
