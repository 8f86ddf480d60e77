"""Code shape: no function or method of the package spans more than MAX_FUNCTION_LINES lines.

A function is measured from its `def` line to its last line, docstring included (decorators
are not counted); nested functions and methods are measured on their own as well. Every
module under `mechscope/` is parsed, with no exemptions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mechscope

MAX_FUNCTION_LINES = 80
"""The longest a function may be; split a longer one into private helpers that do one job each."""

PACKAGE = Path(mechscope.__file__).parent


def long_functions(root: Path, limit: int) -> list[str]:
    """`path:line name (n lines)` for every function under `root` longer than `limit` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    where = path.relative_to(root.parent).as_posix()
                    found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_package_functions_fit_in_the_line_limit() -> None:
    too_long = long_functions(PACKAGE, MAX_FUNCTION_LINES)
    assert not too_long, (
        f"{len(too_long)} function(s) over {MAX_FUNCTION_LINES} lines; split each into well-named private "
        "helpers: " + "; ".join(too_long)
    )


def test_long_functions_names_nested_functions_and_methods_over_the_limit(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text(
        "class C:\n"
        "    def short(self) -> None:\n"
        "        pass\n"
        "\n"
        "    def long(self) -> None:\n"
        "        def inner() -> None:\n"
        "            x = 0\n"
        "            y = 1\n"
        "            z = 2\n"
        "        pass\n"
    )
    assert long_functions(package, 3) == ["pkg/mod.py:5 long (6 lines)", "pkg/mod.py:6 inner (4 lines)"]
    assert long_functions(package, 4) == ["pkg/mod.py:5 long (6 lines)"]
    assert long_functions(package, 6) == []
