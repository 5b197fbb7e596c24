"""The contracts between the Build stage, the Lambdas, the state machine and the local harness, one
copy each: the build record and where the latest one lives, the state machine's execution input, and
Step Functions' execution statuses (deployer/README.md "State machine execution input", "Build
record").

Only the standard library is used: this file is copied into each zip that needs it, as
`pipeline_job.py` is (deployer/package.py), and the harness imports it instead of restating it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

# The Build stage's record in its output artifact, and the copy that new data retrains.
BUILD_RECORD_FILE: Final = "build.json"
LATEST_BUILD_KEY: Final = "builds/latest.json"

# DescribeExecution's statuses (Step Functions API reference, DescribeExecution "status").
SUCCEEDED: Final = "SUCCEEDED"
TERMINAL_STATUSES: Final = frozenset({SUCCEEDED, "FAILED", "TIMED_OUT", "ABORTED"})

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-zA-Z]{7,64}$")


class EventError(ValueError):
    """The event (or a record it points to) is not what the handler accepts; the message says why."""


@dataclass(frozen=True)
class BuildRecord:
    """What the Build stage produced: `build.json`, written by deployer/buildspec.yml."""

    image_uri: str
    image_digest: str
    commit_id: str
    hyperparameters: dict[str, str]

    @classmethod
    def from_json(cls, text: bytes | str) -> BuildRecord:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise EventError(f"the build record is not JSON: {error}") from error
        if not isinstance(raw, dict):
            raise EventError("the build record must be a JSON object")
        digest = raw.get("ImageDigest")
        image = raw.get("ImageUri")
        commit = raw.get("CommitId")
        hyperparameters = raw.get("Hyperparameters")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise EventError(f"build record: ImageDigest {digest!r} is not sha256:<64 hex>")
        if not isinstance(image, str) or not image.endswith(f"@{digest}"):
            raise EventError(f"build record: ImageUri {image!r} must be the digest form <repo>@{digest}")
        if not isinstance(commit, str) or not _COMMIT.match(commit):
            raise EventError(f"build record: CommitId {commit!r} is not a commit id")
        if not isinstance(hyperparameters, dict) or not all(
            isinstance(key, str) and isinstance(value, str | int | float) and not isinstance(value, bool)
            for key, value in hyperparameters.items()
        ):
            raise EventError("build record: Hyperparameters must map names to strings or numbers")
        return cls(image, digest, commit, {key: str(value) for key, value in hyperparameters.items()})

    def to_json(self) -> str:
        return json.dumps(
            {
                "ImageUri": self.image_uri,
                "ImageDigest": self.image_digest,
                "CommitId": self.commit_id,
                "Hyperparameters": dict(self.hyperparameters),
            }
        )


def execution_input(
    *,
    training_image: str,
    training_data: str,
    output_path: str,
    hyperparameters: Mapping[str, str],
    quality_threshold: float,
    endpoint_name: str,
    image_digest: str,
    travelling: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The training state machine's input. `travelling` holds the fields that go through it
    untouched to the registry (CommitId, DataVersion, Trigger)."""
    return {
        "TrainingImage": training_image,
        "TrainingData": training_data,
        "OutputPath": output_path,
        "Hyperparameters": dict(hyperparameters),
        "QualityThreshold": quality_threshold,
        "EndpointName": endpoint_name,
        "ImageDigest": image_digest,
        **(travelling or {}),
    }
