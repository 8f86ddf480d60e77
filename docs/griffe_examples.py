"""Griffe extension: read a Google-style `Example:` section like `Examples:`.

Griffe's Google parser knows only the plural, and renders `Example:` as an admonition whose
doctest lines become Markdown block quotes. Napoleon accepts both spellings, and the package
uses the singular, so the header is renamed before the docstring is parsed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename `Example:` section headers to `Examples:` in every docstring that is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
