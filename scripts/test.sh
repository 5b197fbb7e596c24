#!/usr/bin/env bash
# The project's test command (README): sets up .venv, starts a Docker engine with the offline base
# image, runs ruff, the pytest suite (Docker-marked tests included), the scenario set with the process
# runtime, and the happy scenario with the Docker runtime, with the other linters (mypy, import-linter,
# cfn-lint, mlops check-iam, checkov) beside it (they fill the core that scenario leaves idle; without it
# they run in their own phase after the tests).
# What does not depend on .venv runs beside it: Debian's packages and the engine (one apt user at a
# time: job browser-engine), and checkov's own venv (checkov-venv). Their output goes to
# reports/ci/<job>.log and is shown when they end.
# At the end (also on failure) it prints the seconds each phase took; a job that ran beside others says so.
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
ci_logs=reports/ci
mkdir -p "$ci_logs"
phases=()
phase_name=""
phase_started=$started
phase() {  # phase NAME: ends the running phase (recording its seconds) and starts NAME
    local now
    now=$(date +%s)
    if [ -n "$phase_name" ]; then
        phases+=("$(printf '%-34s %5d s' "$phase_name" $((now - phase_started)))")
    fi
    phase_name=$1
    phase_started=$now
    [ -z "$1" ] || echo "== $1"
}
declare -A job_pids=()
background() {  # background NAME CMD...: runs CMD beside the phases; its output goes to reports/ci/NAME.log
    local name=$1
    shift
    echo "== $name (beside the next phases; output in $ci_logs/$name.log)"
    (
        job_started=$(date +%s)
        code=0
        # Started asynchronously, CMD keeps `set -e` (in `CMD || ...` a shell function would not).
        "$@" &
        wait $! || code=$?
        echo $(( $(date +%s) - job_started )) >"$ci_logs/$name.seconds"
        exit "$code"
    ) >"$ci_logs/$name.log" 2>&1 &
    job_pids[$name]=$!
}
await() {  # await NAME: waits for the background job NAME, shows its output, records its seconds
    local name=$1 code=0
    wait "${job_pids[$name]}" || code=$?
    unset "job_pids[$name]"
    sed "s/^/  [$name] /" "$ci_logs/$name.log"
    phases+=("$(printf '%-34s %5d s (beside others)' "$name" "$(cat "$ci_logs/$name.seconds" 2>/dev/null || echo 0)")")
    if [ "$code" != 0 ]; then
        echo "== $name failed (exit $code); its whole output is $ci_logs/$name.log" >&2
        return "$code"
    fi
}
report() {
    local code=$?
    [ ${#job_pids[@]} -eq 0 ] || kill "${job_pids[@]}" 2>/dev/null || true
    phase ""
    echo "== phases"
    printf '  %s\n' "${phases[@]}"
    printf '  %-34s %5d s (exit %d)\n' "total" $(( $(date +%s) - started )) "$code"
}
trap report EXIT
trap 'exit 130' INT
trap 'exit 143' TERM  # so that the phases' report shows how the run ended

# chromium + graphviz (the console's browser test, the state machine's layout), then the engine: both use
# apt, one after the other, while pip fills the two virtual environments.
background browser-engine bash -c \
    'bash scripts/browser.sh && { [ "${MLOPS_SKIP_DOCKER:-0}" = 1 ] || bash scripts/docker-engine.sh; }'
background checkov-venv bash scripts/checkov.sh --install
phase "setup (.venv)"
bash scripts/setup.sh
lint() {  # the linters after ruff: about a minute of one core, so they run beside the Docker scenario
    .venv/bin/mypy
    .venv/bin/lint-imports --no-cache
    if compgen -G "deployer/templates/*.yaml" >/dev/null; then
        .venv/bin/cfn-lint deployer/templates/*.yaml
        .venv/bin/mlops check-iam
        bash scripts/checkov.sh
    fi
}
phase "ruff"
.venv/bin/ruff check .
phase "waiting for the engine"
await checkov-venv
await browser-engine
export MLOPS_REQUIRE_BROWSER=1
[ "${MLOPS_SKIP_DOCKER:-0}" = "1" ] || export MLOPS_REQUIRE_DOCKER=1
phase "tests"
.venv/bin/pytest -n "${MLOPS_TEST_WORKERS:-auto}" --dist loadfile "$@"
docker_scenario=0
if [ "${MLOPS_SKIP_SCENARIOS:-0}" != "1" ]; then
    phase "scenarios (process runtime)"
    .venv/bin/mlops scenario run scenarios/ --runtime process --parallel 2 --junit reports/scenarios.xml
    [ "${MLOPS_SKIP_DOCKER:-0}" = "1" ] || docker_scenario=1
fi
if [ "$docker_scenario" = 1 ]; then
    # The Docker scenario keeps about one core busy (one torch thread trains), so the linters take the other.
    background lint lint
    phase "happy scenario (docker)"
    .venv/bin/mlops scenario run scenarios/happy-commit.yaml --runtime docker \
        --junit reports/scenarios-docker.xml
    phase "waiting for lint"
    await lint
else
    phase "lint"
    lint
fi
phase ""
echo "== all green in $(( $(date +%s) - started )) s"
