#!/usr/bin/env bash
# Build the documentation site into site/ with warnings as errors. The API pages come from the
# docstrings and the command-line reference from the commands themselves; nothing is fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c "import mechscope, mkdocs, mkdocstrings_handlers.python" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[docs]"
fi
.venv/bin/python docs/hooks.py README.md      # the README's commands, imports and links
exec .venv/bin/python -m mkdocs build --strict --site-dir site "$@"
