"""A commit as the event CodeCommit sends (harness.pipeline.source.codecommit_event), matched by the
platform's SourceChangedRule as the emulator's EventBridge matches it (moto's own EventPattern matcher,
which the events seam keeps for rule delivery; moto does not implement TestEventPattern).

CodeCommit user guide, "Monitoring CodeCommit events in Amazon EventBridge" (the event's shape);
CodePipeline user guide, "Create an EventBridge rule for a CodeCommit source" (the rule's pattern).
"""

from __future__ import annotations

import json

from moto.events.models import EventPattern

from deployer import compile as compiler
from deployer.iam_check import TemplateResolver
from harness.pipeline.source import Commit, codecommit_event

COMMIT = Commit("0123456789abcdef0123456789abcdef01234567", "msg", "main", "", "", False)


def _pattern(**parameters: str) -> str:
    resolver = TemplateResolver(compiler.render_platform(), "p", {"AssetsBucket": "b", **parameters})
    return json.dumps(resolver.resolved("SourceChangedRule")["EventPattern"])


def _matches(event: dict[str, object], pattern: str) -> bool:
    return bool(EventPattern.load(pattern).matches_event(event))


def test_a_commit_on_the_pipelines_branch_matches_the_rule() -> None:
    pattern = _pattern()
    updated = codecommit_event(COMMIT, "gptneo-intent", "us-east-1", "123456789012", old_commit_id="f" * 40)
    assert updated["detail"]["event"] == "referenceUpdated"  # type: ignore[index]
    assert _matches(updated, pattern)
    created = codecommit_event(COMMIT, "gptneo-intent", "us-east-1", "123456789012")
    assert created["detail"]["event"] == "referenceCreated"  # type: ignore[index]
    assert _matches(created, pattern)


def test_other_branches_and_repositories_do_not_start_the_pipeline() -> None:
    pattern = _pattern(BranchName="release", RepositoryName="other-repo")
    on_main = codecommit_event(COMMIT, "other-repo", "us-east-1", "123456789012")
    assert not _matches(on_main, pattern)
    release = Commit(COMMIT.commit_id, "msg", "release", "", "", False)
    assert _matches(codecommit_event(release, "other-repo", "us-east-1", "123456789012"), pattern)
    assert not _matches(codecommit_event(release, "gptneo-intent", "us-east-1", "123456789012"), pattern)
