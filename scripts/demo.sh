#!/usr/bin/env bash
# The main job: an end-to-end demo of cargohold (grows into the seed's Apache example).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m cargohold.demo "$@"
