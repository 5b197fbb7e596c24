"""CodePipeline job events and results, shared by the Lambdas that run as pipeline actions.

`PipelineJob.from_event` is a typed view of the `CodePipeline.job` event (id, user parameters, input
artifacts and their credentials, continuation token). A Lambda action must answer through the job API,
never by raising: `JobReporter` is that answer, and `CodePipelineReporter` its boto3 form. It is a
parameter of each handler's core function so that tests and the harness can record what a handler
reports (moto 5.2.5 has no CodePipeline job API; the harness adds one).

Only the standard library, boto3 (the Lambda runtime's) and `contracts` are used: this file is copied
into each zip (with contracts.py).
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from deployer.lambdas.contracts import EventError

__all__ = [
    "MAX_FAILURE_MESSAGE",
    "MAX_SUMMARY",
    "Artifact",
    "CodePipelineReporter",
    "EventError",
    "JobReporter",
    "PipelineJob",
    "fail_unstarted_job",
    "require_env",
]

log = logging.getLogger(__name__)

# CodePipeline caps a failure message at 5,000 characters and an execution summary at 2,048.
MAX_FAILURE_MESSAGE = 5000
MAX_SUMMARY = 2048


def require_env(environ: Mapping[str, str], names: tuple[str, ...]) -> None:
    """Raises, naming every one of `names` that is unset or empty: a deployment error, not an event's."""
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise RuntimeError(f"environment variable(s) not set: {', '.join(missing)}")


@dataclass(frozen=True)
class Artifact:
    name: str
    bucket: str
    key: str


@dataclass(frozen=True)
class PipelineJob:
    id: str
    user_parameters: dict[str, Any] = field(default_factory=dict)
    input_artifacts: tuple[Artifact, ...] = ()
    continuation_token: str | None = None
    artifact_credentials: Mapping[str, str] | None = None

    @staticmethod
    def is_job_event(event: object) -> bool:
        return isinstance(event, Mapping) and "CodePipeline.job" in event

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> PipelineJob:
        job = event.get("CodePipeline.job")
        if not isinstance(job, Mapping) or not isinstance(job.get("id"), str):
            raise EventError("not a CodePipeline job event: 'CodePipeline.job.id' is missing")
        data = job.get("data") or {}
        configuration = (data.get("actionConfiguration") or {}).get("configuration") or {}
        raw_parameters = configuration.get("UserParameters") or ""
        try:
            parameters = json.loads(raw_parameters) if raw_parameters.strip() else {}
        except json.JSONDecodeError as error:
            raise EventError(f"UserParameters is not JSON: {error}") from error
        if not isinstance(parameters, dict):
            raise EventError("UserParameters must be a JSON object")
        artifacts = []
        for artifact in data.get("inputArtifacts") or []:
            location = (artifact.get("location") or {}).get("s3Location") or {}
            if not location.get("bucketName") or not location.get("objectKey"):
                raise EventError(f"input artifact {artifact.get('name')!r} has no S3 location")
            name = str(artifact.get("name", ""))
            artifacts.append(Artifact(name, location["bucketName"], location["objectKey"]))
        token = data.get("continuationToken")
        return cls(
            id=job["id"],
            user_parameters=parameters,
            input_artifacts=tuple(artifacts),
            continuation_token=token if isinstance(token, str) and token else None,
            artifact_credentials=data.get("artifactCredentials"),
        )

    def read_artifact_file(self, s3_client: Any, artifact_name: str | None, member: str) -> bytes:
        """One file from an input artifact (a zip in the pipeline's artifact bucket)."""
        candidates = [a for a in self.input_artifacts if artifact_name is None or a.name == artifact_name]
        if not candidates:
            raise EventError(f"the job has no input artifact {artifact_name or ''}".strip())
        artifact = candidates[0]
        body = s3_client.get_object(Bucket=artifact.bucket, Key=artifact.key)["Body"].read()
        try:
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                return archive.read(member)
        except (zipfile.BadZipFile, KeyError) as error:
            raise EventError(f"artifact {artifact.name!r} has no {member!r}: {error}") from error


class JobReporter(Protocol):
    """How an action answers CodePipeline."""

    def succeed(
        self,
        job_id: str,
        *,
        summary: str = "",
        output_variables: Mapping[str, str] | None = None,
        continuation_token: str | None = None,
    ) -> None: ...

    def fail(self, job_id: str, message: str) -> None: ...


class CodePipelineReporter:
    """The job API through a boto3 `codepipeline` client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def succeed(
        self,
        job_id: str,
        *,
        summary: str = "",
        output_variables: Mapping[str, str] | None = None,
        continuation_token: str | None = None,
    ) -> None:
        request: dict[str, Any] = {"jobId": job_id}
        if summary:
            request["executionDetails"] = {"summary": summary[:MAX_SUMMARY]}
        if continuation_token is not None:
            # CodePipeline accepts output variables only on the final result, not with a token.
            request["continuationToken"] = continuation_token
        elif output_variables:
            request["outputVariables"] = dict(output_variables)
        self._client.put_job_success_result(**request)

    def fail(self, job_id: str, message: str) -> None:
        self._client.put_job_failure_result(
            jobId=job_id,
            failureDetails={"type": "JobFailed", "message": message[:MAX_FAILURE_MESSAGE]},
        )


def fail_unstarted_job(event: Mapping[str, Any], reporter: JobReporter, error: Exception) -> dict[str, Any]:
    """Reports a job whose action could not even start (settings or event unreadable) as failed.

    CodePipeline invokes a Lambda action asynchronously: a handler that raises is retried by Lambda and
    then leaves the action waiting for CodePipeline's timeout, so a handler reports instead of raising.
    Raises EventError only when the event names no job to report on."""
    job = event.get("CodePipeline.job")
    job_id = job.get("id") if isinstance(job, Mapping) else None
    if not isinstance(job_id, str) or not job_id:
        raise EventError(f"not a CodePipeline job event ({error})") from error
    reporter.fail(job_id, f"the action could not start: {error}")
    log.exception("the action could not start")
    return {"status": "FAILED", "reason": str(error)}
