#!/usr/bin/env bash
# The project's main job (README): sets up .venv and runs the full local flow on the embedded defaults
# (`mlops run`): deploy the definitions into the embedded emulator, put CLINC150's clinc10 subset in S3,
# commit this working tree -> pipeline (Source, Build, Train, Approve, Register, PublishApi) -> call the
# API over HTTP. The Docker runtime is used when an engine answers and the base image exists
# (scripts/docker-engine.sh), else the process runtime. Extra arguments go to the command
# (e.g. `--runtime process`, `--json`, `--approval prompt`; `mlops run --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mlops run "$@"
