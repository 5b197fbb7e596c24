#!/usr/bin/env bash
# The security scan of the rendered templates (what is deployed: the state machine inlined), with checkov
# in its own virtual environment .venv-checkov: checkov pins boto3/botocore/packaging versions that
# conflict with the project's, so it cannot share .venv. Idempotent; quiet unless a check fails.
# Waivers are in the templates (Metadata: checkov: skip, each with its reason).
#
#   bash scripts/checkov.sh --install   only installs .venv-checkov (scripts/test.sh does it beside setup)
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOV_VERSION=3.3.30
if ! .venv-checkov/bin/checkov --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
    python3 -m venv .venv-checkov
    .venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
[ "${1:-}" != "--install" ] || exit 0
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
.venv/bin/python - "$rendered" <<'PY'
import sys
from pathlib import Path

from deployer import compile as compiler

out = Path(sys.argv[1])
for name, template in {
    "platform": compiler.render_platform(),
    "api": compiler.render_api(),
    "assets": compiler.render_assets(),
}.items():
    (out / f"{name}.json").write_text(compiler.template_body(template, pretty=True), encoding="utf-8")
PY
.venv-checkov/bin/checkov --directory "$rendered" --framework cloudformation --compact --quiet --skip-download
