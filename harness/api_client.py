"""The HTTP client of the published API: one POST per sample query, with the key."""

from __future__ import annotations

import requests

from harness.flow_model import Query, SampleAnswer

API_TIMEOUT_S = 30.0


def call_api(url: str, api_key: str, query: Query) -> SampleAnswer:
    """One POST of `{"inputs": query}` with the key; the intent is the container's first prediction."""
    try:
        response = requests.post(
            url, json={"inputs": query.text}, headers={"x-api-key": api_key}, timeout=API_TIMEOUT_S
        )
    except requests.RequestException as error:
        return SampleAnswer(query.text, query.expected, 0, None, f"no answer: {error}")
    intent = None
    problem = None
    try:
        body = response.json()
        if response.status_code == 200:
            intent = body["predictions"][0]["intent"]
        else:
            problem = str(body.get("message", body))[:500]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        problem = response.text[:500]
    return SampleAnswer(query.text, query.expected, response.status_code, intent, problem)
