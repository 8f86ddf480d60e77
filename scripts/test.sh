#!/usr/bin/env bash
# Install everything, type-check the package, check its layers, then run the tests on both cores.
# By default the fast set: every test not marked `slow` (about a minute on a quiet 2-core machine).
# `--all` (or MECHSCOPE_TEST_ALL=1) runs everything, as CI does. Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
select=(-m "not slow")
if [ "${MECHSCOPE_TEST_ALL:-0}" = "1" ]; then select=(); fi
args=()
for arg in "$@"; do
    if [ "$arg" = "--all" ]; then select=(); else args+=("$arg"); fi
done
bash scripts/setup.sh
.venv/bin/python -m mypy mechscope
.venv/bin/lint-imports  # the layers contract in .importlinter
exec .venv/bin/python -m pytest -n 2 --dist loadgroup -q ${select[@]+"${select[@]}"} ${args[@]+"${args[@]}"}
