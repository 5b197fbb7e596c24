"""`--shard I/N`: a deterministic split of the scenario set, so that N CI jobs each replay a part.

Scenarios are ordered by name (names are unique, file order plays no part) and dealt round-robin:
shard I (1-based) takes the scenarios at positions I-1, I-1+N, I-1+2N, ... Every scenario lands in
exactly one shard, and the same set with the same N always splits the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.scenarios.loader import LoadedScenario

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`I/N` with 1 <= I <= N; a ValueError names what is wrong."""
        match = _SHARD.match(text)
        if match is None:
            raise ValueError(f"a shard is I/N (for example 2/3), not {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 1 <= index <= count:
            raise ValueError(f"shard {text!r}: I must be between 1 and N, and N at least 1")
        return cls(index, count)

    def select(self, scenarios: Sequence[LoadedScenario]) -> list[LoadedScenario]:
        ordered = sorted(scenarios, key=lambda item: item.scenario.name)
        return ordered[self.index - 1 :: self.count]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
