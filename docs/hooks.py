"""MkDocs hook: the command-line reference, the API pages' submodule sections, and a check of the pages' code.

`docs/cli.md` holds the hand-written introduction and the marker below; at build time the
marker is replaced by the `--help` text of every command and sub-command of the typer app
`mechscope.cli.main.full_command()`, as click prints it. Hidden commands that run the same code as a
listed one (the earlier verbs kept as aliases) get a line naming the command they stand for;
any other hidden command is rendered in full, so nothing that can be run goes undocumented.

An API page that holds `<!-- mechscope-submodules PACKAGE -->` gets, in its place, a section per
public submodule of PACKAGE: the submodule's docstring and the names of its `__all__` that the
package does not re-export (each documented once: where it is defined). The package's own
`__all__` is the `::: PACKAGE` block above the marker, so the page documents both and the
submodule list follows the code.

Every page is also checked against the package: each dotted name `mechscope.x.y` in the text
must resolve, each `from mechscope... import ...` in a Python block must import, and each
`mechscope ...` line in a shell block must name commands and options that exist. A failure is a warning, which `mkdocs build --strict` turns into an
error, so the pages cannot drift from the code they describe. Run as a script
(`python docs/hooks.py README.md`) it checks other Markdown files the same way, and their
relative links.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import logging
import pkgutil
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "<!-- mechscope-cli-reference -->"
SUBMODULES = re.compile(r"^<!-- mechscope-submodules (mechscope(?:\.\w+)+) -->$", re.MULTILINE)
WIDTH = 100  # columns of the rendered help, independent of the terminal that builds the docs

log = logging.getLogger("mkdocs.hooks.mechscope")  # under "mkdocs": counted by --strict

_BLOCK = re.compile(r"^```(python|bash)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")  # the path of a Markdown link or image
_DOTTED = re.compile(r"\bmechscope(?:\.[A-Za-z_]\w*)+")  # a dotted name in the text: mechscope.capture.patch
_IMPORT = re.compile(r"^\s*from (mechscope[\w.]*) import (\([^)]*\)|[^\n]*)", re.MULTILINE)


@dataclass
class _Entry:
    """One command at one path, with the help text click prints for it."""

    path: tuple[str, ...]  # ("mechscope", "model", "import")
    command: Any
    help_text: str
    is_hidden: bool
    children: list[_Entry] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def anchor(self) -> str:
        return "-".join(self.path)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Check the page's code; fill in an API page's submodules and, on the CLI page, the command reference."""
    for problem in check_code(markdown):
        log.warning(f"{page.file.src_uri}: {problem}")
    markdown = SUBMODULES.sub(lambda m: submodule_reference(m.group(1)), markdown)
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())


def submodule_reference(package: str) -> str:
    """The API page's part after `::: package`: re-exports the package block misses, then every public submodule.

    An exported name that is also the name of a submodule (`mechscope.capture.capture`) is shown by
    griffe as the submodule, so it is documented here from its defining module. Each public
    submodule then lists the names of its `__all__` that the package does not re-export, less
    those defined in another public submodule of the package (they are documented there).
    """
    root = importlib.import_module(package)
    exported = {name: getattr(root, name) for name in root.__all__}
    public = sorted(info.name for info in pkgutil.iter_modules(root.__path__) if not info.name.startswith("_"))
    homes = {f"{package}.{name}" for name in public}
    blocks = [_directive(f"{value.__module__}.{name}", heading=2) for name, value in exported.items() if name in public]
    blocks += [
        "## Submodules\n",
        f"Everything `{package}` does not re-export is imported from the submodule that defines it,",
        "whose `__all__` is its public surface. Each submodule below lists those names.\n",
    ]
    for name in public:
        module = importlib.import_module(f"{package}.{name}")
        members = []
        for member in module.__all__:
            value = getattr(module, member)
            home = getattr(value, "__module__", None)
            if exported.get(member) is value or (home in homes and home != module.__name__):
                continue
            members.append(member)
        blocks.append(_directive(module.__name__, heading=3, members=members))
    return "\n".join(blocks)


def _directive(path: str, *, heading: int, members: list[str] | None = None) -> str:
    """A mkdocstrings block for `path` under its own heading; for a module, only `members` (none: its docstring)."""
    lines = [f"::: {path}", "    options:", "      show_root_heading: true", "      show_root_toc_entry: true",
             f"      heading_level: {heading}"]
    if members is None:
        lines.append("      show_root_full_path: false")
    else:
        lines.append("      members:" + ("".join(f"\n        - {m}" for m in members) if members else " false"))
    return "\n".join(lines) + "\n"


def check_code(markdown: str) -> list[str]:
    """Return what fails in the page: dotted mechscope names, imports in Python blocks, shell commands."""
    problems = [_check_dotted(name) for name in sorted(set(_DOTTED.findall(markdown)))]
    for kind, body in _BLOCK.findall(markdown):
        if kind == "python":
            problems += [_check_import(module, names) for module, names in _IMPORT.findall(body)]
        else:
            problems += [_check_command(line) for line in body.replace("\\\n", " ").splitlines()]
    return [p for p in problems if p]


def _check_dotted(name: str) -> str:
    """A dotted name resolves: the longest importable module, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(found, attr):
                return f"`{name}`: {'.'.join(parts[:cut])} has no {attr!r}"
            found = getattr(found, attr)
        return ""
    return f"`{name}`: no such module"


def _check_import(module: str, names: str) -> str:
    code = " ".join(line.split("#")[0] for line in names.splitlines()).strip().strip("()")
    wanted = [w.split(" as ")[0].strip() for w in code.split(",") if w.strip()]
    try:
        found = importlib.import_module(module)
    except ImportError as err:
        return f"`from {module} import ...` fails: {err}"
    missing = [n for n in wanted if not hasattr(found, n) and importlib.util.find_spec(f"{module}.{n}") is None]
    return f"`from {module} import {', '.join(missing)}`: not found" if missing else ""


def _check_command(line: str) -> str:
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return ""
    if not words or words[0] != "mechscope":
        return ""
    command = _root_command()
    known: set[str] = set()
    try:
        ctx = command.make_context("mechscope", words[1:], resilient_parsing=True)
        known.update(_options(command, ctx))
        while hasattr(command, "resolve_command"):
            rest = [*getattr(ctx, "_protected_args", ()), *ctx.args]  # the words left for a sub-command
            if not rest:
                break
            word = rest[0]
            name, command, rest = command.resolve_command(ctx, rest)
            if command is None:
                return f"`{line.strip()}`: no command {word!r} in `{ctx.command_path}`"
            ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=True)
            known.update(_options(command, ctx))
    except Exception as err:  # click's UsageError and anything a broken command raises
        return f"`{line.strip()}`: {err}"
    flags = {w.strip("[]").split("=")[0] for w in words[1:] if w.strip("[").startswith("-")}
    unknown = sorted(flags - known)
    if unknown:
        return f"`{line.strip()}`: no option {', '.join(unknown)} in `{ctx.command_path}`"
    return ""


def _options(command: Any, ctx: Any) -> set[str]:
    return {opt for param in command.get_params(ctx) for opt in (*param.opts, *param.secondary_opts)}


@functools.cache
def _root_command() -> Any:
    """The click command behind `mechscope` (importing the CLI takes a second or two: once)."""
    from mechscope.cli.main import full_command  # the whole tree; `mechscope.cli.main:app` lists it lazily

    return full_command()


def cli_reference() -> str:
    """Return the reference of every command as Markdown."""
    root = _root_command()
    tree = _walk(root, ("mechscope",), None, is_hidden=False)
    entries = list(_flatten(tree))
    canonical = {_key(e.command): e for e in entries if not e.is_hidden}
    lines = [_contents(entries, canonical)]
    for entry in entries:
        target = canonical.get(_key(entry.command))
        if entry.is_hidden and target is not None and target is not entry:
            continue  # listed with its alias in the table of contents
        level = "#" * min(len(entry.path) + 1, 4)
        lines.append(f"{level} {entry.name} {{#{entry.anchor}}}\n")
        aliases = [e for e in entries if e is not entry and e.is_hidden and canonical.get(_key(e.command)) is entry]
        if aliases:
            names = ", ".join(f"`{a.name}`" for a in aliases)
            lines.append(f"Also runs as {names}.\n")
        lines.append(f"```text\n{entry.help_text.rstrip()}\n```\n")
    return "\n".join(lines)


def _walk(command: Any, path: tuple[str, ...], parent: Any, *, is_hidden: bool) -> _Entry:
    ctx = command.context_class(command, info_name=path[-1], parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    entry = _Entry(path, command, command.get_help(ctx), is_hidden or bool(getattr(command, "hidden", False)))
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            child = command.get_command(ctx, name)
            if child is not None:
                entry.children.append(_walk(child, (*path, name), ctx, is_hidden=entry.is_hidden))
    return entry


def _flatten(entry: _Entry) -> Iterator[_Entry]:
    yield entry
    for child in entry.children:
        yield from _flatten(child)


def _key(command: Any) -> Any:
    """What a command runs: its callback, or for a group the set of what its commands run."""
    callback = getattr(command, "callback", None)
    subcommands = getattr(command, "commands", None)
    if subcommands:
        return ("group", frozenset(_key(c) for c in subcommands.values()))
    return inspect.unwrap(callback) if callback is not None else id(command)


def _contents(entries: list[_Entry], canonical: dict[Any, _Entry]) -> str:
    """A table of every command with its one-line summary, then the aliases and what they run."""
    rows = ["| command | what it does |", "|---|---|"]
    aliases = ["| alias | runs |", "|---|---|"]
    for entry in entries[1:]:
        target = canonical.get(_key(entry.command))
        if entry.is_hidden and target is not None and target is not entry:
            aliases.append(f"| `{entry.name}` | [{target.name}](#{target.anchor}) |")
            continue
        summary = entry.command.get_short_help_str(limit=200).replace("|", "\\|")
        rows.append(f"| [{entry.name}](#{entry.anchor}) | {summary} |")
    text = "\n".join(rows) + "\n"
    if len(aliases) > 2:
        text += "\nThese shorter forms run the same commands (`--help` does not list them):\n\n" + "\n".join(aliases) + "\n"
    return text


def check_file(path: Path) -> list[str]:
    """What fails in a Markdown file outside the site (the README): its code and relative links."""
    text = path.read_text(encoding="utf-8")
    problems = check_code(text)
    for target in _LINK.findall(text):
        if "://" not in target and not target.startswith("mailto:") and not (path.parent / target).exists():
            problems.append(f"link to {target!r}: no such file")
    return [f"{path}: {p}" for p in problems]


def main(argv: list[str]) -> int:
    """Check the Markdown files named on the command line; print each problem, exit 1 if any."""
    problems = [p for name in argv for p in check_file(Path(name))]
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
