#!/usr/bin/env bash
# Install everything, type-check the package, then run the test suite on both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m mypy mechscope
exec .venv/bin/python -m pytest -n 2 -q "$@"
