"""The order in which parallel scenarios start, so that neither core waits while work is left.

Scenarios that would run the same training job share it through the training cache: the first to get
there trains, the others wait on its claim and reuse the model. Run in file order, two scenarios that
begin with the same training start together, and one core waits for the other's training; a scenario
that reaches a training another scenario does late (after its first pipeline) waits for it too. The
schedule (measured on 2 cores: see the README's scenario figures):

1. *Openers* first: the scenarios whose first training nobody else starts earlier. Each trains at once,
   one per core.
2. Then the scenarios whose trainings are all done at once by the scenario that claims them first (at
   its first pipeline), longest first.
3. Last, the scenarios that share a training another scenario does only later on (by then it is in the
   cache), longest first. Such a scenario may still have a training of its own: it does it then.

Claims are decided scenario by scenario, those with the fewest distinct trainings first.

"Longest first" (the LPT rule, which bounds the time a core is left alone at the end) reads the last
duration of each scenario on this machine, kept by `DurationRecord` beside the training cache; a scenario
without one counts as long as the longest known. The training a scenario does is modelled from its file:
data, hyperparameters after each commit, files committed, objects put, and whether the cache is on.
The same files and the same record always give the same order; results are still reported in the order
of the files.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from harness.scenarios.loader import LoadedScenario
from harness.scenarios.schema import CommitStep, RerunStep, S3PutStep

DURATIONS_FILE: Final = "scenario-durations.json"

# A training's identity as far as a scenario file tells it (the cache's real key adds the image digest,
# the same for every commit that changes no file).
TrainingKey = tuple[object, ...]


def training_keys(loaded: LoadedScenario) -> list[TrainingKey]:
    """The trainings the scenario's triggers start, in file order (a trigger that trains nothing new, such
    as a rerun of the same commit, repeats the key before it).

    Triggers with no other step between them start together: the objects put there are in S3 before the
    commit's pipeline has built, so its job trains on them; and an upload's job, started at once by the S3
    event, trains with the hyperparameters and image from before the commit (what two-triggers-at-once
    measured: three distinct trainings, the upload's reusing the earlier settings' model)."""
    scenario = loaded.scenario
    settings = scenario.settings
    hyperparameters = dict(settings.hyperparameters.given())
    files: dict[str, str] = {}
    puts: dict[str, str] = {}  # key -> what was put there (the same object put again changes nothing)
    keys: list[TrainingKey] = []
    burst: list[tuple[int, CommitStep | S3PutStep | RerunStep]] = []

    def key(index: int, used: dict[str, str | int | float], image: dict[str, str]) -> TrainingKey:
        if not settings.training_cache:
            return (scenario.name, index)  # trains every time: shares nothing
        return (
            settings.data,
            tuple(sorted(used.items())),
            tuple(sorted(image.items())),
            tuple(sorted(puts.items())),
        )

    def flush() -> None:
        before, image_before = dict(hyperparameters), dict(files)
        for _, trigger in burst:
            if isinstance(trigger, CommitStep):
                hyperparameters.update(trigger.commit.hyperparameters.given())
                files.update(trigger.commit.files)
            elif isinstance(trigger, S3PutStep):
                put = trigger.s3_put
                puts[put.key] = put.file or put.dataset or put.text or ""
        for index, trigger in burst:
            if isinstance(trigger, S3PutStep):
                keys.append(key(index, before, image_before))
            else:
                keys.append(key(index, hyperparameters, files))
        burst.clear()

    for index, step in enumerate(scenario.steps):
        if isinstance(step, CommitStep | S3PutStep | RerunStep):
            burst.append((index, step))
        else:
            flush()
    flush()
    return keys


def schedule(scenarios: Sequence[LoadedScenario], durations: Mapping[str, float]) -> list[LoadedScenario]:
    """`scenarios` in the order to start them (see the module's docstring)."""
    longest = max(durations.values(), default=0.0)

    def length(item: LoadedScenario) -> float:
        return durations.get(item.scenario.name, longest)

    keys = {id(item): training_keys(item) for item in scenarios}
    # Claims are decided in this order: the fewest trainings first (the training every scenario begins
    # with goes to one that then ends soon), then longest.
    by_weight = sorted(
        scenarios, key=lambda item: (len(set(keys[id(item)])), -length(item), item.scenario.name)
    )
    claimed: dict[TrainingKey, int] = {}  # key -> where in its first claimer's run it trains (0: at once)
    openers: list[LoadedScenario] = []
    middle: list[LoadedScenario] = []
    late: list[LoadedScenario] = []
    for item in by_weight:
        own = keys[id(item)]
        if own and own[0] not in claimed:
            openers.append(item)
        elif any(claimed.get(key, 0) > 0 for key in own):
            late.append(item)  # shares a training another does late
        else:
            middle.append(item)
        for position, key in enumerate(own):
            claimed.setdefault(key, position)

    def longest_first(items: Iterable[LoadedScenario]) -> list[LoadedScenario]:
        return sorted(items, key=lambda item: (-length(item), item.scenario.name))

    return longest_first(openers) + longest_first(middle) + longest_first(late)


@dataclass(frozen=True)
class DurationRecord:
    """The last duration of each scenario on this machine, in a JSON file (name -> seconds)."""

    path: Path

    @classmethod
    def beside(cls, cache_dir: Path) -> DurationRecord:
        return cls(cache_dir / DURATIONS_FILE)

    def read(self) -> dict[str, float]:
        """What was recorded; nothing when the file is absent or unreadable (the order then falls back to
        the files' trainings alone: a damaged record costs time, never a result)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(raw, dict):
            return {}
        return {
            str(name): float(seconds)
            for name, seconds in raw.items()
            if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0
        }

    def update(self, measured: Mapping[str, float]) -> None:
        """Merges `measured` into the record (written whole, atomically: a concurrent run loses at most
        its own figures)."""
        if not measured:
            return
        merged = {**self.read(), **{name: round(seconds, 2) for name, seconds in measured.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".durations-", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(dict(sorted(merged.items())), out, indent=1)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


__all__ = ["DURATIONS_FILE", "DurationRecord", "schedule", "training_keys"]
