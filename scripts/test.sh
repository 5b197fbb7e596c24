#!/usr/bin/env bash
# The project's test command (README): sets up .venv, starts a Docker engine with the offline base
# image, runs the linters (ruff, mypy, cfn-lint) and the whole pytest suite, Docker-marked tests included.
#
#   MLOPS_SKIP_DOCKER=1  skip the engine and the Docker-marked tests (a quick local run)
#   extra arguments go to pytest (e.g. `bash scripts/test.sh -k server`)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh
if [ "${MLOPS_SKIP_DOCKER:-0}" != "1" ]; then
    bash scripts/docker-engine.sh
    export MLOPS_REQUIRE_DOCKER=1
fi
echo "== lint"
.venv/bin/ruff check .
.venv/bin/mypy
if compgen -G "deployer/templates/*.yaml" >/dev/null; then
    .venv/bin/cfn-lint deployer/templates/*.yaml
fi
echo "== tests"
.venv/bin/pytest "$@"
echo "== all green in $(( $(date +%s) - started )) s"
