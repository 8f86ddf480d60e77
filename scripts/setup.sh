#!/usr/bin/env bash
# Create .venv and install mechscope with its test tools; PyTorch is pinned to the CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
stamp=".venv/.mechscope-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
    echo "$want" > "$stamp"
fi
