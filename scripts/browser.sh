#!/usr/bin/env bash
# Installs what the console's browser test needs, idempotently and quietly: Debian's chromium (driven
# by Playwright with its executable path) and graphviz (the state machine's layout, also used by the
# run report). Needs root (apt-get) unless both are already there.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "browser: $(chromium --version 2>/dev/null | head -1); $(dot -V 2>&1 | head -1)"
