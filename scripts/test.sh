#!/usr/bin/env bash
# The project's test command (README): sets up .venv, starts a Docker engine with the offline base
# image, runs the linters (ruff, mypy, cfn-lint), the whole pytest suite (Docker-marked tests included),
# the scenario set with the process runtime, and the happy scenario with the Docker runtime. The
# console's browser test (chromium, installed by scripts/browser.sh) saves screenshots in reports/console/.
#
#   MLOPS_SKIP_DOCKER=1     skip the engine, the Docker-marked tests and the Docker scenario
#   MLOPS_SKIP_SCENARIOS=1  skip the scenario set (a quick local run)
#   extra arguments go to pytest (e.g. `bash scripts/test.sh -k server`)
# JUnit reports of the scenarios land in reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh
bash scripts/browser.sh  # chromium + graphviz: the console's browser test and the state machine layout
export MLOPS_REQUIRE_BROWSER=1
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
if [ "${MLOPS_SKIP_SCENARIOS:-0}" != "1" ]; then
    echo "== scenarios (process runtime)"
    .venv/bin/mlops scenario run scenarios/ --runtime process --parallel 2 --junit reports/scenarios.xml
    if [ "${MLOPS_SKIP_DOCKER:-0}" != "1" ]; then
        echo "== happy scenario (docker runtime)"
        .venv/bin/mlops scenario run scenarios/happy-commit.yaml --runtime docker \
            --junit reports/scenarios-docker.xml
    fi
fi
echo "== all green in $(( $(date +%s) - started )) s"
