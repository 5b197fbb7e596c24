"""S3 requests as IAM authorization requests (Service Authorization Reference, "Amazon S3").

moto's S3 names each request's action before it authorizes it (`S3Response._set_action`, its ACTION_MAP),
mostly with the IAM action's own name; where they differ this module corrects it:
- HeadBucket is authorized as `s3:ListBucket` (S3 API reference, HeadBucket: "you must have the
  s3:ListBucket permission"); HeadObject as `s3:GetObject` (moto already names it so);
- a PUT with `x-amz-copy-source` (CopyObject, UploadPartCopy) also needs `s3:GetObject` (or
  `s3:GetObjectVersion` with a versionId) on the source object (S3 API reference, CopyObject);
- a multi-object delete (POST ?delete) is `s3:DeleteObject`; its keys are in the body, so the resource
  is `bucket/*` here (a policy scoped to a narrower prefix is refused: stricter than AWS, never looser).
Resources: a bucket's actions act on `arn:aws:s3:::BUCKET`, an object's on `arn:aws:s3:::BUCKET/KEY`,
ListAllMyBuckets on "*". Condition keys: `s3:prefix` for ListBucket, `aws:SecureTransport` (true).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote

from deployer.iam_policy import Request

_RENAMED: Final = {"HeadBucket": "ListBucket", "ListBucketVersions": "ListBucketVersions"}


def s3_requests(
    action: str,
    bucket: str | None,
    key: str | None,
    headers: Mapping[str, str],
    query: Mapping[str, Any],
    region: str,
) -> list[Request]:
    """The requests IAM evaluates for one S3 call that moto named `action`."""
    name = _RENAMED.get(action, action)
    context: dict[str, str] = {"aws:RequestedRegion": region, "aws:SecureTransport": "true"}
    if not bucket:
        return [Request(f"s3:{name}", "*", context)]
    if key:
        resource = f"arn:aws:s3:::{bucket}/{key}"
    elif name == "DeleteObject":  # POST ?delete: the keys are in the body
        resource = f"arn:aws:s3:::{bucket}/*"
    else:
        resource = f"arn:aws:s3:::{bucket}"
        if name == "ListBucket":
            prefix = _first(query.get("prefix"))
            if prefix is not None:
                context["s3:prefix"] = prefix
    requests = [Request(f"s3:{name}", resource, context)]
    source = headers.get("x-amz-copy-source") or headers.get("X-Amz-Copy-Source")
    if source and name == "PutObject":
        path, _, version = unquote(str(source)).lstrip("/").partition("?versionId=")
        source_action = "s3:GetObjectVersion" if version else "s3:GetObject"
        requests.append(Request(source_action, f"arn:aws:s3:::{path}", context))
    return requests


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        return str(value[0]) if value else None
    return None if value is None else str(value)
