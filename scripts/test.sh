#!/usr/bin/env bash
# The project's test command (README): sets up .venv, starts a Docker engine with the offline base
# image, runs the linters (ruff, mypy, import-linter, cfn-lint, mlops check-iam, checkov), the pytest suite
# (Docker-marked tests included),
# the scenario set with the process runtime, and the happy scenario with the Docker runtime.
# At the end (also on failure) it prints the seconds each phase took.
# The console's browser test (chromium, installed by scripts/browser.sh) saves screenshots in
# reports/console/.
#
#   MLOPS_SKIP_DOCKER=1     skip the engine, the Docker-marked tests and the Docker scenario
#   MLOPS_SKIP_SCENARIOS=1  skip the scenario set (a quick local run)
#   MLOPS_TEST_WORKERS=N    pytest-xdist workers for the suite (default auto: one per core; 0 runs it in
#                           this process)
#   extra arguments go to pytest (e.g. `bash scripts/test.sh -k server`)
# JUnit reports of the scenarios land in reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
phases=()
phase_name=""
phase_started=$started
phase() {  # phase NAME: ends the running phase (recording its seconds) and starts NAME
    local now
    now=$(date +%s)
    if [ -n "$phase_name" ]; then
        phases+=("$(printf '%-28s %5d s' "$phase_name" $((now - phase_started)))")
    fi
    phase_name=$1
    phase_started=$now
    [ -z "$1" ] || echo "== $1"
}
report() {
    local code=$?
    phase ""
    echo "== phases"
    printf '  %s\n' "${phases[@]}"
    printf '  %-28s %5d s (exit %d)\n' "total" $(( $(date +%s) - started )) "$code"
}
trap report EXIT
trap 'exit 130' INT
trap 'exit 143' TERM  # so that the phases' report shows how the run ended

phase "setup (.venv)"
bash scripts/setup.sh
phase "browser and graphviz"
bash scripts/browser.sh  # chromium + graphviz: the console's browser test and the state machine layout
export MLOPS_REQUIRE_BROWSER=1
if [ "${MLOPS_SKIP_DOCKER:-0}" != "1" ]; then
    phase "engine and base image"
    bash scripts/docker-engine.sh
    export MLOPS_REQUIRE_DOCKER=1
fi
phase "lint"
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
if compgen -G "deployer/templates/*.yaml" >/dev/null; then
    .venv/bin/cfn-lint deployer/templates/*.yaml
    .venv/bin/mlops check-iam
    bash scripts/checkov.sh
fi
phase "tests"
.venv/bin/pytest -n "${MLOPS_TEST_WORKERS:-auto}" --dist loadfile "$@"
if [ "${MLOPS_SKIP_SCENARIOS:-0}" != "1" ]; then
    phase "scenarios (process runtime)"
    .venv/bin/mlops scenario run scenarios/ --runtime process --parallel 2 --junit reports/scenarios.xml
    if [ "${MLOPS_SKIP_DOCKER:-0}" != "1" ]; then
        phase "happy scenario (docker)"
        .venv/bin/mlops scenario run scenarios/happy-commit.yaml --runtime docker \
            --junit reports/scenarios-docker.xml
    fi
fi
phase ""
echo "== all green in $(( $(date +%s) - started )) s"
