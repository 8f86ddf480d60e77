"""Fixtures for weight reading: the article's three fitted cases, trained once per session."""

from __future__ import annotations

import pytest

from ._fit import article_case


@pytest.fixture(scope="session")
def article_models() -> dict:
    """function name -> (fitted TinyReLU, its DataBundle) for sum, weighted and product."""
    return {name: article_case(name) for name in ("sum", "weighted", "product")}
