"""The start order of parallel scenarios (harness/scenarios/schedule.py) and the duration record."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from harness.scenarios.loader import LoadedScenario, load_all, parse_scenario
from harness.scenarios.schedule import DurationRecord, schedule, training_keys

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def scenario(name: str, steps: str, settings: str = "{hyperparameters: {epochs: 4}}") -> LoadedScenario:
    body = textwrap.indent(steps.strip(), "  ")
    text = f"name: {name}\ndescription: d\nsettings: {settings}\nsteps:\n{body}\n"
    path = SCENARIOS / f"{name}.yaml"
    return LoadedScenario(parse_scenario(text, path), path)


BASE = "- commit: {}\n- wait: {pipeline: Succeeded, timeout_s: 60}"
SECOND = (
    BASE
    + "\n- commit: {hyperparameters: {learning_rate: 0.001}}\n- wait: {pipeline: Succeeded, timeout_s: 60}"
)


def names(items: list[LoadedScenario]) -> list[str]:
    return [item.scenario.name for item in items]


def test_a_commit_trains_with_the_hyperparameters_so_far_and_a_rerun_repeats_its_training() -> None:
    rerun = scenario("rerun", BASE + "\n- rerun: {}\n- wait: {pipeline: Succeeded, timeout_s: 60}")
    keys = training_keys(rerun)
    assert len(keys) == 2 and keys[0] == keys[1]
    second = training_keys(scenario("second", SECOND))
    assert second[0] == keys[0] and second[1] != second[0]
    assert training_keys(scenario("other-data", BASE, "{data: clinc150}"))[0] != keys[0]


def test_triggers_without_a_step_between_them_start_together() -> None:
    """The upload's job trains with the settings from before the commit; the commit's on the upload."""
    together = scenario(
        "together",
        BASE
        + "\n- commit: {hyperparameters: {seed: 9}}"
        + "\n- s3_put: {key: more/extra.csv, text: 'Query,Intent\\na,b\\n'}"
        + "\n- wait: {pipeline: Succeeded, timeout_s: 60}",
    )
    base, commit, upload = training_keys(together)
    apart = scenario(
        "apart",
        BASE
        + "\n- commit: {hyperparameters: {seed: 9}}\n- wait: {pipeline: Succeeded, timeout_s: 60}"
        + "\n- s3_put: {key: more/extra.csv, text: 'Query,Intent\\na,b\\n'}",
    )
    _, apart_commit, apart_upload = training_keys(apart)
    assert len({base, commit, upload}) == 3
    assert upload != apart_upload and commit != apart_commit  # the order of events changes what trains
    assert apart_upload == commit  # apart: the upload trains on the commit's settings, as the commit did


def test_a_scenario_without_the_training_cache_shares_no_training() -> None:
    cached = training_keys(scenario("cached", BASE))
    uncached = training_keys(
        scenario("uncached", BASE, "{hyperparameters: {epochs: 4}, training_cache: false}")
    )
    assert cached != uncached


def test_scenarios_that_begin_with_the_same_training_do_not_start_together() -> None:
    """Two cores: the first two to start train different things, so neither waits on the other's claim."""
    same = [scenario(name, BASE) for name in ("a", "b", "c")]
    distinct = scenario("d-own", BASE, "{hyperparameters: {epochs: 4, max_steps: 1}}")
    order = schedule([*same, distinct], {})
    assert set(names(order[:2])) in ({"a", "d-own"}, {"b", "d-own"}, {"c", "d-own"})
    assert sorted(names(order)) == ["a", "b", "c", "d-own"]


def test_a_scenario_reusing_a_training_done_late_by_another_starts_last() -> None:
    """Both change the learning rate after a first pipeline: one trains it, the other reuses it, and
    starting the second only after the rest leaves it in the cache by then."""
    pair = [scenario("first-lr", SECOND), scenario("second-lr", SECOND)]
    quick = [scenario(f"quick-{index}", BASE) for index in range(3)]
    order = names(schedule([*pair, *quick], {"first-lr": 30.0, "second-lr": 30.0}))
    assert order[-1] in {"first-lr", "second-lr"}
    assert {"first-lr", "second-lr"} - {order[-1]} <= set(order[:-1][:4])


def test_within_a_group_the_longest_recorded_starts_first_and_unknown_counts_as_longest() -> None:
    quick = [scenario(name, BASE) for name in ("short", "long", "medium", "new")]
    order = schedule(quick, {"short": 5.0, "long": 40.0, "medium": 20.0})
    assert names(order) == ["long", "new", "medium", "short"]


def test_the_same_files_and_record_always_give_the_same_order() -> None:
    loaded = load_all([SCENARIOS])
    record = {item.scenario.name: float(len(item.scenario.name)) for item in loaded}
    first = names(schedule(loaded, record))
    assert names(schedule(list(reversed(loaded)), record)) == first
    assert sorted(first) == sorted(names(loaded))


def test_the_scenario_set_opens_with_distinct_trainings() -> None:
    """The project's set: the two scenarios that start first do not begin with the same training."""
    loaded = load_all([SCENARIOS])
    first, second = schedule(loaded, {})[:2]
    assert training_keys(first)[0] != training_keys(second)[0]


def test_the_record_merges_figures_and_survives_a_damaged_file(tmp_path: Path) -> None:
    record = DurationRecord.beside(tmp_path / "cache")
    assert record.read() == {}
    record.update({"a": 10.0, "b": 20.123})
    record.update({"b": 5.0})
    assert record.read() == {"a": 10.0, "b": 5.0}
    record.path.write_text("{not json", encoding="utf-8")
    assert record.read() == {}
    record.path.write_text(json.dumps({"a": -1, "b": True, "c": "x", "d": 3}), encoding="utf-8")
    assert record.read() == {"d": 3.0}
    record.update({"e": 1.0})
    assert record.read() == {"d": 3.0, "e": 1.0}
    assert [path.name for path in record.path.parent.iterdir()] == ["scenario-durations.json"]
