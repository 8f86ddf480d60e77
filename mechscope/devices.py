"""Choose the device a model runs on: `auto`, `cpu`, `cuda`, `cuda:N` or `mps`, checked to exist.

Analyses never pick a device themselves: they follow the model's (`model_device`), move
their inputs, noise and buffers there, and hand results back on the CPU for plotting.
`resolve_device` is what the command line's `--device` goes through.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("auto").type in {"cpu", "cuda"}
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from mechscope.errors import ConfigError

__all__ = ["DEVICE_CHOICES", "resolve_device", "available_devices", "threads"]

DEVICE_CHOICES = "auto|cpu|cuda|cuda:N|mps"
_PATTERN = re.compile(r"auto|cpu|mps|cuda(?::(\d{1,4}))?")


def available_devices() -> list[str]:
    """The devices this machine can run on, e.g. ["cpu", "cuda:0", "cuda:1"]."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return found


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch.device `name` stands for; `auto` is the first CUDA device when there is one, else the CPU.

    Raises:
        ConfigError: the name is not one of auto, cpu, cuda, cuda:N, mps, or that device is
            not on this machine (the message lists the ones that are).
    """
    text = str(name).strip().lower()
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise ConfigError(f"unknown device {str(name)!r}; choose one of {DEVICE_CHOICES}.")
    available = ", ".join(available_devices())
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise ConfigError(f"device 'mps' is not available on this machine (needs Apple silicon); "
                              f"available: {available}.")
        return torch.device("mps")
    if not torch.cuda.is_available():
        built = "built without CUDA" if torch.version.cuda is None else "built with CUDA, but no GPU is visible"
        raise ConfigError(
            f"device {text!r} is not available: PyTorch {torch.__version__} is {built}; available: {available}. "
            "Use --device cpu (or auto)."
        )
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device {text!r} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s); available: {available}.")
    return torch.device("cuda", index)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run torch on `n` intra-op threads inside the block, then restore the previous count.

    One thread makes float sums come out the same on any worker however many cores it was
    given (and tiny tensors faster on a busy machine).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
