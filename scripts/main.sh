#!/usr/bin/env bash
# The project's main job (README): sets up .venv and runs the full local flow on the embedded defaults.
# Extra arguments go to the command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mlops demo "$@"
