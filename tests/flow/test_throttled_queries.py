"""`mlops run` with more query rows than the API's throttle lets through at once: every answer is 200.

The API's usage plan throttles a key at 10 requests/s with a burst of 20 (deployer/templates/api.yaml),
and the local gateway enforces it as API Gateway does (429 past the bucket). With one query a request
(`--api-batch-size 1`), 48 rows are 48 requests, more than twice the burst, sent as fast as the API
answers: the main job's client must back off on 429 as AWS SDKs do ("AWS SDKs and Tools Reference
Guide", Retry behavior) and still get every answer. With the default batching the same rows are one
request.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import datasets
from tests.flow.source_repo import make_source_repository

pytestmark = pytest.mark.slow

MLOPS = Path(sys.executable).parent / "mlops"
ROWS = 48
BURST = 20


def _queries(path: Path) -> list[datasets.LabelledQuery]:
    """48 held-out rows of every intent of the default data (CLINC150's validation split)."""
    rows = datasets.clinc150_split("val", datasets.clinc10_intents())[::4][:ROWS]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Query", "Intent"])
        writer.writerows((row.query, row.intent) for row in rows)
    return rows


def _run(root: Path, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            str(MLOPS),
            "run",
            "--runtime",
            "process",
            "--json",
            "--source",
            str(root / "source"),
            "--work-dir",
            str(root / "work"),
            "--queries",
            str(root / "queries.csv"),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"mlops run failed:\n{done.stderr[-4000:]}\n{done.stdout[-2000:]}"
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def test_more_rows_than_the_burst_one_request_each_every_answer_200(tmp_path: Path) -> None:
    make_source_repository(tmp_path / "source")
    rows = _queries(tmp_path / "queries.csv")
    assert len(rows) == ROWS > 2 * BURST
    summary = _run(tmp_path, "--api-batch-size", "1")
    answers = summary["sample_answers"]
    assert [answer["query"] for answer in answers] == [row.query for row in rows]
    assert {answer["http_status"] for answer in answers} == {200}
    assert all(answer["intent"] for answer in answers)
    correct = sum(answer["intent"] == answer["expected"] for answer in answers)
    assert correct >= 0.8 * ROWS, answers
