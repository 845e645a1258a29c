#!/usr/bin/env bash
# Runs the whole test suite: lint, types, layer contract, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
ruff check src tests bench
mypy
lint-imports --no-cache 2>&1 | tail -n 3
pytest -q tests "$@"
