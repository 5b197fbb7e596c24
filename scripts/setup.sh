#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv with every pinned dependency.
# Idempotent: a second run only checks what is installed. Needs Python 3.11.
# pip's output goes to .venv/setup.log (shown when something fails).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
log=.venv/setup.log
started=$(date +%s)
if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade "pip==24.3.1" &&
       .venv/bin/python -m pip install --disable-pip-version-check -e '.[dev]'; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "setup: pip failed; the whole log is $log" >&2
    exit 1
fi
echo "setup: .venv ready in $(( $(date +%s) - started )) s"
