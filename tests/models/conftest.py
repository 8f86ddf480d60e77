"""Fixtures for model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mechscope.devices import threads


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Train on one intra-op thread, restoring the previous count afterwards.

    The test machine's two cores are shared; with small convolutions, two intra-op
    threads competing with other processes ran up to 5x slower than one (measured).
    """
    with threads(1):
        yield
