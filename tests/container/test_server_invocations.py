"""Unit tests of `byoc.invocations`: the `/invocations` wire format, its limits and its encodings."""

from __future__ import annotations

import csv
import io
import json

import pytest
from byoc import invocations
from byoc.invocations import CSV, JSON, InvocationError, InvocationRequest, parse_request
from byoc.predictor import Prediction

LIMIT = 16


def rejected(body: bytes, content_type: str = JSON, limit: int = LIMIT) -> InvocationError:
    with pytest.raises(InvocationError) as caught:
        parse_request(body, content_type, limit)
    return caught.value


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", JSON),
        ("Application/JSON; charset=UTF-8", JSON),
        ("text/csv", CSV),
        ('text/csv; charset="utf-8"; header=absent', CSV),
    ],
)
def test_supported_content_types(header: str, expected: str) -> None:
    assert invocations.check_content_type(header) == expected


@pytest.mark.parametrize(
    "header", [None, "", "text/plain", "application/x-www-form-urlencoded", "application/jsonx"]
)
def test_unsupported_content_type_is_415(header: str | None) -> None:
    with pytest.raises(InvocationError) as caught:
        invocations.check_content_type(header)
    assert caught.value.status == 415
    assert "application/json" in caught.value.message


def test_non_utf8_charset_is_415() -> None:
    with pytest.raises(InvocationError) as caught:
        invocations.check_content_type("application/json; charset=latin-1")
    assert caught.value.status == 415


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("text/csv", CSV),
        ("text/*", CSV),
        ("text/html, text/csv", CSV),
        ("application/json;q=0.5, text/csv", CSV),
        ("text/csv;q=0.2, application/json;q=0.9", JSON),
        ("text/csv, application/json", CSV),
        ("application/xml, */*;q=0.1", JSON),
        ("text/csv;q=0, */*", JSON),
    ],
)
def test_accept_negotiation(header: str | None, expected: str) -> None:
    assert invocations.choose_accept(header) == expected


@pytest.mark.parametrize(
    "header", ["application/xml", "text/html", "text/csv;q=0", "image/*", "text/csv;q=abc", ","]
)
def test_unsupported_accept_is_406(header: str) -> None:
    with pytest.raises(InvocationError) as caught:
        invocations.choose_accept(header)
    assert caught.value.status == 406


def test_json_single_query_and_list() -> None:
    assert parse_request(b'{"inputs": "set an alarm"}', JSON, LIMIT) == InvocationRequest(
        ("set an alarm",), None
    )
    body = json.dumps({"inputs": ["a", "b c"], "parameters": {"max_new_tokens": 3}}).encode()
    assert parse_request(body, JSON, LIMIT) == InvocationRequest(("a", "b c"), 3)


def test_json_keeps_unicode_and_empty_parameters() -> None:
    body = json.dumps({"inputs": ["réveille-moi à 7h ☀️"], "parameters": {}}, ensure_ascii=False)
    assert parse_request(body.encode(), JSON, LIMIT).queries == ("réveille-moi à 7h ☀️",)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "must be an object"),
        (b'"just a string"', "must be an object"),
        (b"{}", '"inputs"'),
        (b'{"inputs": 3}', "string or a list"),
        (b'{"inputs": null}', "string or a list"),
        (b'{"inputs": {"q": "x"}}', "string or a list"),
        (b'{"inputs": ["ok", 5]}', '"inputs"[1]'),
        (b'{"inputs": [["nested"]]}', '"inputs"[0]'),
        (b'{"inputs": []}', "no queries"),
        (b'{"inputs": ""}', "query 0 is empty"),
        (b'{"inputs": ["fine", "   "]}', "query 1 is empty"),
        (b'{"inputs": "x", "extra": 1}', "unknown keys"),
        (b'{"inputs": "x", "parameters": []}', '"parameters" must be an object'),
        (b'{"inputs": "x", "parameters": {"temperature": 1}}', "unknown parameters"),
        (b'{"inputs": "x", "parameters": {"max_new_tokens": "5"}}', "must be an integer"),
        (b'{"inputs": "x", "parameters": {"max_new_tokens": 2.0}}', "must be an integer"),
        (b'{"inputs": "x", "parameters": {"max_new_tokens": true}}', "must be an integer"),
        (b'{"inputs": "x", "parameters": {"max_new_tokens": 0}}', "between 1 and 16"),
        (b'{"inputs": "x", "parameters": {"max_new_tokens": 17}}', "between 1 and 16"),
        (b'{"inputs": "x", "parameters": {"max_new_tokens": -1}}', "between 1 and 16"),
        (b'{"inputs": "\\ud800"}', "surrogate"),
        (b'{"inputs": "x"} trailing', "not valid JSON"),
        (b"\xef\xbb\xbf" + b'{"inputs": "x"}', "not valid JSON"),
        (b'{"inputs": "caf\xe9"}', "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"inputs": "x", "parameters": {"max_new_tokens": ' + b"9" * 5000 + b"}}", "not valid JSON"),
    ],
)
def test_bad_json_bodies_are_400(body: bytes, fragment: str) -> None:
    error = rejected(body)
    assert error.status == 400
    assert fragment in error.message


def test_batch_limit() -> None:
    at_limit = json.dumps({"inputs": ["q"] * invocations.MAX_BATCH}).encode()
    assert len(parse_request(at_limit, JSON, LIMIT).queries) == invocations.MAX_BATCH
    error = rejected(json.dumps({"inputs": ["q"] * (invocations.MAX_BATCH + 1)}).encode())
    assert error.status == 400
    assert f"limit is {invocations.MAX_BATCH}" in error.message


def test_query_length_limit() -> None:
    longest = "a" * invocations.MAX_QUERY_CHARS
    assert parse_request(json.dumps({"inputs": longest}).encode(), JSON, LIMIT).queries == (longest,)
    error = rejected(json.dumps({"inputs": longest + "a"}).encode())
    assert error.status == 400
    assert "characters" in error.message


def test_csv_one_query_a_row_with_quoting() -> None:
    body = 'what time is it\n"set a timer, 5 minutes"\n"she said ""hi"""\n\n"two\nlines"\r\n'
    request = parse_request(body.encode(), CSV, LIMIT)
    assert request == InvocationRequest(
        ("what time is it", "set a timer, 5 minutes", 'she said "hi"', "two\nlines"), None
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "no queries"),
        (b"\n\n", "no queries"),
        (b"one\nsplit, by a comma\n", "row 2 has 2 fields"),
        (b'""\n', "query 0 is empty"),
        (b"caf\xe9\n", "not valid UTF-8"),
    ],
)
def test_bad_csv_bodies_are_400(body: bytes, fragment: str) -> None:
    error = rejected(body, CSV)
    assert error.status == 400
    assert fragment in error.message


def test_csv_field_over_the_csv_module_limit_is_400_not_a_crash() -> None:
    error = rejected(b'"' + b"x" * 200_000 + b'"\n', CSV)
    assert error.status == 400


@pytest.mark.parametrize("value", [None, "", "trace-id=1; user=abc", "x" * 1024])
def test_custom_attributes_accepted(value: str | None) -> None:
    assert invocations.check_custom_attributes(value) == value


@pytest.mark.parametrize("value", ["x" * 1025, "tab\there", "é", "line\r\nInjected: 1"])
def test_custom_attributes_rejected(value: str) -> None:
    with pytest.raises(InvocationError) as caught:
        invocations.check_custom_attributes(value)
    assert caught.value.status == 400


PREDICTIONS = [
    Prediction("wake me up, at 7", "alarm", " alarm"),
    Prediction('say "hi"', None, " gibberish"),
    Prediction("two\rline\nbreaks", "alarm", " alarm"),
]


def test_encode_json() -> None:
    document = json.loads(invocations.encode_predictions(PREDICTIONS, JSON))
    assert document == {
        "predictions": [
            {"query": "wake me up, at 7", "intent": "alarm", "generated_text": " alarm"},
            {"query": 'say "hi"', "intent": None, "generated_text": " gibberish"},
            {"query": "two\rline\nbreaks", "intent": "alarm", "generated_text": " alarm"},
        ]
    }


def test_encode_csv_round_trips_through_a_csv_reader() -> None:
    text = invocations.encode_predictions(PREDICTIONS, CSV).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [
        ["query", "intent", "generated_text"],
        ["wake me up, at 7", "alarm", " alarm"],
        ['say "hi"', "", " gibberish"],
        ["two\rline\nbreaks", "alarm", " alarm"],
    ]
    assert text.startswith("query,intent,generated_text\r\n")


def test_encode_error() -> None:
    assert json.loads(invocations.encode_error(413, "too big")) == {"error": "too big", "status": 413}
