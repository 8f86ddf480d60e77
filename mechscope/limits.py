"""Documented size limits, and memory estimates checked before anything is allocated.

Sizes that come from flags, checkpoints or data files are checked twice: against a
fixed limit that keeps a typo from building 10^8 modules (`MAX_LAYERS`, ...), and against
the memory they would need, estimated before allocating, which must stay under the
memory budget: `MECHSCOPE_MAX_MEMORY` (e.g. `8GB`) or, by default, half of this
machine's physical memory.

Example:
    >>> check_memory(4 * 10**12, "the weights of ModularMLP")
    Traceback (most recent call last):
    LimitError: the weights of ModularMLP would need about 4.0 TB, more than the memory budget ...
"""

from __future__ import annotations

import math
import os
import re

from mechscope.errors import LimitError

__all__ = [
    "MAX_LAYERS",
    "MAX_WIDTH",
    "MAX_MODULUS",
    "MAX_CLASSES",
    "MAX_STEPS",
    "MAX_RESTARTS",
    "MAX_DRAWS",
    "MAX_SEED",
    "MEMORY_ENV",
    "check_memory",
    "check_limit",
    "memory_budget",
    "parse_size",
    "format_size",
]

MAX_LAYERS = 1_024  # layers of a built-in model (hidden blocks, conv blocks)
MAX_WIDTH = 1 << 20  # units of one layer, inputs of a model, kernels of a probe
MAX_MODULUS = 10_000  # modulus of modular arithmetic data (all pairs: p * p examples)
MAX_CLASSES = 100_000  # classes of a classification data set
MAX_STEPS = 10_000_000  # optimisation steps or epochs of one run
MAX_RESTARTS = 1_024  # restarts per unit in feature visualisation
MAX_DRAWS = 10_000  # random draws (control sets of an ablation, random baselines)
MAX_SEED = 2**63 - 1  # largest seed torch and numpy generators take
MEMORY_ENV = "MECHSCOPE_MAX_MEMORY"

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in a size such as `2GB`, `512M`, `1.5GiB` or `1000000` (powers of 1024).

    Raises:
        LimitError: the text is not a size.
    """
    found = _SIZE.match(str(text))
    if found is None:
        raise LimitError(f"{text!r} is not a memory size; write it like 8GB, 512MB or 2.5G.")
    return int(float(found.group(1)) * _UNITS[found.group(2).lower()])


def format_size(n_bytes: float) -> str:
    """A byte count for people: `1.5 GB` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n_bytes) < 1024 or unit == "TB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} PB"  # pragma: no cover - the loop returns at TB


def memory_budget() -> tuple[int, str]:
    """(bytes any one allocation may need, where that number comes from)."""
    text = os.environ.get(MEMORY_ENV)
    if text:
        return parse_size(text), f"{MEMORY_ENV}={text}"
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: assume a small machine
        physical = 8 << 30
    return physical // 2, "half of this machine's memory"


def check_memory(n_bytes: float, what: str) -> None:
    """Raise LimitError when `what` would need more than the memory budget.

    Raises:
        LimitError: naming the estimate, the budget and how to raise it.
    """
    budget, source = memory_budget()
    if not math.isfinite(n_bytes) or n_bytes > budget:
        raise LimitError(
            f"{what} would need about {format_size(n_bytes)}, more than the memory budget of "
            f"{format_size(budget)} ({source}); use smaller sizes, or set {MEMORY_ENV} (e.g. {MEMORY_ENV}=64GB) "
            "if the machine has the memory."
        )


def check_limit(name: str, value: int, limit: int) -> int:
    """Return `value`, or raise LimitError when it is above the documented `limit`."""
    if value > limit:
        raise LimitError(f"{name} is {value}, above the limit of {limit}; choose a smaller {name}.")
    return value
