"""Fixtures for model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Train on one intra-op thread, restoring the previous count afterwards.

    The test machine's two cores are shared; with small convolutions, two intra-op
    threads competing with other processes ran up to 5x slower than one (measured).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
