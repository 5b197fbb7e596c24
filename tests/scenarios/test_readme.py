"""scenarios/README.md cannot drift: every example loads, every feature has one, the catalogue is current."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from harness.scenarios.catalogue import describe_catalogue
from harness.scenarios.loader import parse_scenario
from harness.scenarios.schema import (
    EXPECTATION_KINDS,
    FAULT_MODELS,
    HTTP_PREDICATES,
    STEP_KINDS,
    WAIT_KINDS,
    Matcher,
)

README = Path(__file__).resolve().parents[2] / "scenarios" / "README.md"
TEXT = README.read_text(encoding="utf-8")
EXAMPLES = re.findall(r"```yaml\n(.*?)```", TEXT, flags=re.DOTALL)


@pytest.mark.parametrize("example", EXAMPLES, ids=[re.search(r"name: (\S+)", e).group(1) for e in EXAMPLES])  # type: ignore[union-attr]
def test_every_example_is_a_valid_scenario(example: str) -> None:
    parse_scenario(example, README)  # paths resolve against scenarios/, as for the scenario files


def test_every_feature_has_an_example() -> None:
    examples = "\n".join(EXAMPLES)
    for kind in (*STEP_KINDS, *EXPECTATION_KINDS, *WAIT_KINDS, *HTTP_PREDICATES, *Matcher.model_fields):
        assert re.search(rf"\b{kind}\b", examples), f"no example in {README} uses {kind!r}"
    for model in FAULT_MODELS:
        (kind,) = typing.get_args(model.model_fields["kind"].annotation)
        assert f"kind: {kind}" in examples, f"no example in {README} injects {kind!r}"


def test_the_catalogue_copy_is_current() -> None:
    match = re.search(
        r"<!-- catalogue:start -->\n```text\n(.*?)\n```\n<!-- catalogue:end -->", TEXT, re.DOTALL
    )
    assert match is not None
    assert match.group(1) == describe_catalogue(), "refresh it: python -m harness.scenarios.catalogue"
