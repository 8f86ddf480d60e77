#!/usr/bin/env bash
# Install everything, then train the built-in targets and analyse them into ./tour.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mechscope tour --out tour "$@"
