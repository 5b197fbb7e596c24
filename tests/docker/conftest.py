"""The Docker-backed tests: testcontainers runs the image's `serve` container.

testcontainers' reaper (Ryuk) is an image pulled from a registry, which this offline engine cannot do
(docs/FACTS.md); the tests remove their containers themselves, so the reaper is switched off before
testcontainers reads its configuration.
"""

from __future__ import annotations

import os

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
