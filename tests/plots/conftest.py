"""Fixtures for the figure tests: every figure a test draws is closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mechscope.plots._style import plt


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    """Close the figures a test drew and did not save (saving closes them)."""
    before = set(plt.get_fignums())
    yield
    for number in set(plt.get_fignums()) - before:
        plt.close(number)
