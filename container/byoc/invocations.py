"""The `/invocations` wire format: parsing and validating requests, encoding answers.

Pure functions over bytes and header values; the HTTP server (`byoc.server`) only moves bytes. Every
rejection is an `InvocationError` that carries its HTTP status and a message a client can act on.

Requests
- `application/json`: `{"inputs": "q" | ["q1", ...], "parameters": {"max_new_tokens": N}}`. Both keys
  are the only ones accepted; `parameters` is optional.
- `text/csv`: one query a row, no header, RFC 4180 quoting (a query holding a comma, a quote or a line
  break is quoted). Blank lines are skipped; a row with more than one field is rejected.
- The body is UTF-8 (a `charset` parameter, if given, must say so).

Limits (SageMaker's own limits where it has them)
- `MAX_BODY_BYTES`: 6 MB, SageMaker's real-time invocation payload limit (413 above it).
- `MAX_BATCH`: 64 queries a request (400 above it); larger jobs belong to batch transform.
- `MAX_QUERY_CHARS`: 1,000 characters a query (400 above it); CLINC150 queries are under 150.
- `max_new_tokens`: 1 to the predictor's own limit (400 outside it).
- `MAX_CUSTOM_ATTRIBUTES_CHARS`: 1,024 visible ASCII characters, SageMaker's limit for
  `X-Amzn-SageMaker-Custom-Attributes` (400 otherwise).

Answers
- `application/json` (the default, also for `*/*` and a missing `Accept`):
  `{"predictions": [{"query", "intent", "generated_text"}, ...]}`, one entry per query, in order;
  `intent` is null when the generated text names no known intent.
- `text/csv` (RFC 4180: CRLF line ends, quoting as needed): a header row `query,intent,generated_text`,
  then one row per query (an unknown intent is an empty field).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from byoc.predictor import Prediction

JSON: Final = "application/json"
CSV: Final = "text/csv"
SUPPORTED_CONTENT_TYPES: Final = (JSON, CSV)

MAX_BODY_BYTES: Final = 6 * 1024 * 1024
MAX_BATCH: Final = 64
MAX_QUERY_CHARS: Final = 1000
MAX_CUSTOM_ATTRIBUTES_CHARS: Final = 1024
CSV_HEADER: Final = ("query", "intent", "generated_text")

_REQUEST_KEYS: Final = frozenset({"inputs", "parameters"})
_PARAMETER_KEYS: Final = frozenset({"max_new_tokens"})


class InvocationError(Exception):
    """A request the server refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InvocationRequest:
    """A validated request: the queries, in order, and the generation parameters."""

    queries: tuple[str, ...]
    max_new_tokens: int | None


def media_type(header: str | None) -> tuple[str, dict[str, str]]:
    """Splits a `Content-Type`-like value into its lower-cased type and its parameters."""
    if header is None:
        return "", {}
    kind, *raw_params = header.split(";")
    params: dict[str, str] = {}
    for raw in raw_params:
        name, sep, value = raw.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), params


def check_content_type(header: str | None) -> str:
    """The request's supported media type, or a 415 that names the supported ones."""
    kind, params = media_type(header)
    if kind not in SUPPORTED_CONTENT_TYPES:
        shown = repr(header) if header is not None else "no Content-Type"
        raise InvocationError(
            415, f"unsupported Content-Type {shown}; send one of {', '.join(SUPPORTED_CONTENT_TYPES)}"
        )
    charset = params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise InvocationError(415, f"unsupported charset {charset!r}; send UTF-8")
    return kind


def choose_accept(header: str | None) -> str:
    """The answer's media type for an `Accept` value (quality values honoured), or a 406."""
    if header is None or not header.strip():
        return JSON
    best: tuple[float, int, str] | None = None
    for position, entry in enumerate(header.split(",")):
        kind, params = media_type(entry)
        if not kind:
            continue
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            continue
        if not 0 < quality <= 1:
            continue
        candidate = _match(kind)
        # Highest quality wins; among equals, the first listed (negated position sorts it first).
        if candidate is not None and (best is None or (quality, -position) > best[:2]):
            best = (quality, -position, candidate)
    if best is None:
        raise InvocationError(406, f"cannot answer Accept {header!r}; accept one of {JSON}, {CSV}")
    return best[2]


def _match(kind: str) -> str | None:
    if kind in ("*/*", "application/*", JSON):
        return JSON
    if kind in ("text/*", CSV):
        return CSV
    return None


def check_custom_attributes(value: str | None) -> str | None:
    """The `X-Amzn-SageMaker-Custom-Attributes` value to echo, validated as SageMaker limits it."""
    if value is None:
        return None
    if len(value) > MAX_CUSTOM_ATTRIBUTES_CHARS or not all(" " <= char <= "~" for char in value):
        raise InvocationError(
            400,
            "X-Amzn-SageMaker-Custom-Attributes must be at most "
            f"{MAX_CUSTOM_ATTRIBUTES_CHARS} visible ASCII characters",
        )
    return value


def parse_request(body: bytes, content_type: str, max_new_tokens_limit: int) -> InvocationRequest:
    """Validates a body of a supported content type (see `check_content_type`)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvocationError(400, f"the body is not valid UTF-8 (byte {error.start})") from None
    if content_type == CSV:
        return InvocationRequest(_check_queries(_csv_queries(text)), None)
    return _parse_json(text, max_new_tokens_limit)


def _csv_queries(text: str) -> list[str]:
    queries: list[str] = []
    try:
        for row in csv.reader(io.StringIO(text, newline="")):
            if not row:
                continue
            if len(row) != 1:
                raise InvocationError(
                    400,
                    f"CSV row {len(queries) + 1} has {len(row)} fields; send one query a row "
                    "and quote a query that holds a comma",
                )
            queries.append(row[0])
    except csv.Error as error:
        raise InvocationError(400, f"the body is not valid CSV: {error}") from None
    return queries


def _parse_json(text: str, max_new_tokens_limit: int) -> InvocationRequest:
    try:
        document = json.loads(text)
    except RecursionError:
        raise InvocationError(400, "the JSON body is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, and integers longer than Python's digit limit
        raise InvocationError(400, f"the body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvocationError(400, f'the JSON body must be an object with "inputs", got {_kind(document)}')
    unknown = sorted(set(document) - _REQUEST_KEYS)
    if unknown:
        raise InvocationError(400, f'unknown keys {unknown}; the body accepts "inputs" and "parameters"')
    if "inputs" not in document:
        raise InvocationError(400, 'the JSON body needs "inputs": a query or a list of queries')
    inputs = document["inputs"]
    if isinstance(inputs, str):
        queries = [inputs]
    elif isinstance(inputs, list):
        for index, item in enumerate(inputs):
            if not isinstance(item, str):
                raise InvocationError(400, f'"inputs"[{index}] must be a string, got {_kind(item)}')
        queries = inputs
    else:
        raise InvocationError(400, f'"inputs" must be a string or a list of strings, got {_kind(inputs)}')
    max_new_tokens = _parse_parameters(document.get("parameters"), max_new_tokens_limit)
    return InvocationRequest(_check_queries(queries), max_new_tokens)


def _parse_parameters(parameters: Any, max_new_tokens_limit: int) -> int | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise InvocationError(400, f'"parameters" must be an object, got {_kind(parameters)}')
    unknown = sorted(set(parameters) - _PARAMETER_KEYS)
    if unknown:
        raise InvocationError(400, f"unknown parameters {unknown}; supported: {sorted(_PARAMETER_KEYS)}")
    value = parameters.get("max_new_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvocationError(400, f'"max_new_tokens" must be an integer, got {_kind(value)}')
    if not 1 <= value <= max_new_tokens_limit:
        raise InvocationError(
            400, f'"max_new_tokens" must be between 1 and {max_new_tokens_limit}, got {value}'
        )
    return value


def _check_queries(queries: Sequence[str]) -> tuple[str, ...]:
    if not queries:
        raise InvocationError(400, "no queries: send at least one")
    if len(queries) > MAX_BATCH:
        raise InvocationError(400, f"{len(queries)} queries in one request; the limit is {MAX_BATCH}")
    for index, query in enumerate(queries):
        if not query.strip():
            raise InvocationError(400, f"query {index} is empty")
        if not query.isprintable() and _has_lone_surrogate(query):
            raise InvocationError(400, f"query {index} holds an unpaired UTF-16 surrogate escape")
        if len(query) > MAX_QUERY_CHARS:
            raise InvocationError(
                400, f"query {index} has {len(query)} characters; the limit is {MAX_QUERY_CHARS}"
            )
    return tuple(queries)


def _has_lone_surrogate(query: str) -> bool:
    # json.loads turns "\\ud800" into a lone surrogate, which no UTF-8 encoder or tokenizer accepts.
    return any("\ud800" <= char <= "\udfff" for char in query)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def encode_predictions(predictions: Sequence[Prediction], accept: str) -> bytes:
    """The answer body for `accept` (`JSON` or `CSV`)."""
    if accept == CSV:
        buffer = io.StringIO(newline="")
        # RFC 4180's CRLF line ends: the csv module then quotes any field that holds a \r or a \n.
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_HEADER)
        for prediction in predictions:
            writer.writerow([prediction.query, prediction.intent or "", prediction.generated_text])
        return buffer.getvalue().encode("utf-8")
    document = {
        "predictions": [
            {"query": p.query, "intent": p.intent, "generated_text": p.generated_text} for p in predictions
        ]
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def encode_error(status: int, message: str) -> bytes:
    """The JSON body of every error answer."""
    return json.dumps({"error": message, "status": status}, ensure_ascii=False).encode("utf-8")
