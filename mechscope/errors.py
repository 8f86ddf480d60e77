"""Errors raised by mechscope: one root, each subclass also a builtin callers would catch."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "MechscopeError",
    "LayerNameError",
    "CheckpointError",
    "DataError",
    "ConfigError",
    "NotFittedError",
    "UnsupportedModelError",
    "OutputError",
    "LimitError",
    "CaptureOverwrittenError",
    "UntrustedCodeError",
    "close_matches",
]


class MechscopeError(Exception):
    """Root of every error mechscope raises on purpose."""


class LayerNameError(MechscopeError, KeyError):
    """A layer name does not name a module of the model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(MechscopeError, ValueError):
    """A checkpoint is missing, corrupt, truncated or does not match its model."""


class DataError(MechscopeError, ValueError):
    """Data is missing, malformed or inconsistent (shapes, lengths, NaN)."""


class ConfigError(MechscopeError, ValueError):
    """A configuration value is out of range or inconsistent."""


class NotFittedError(MechscopeError, ValueError, AttributeError):
    """A fitted estimator was used before `fit`."""


class UnsupportedModelError(MechscopeError, TypeError):
    """The model is not shaped the way a method needs (e.g. CAM without a GAP head)."""


class OutputError(MechscopeError, OSError):
    """An output path cannot be written: it holds something mechscope did not write, or the OS refused."""

    def __str__(self) -> str:  # OSError would format (errno, strerror)
        return str(self.args[0]) if self.args else ""


class LimitError(MechscopeError, ValueError):
    """A size is above its documented limit, or would need more memory than the budget allows."""


class CaptureOverwrittenError(MechscopeError, RuntimeError):
    """A captured layer output was changed in place after it was captured; running again gives the right value."""


class UntrustedCodeError(ConfigError):
    """Loading a model would import user code, and the caller has not allowed it (--trust-code)."""


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to `n` candidates that look like `name`, best first."""
    pool = list(candidates)
    found = difflib.get_close_matches(name, pool, n=n, cutoff=0.5)
    if not found:
        found = [c for c in pool if name and (name in c or c in name)][:n]
    return found
