#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv with every pinned dependency.
# Idempotent: a second run only checks what is installed. Needs Python 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==24.3.1"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
