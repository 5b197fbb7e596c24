"""The Source action: a commit of a local git repository becomes the source artifact.

`snapshot_commit(repository, ref)` names the commit: a given ref as it is, or (no ref) the working tree
as a commit, made without touching the user's branch, index or working tree: the tracked and untracked,
not ignored files are staged into a temporary index (`GIT_INDEX_FILE`), written as a tree and committed
with `git commit-tree` on top of HEAD. No ref is moved, so the commit is dangling (git's gc keeps it for
weeks); when the tree equals HEAD's, HEAD itself is the commit. `git archive` then writes the commit's
files as the artifact zip, as CodeCommit's source action does, and the action's output variables are
those of CodeCommit (or of a CodeStar connection): CommitId, CommitMessage, BranchName, ...
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.pipeline.model import ActionContext, ActionFailed, ActionOutput

# Identity for the snapshot commit when the repository has none configured.
_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "mlops harness",
    "GIT_AUTHOR_EMAIL": "harness@localhost",
    "GIT_COMMITTER_NAME": "mlops harness",
    "GIT_COMMITTER_EMAIL": "harness@localhost",
}


class GitError(RuntimeError):
    pass


@dataclass(frozen=True)
class Commit:
    commit_id: str
    message: str
    branch: str
    author_date: str
    committer_date: str
    from_working_tree: bool


def git(repository: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`git -C repository args...` with `env` added to this process's; its stdout, stripped. A failure
    raises GitError naming the command and git's message."""
    completed = subprocess.run(
        ["git", "-C", str(repository), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if completed.returncode != 0:
        problem = (completed.stderr or completed.stdout).strip()
        raise GitError(f"git {' '.join(args)} failed in {repository}: {problem}")
    return completed.stdout.strip()


def _identity(repository: Path) -> dict[str, str]:
    try:
        git(repository, "config", "user.name")
        git(repository, "config", "user.email")
    except GitError:
        return dict(_FALLBACK_IDENTITY)
    return {}


def _head(repository: Path) -> str | None:
    try:
        return git(repository, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except GitError:
        return None  # a repository without commits yet


def _is_branch(repository: Path, ref: str) -> bool:
    try:
        git(repository, "show-ref", "--verify", "--quiet", f"refs/heads/{ref}")
    except GitError:
        return False
    return True


def snapshot_commit(repository: Path, ref: str | None = None) -> Commit:
    """The commit the Source action delivers (see the module docstring)."""
    repository = repository.resolve()
    try:
        top = git(repository, "rev-parse", "--show-toplevel")
    except GitError as error:
        raise GitError(f"{repository} is not a git repository") from error
    repository = Path(top)
    branch = git(repository, "rev-parse", "--abbrev-ref", "HEAD") if _head(repository) else "main"
    if ref is not None:
        commit_id = git(repository, "rev-parse", "--verify", f"{ref}^{{commit}}")
        from_working_tree = False
        if _is_branch(repository, ref):
            branch = ref
    else:
        commit_id = _working_tree_commit(repository)
        from_working_tree = True
    fields = git(repository, "show", "-s", "--format=%aI%x00%cI%x00%B", commit_id).split("\x00", 2)
    return Commit(commit_id, fields[2].strip(), branch, fields[0], fields[1], from_working_tree)


def _working_tree_commit(repository: Path) -> str:
    head = _head(repository)
    with tempfile.TemporaryDirectory(prefix="mlops-index-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        if head is not None:
            git(repository, "read-tree", head, env=env)
        git(repository, "add", "--all", "--", ".", env=env)
        tree = git(repository, "write-tree", env=env)
    if head is not None and git(repository, "rev-parse", f"{head}^{{tree}}") == tree:
        return head
    parents = ["-p", head] if head is not None else []
    message = "mlops: snapshot of the working tree"
    return git(repository, "commit-tree", tree, *parents, "-m", message, env=_identity(repository))


def codecommit_event(
    commit: Commit,
    repository_name: str,
    region: str,
    account_id: str,
    old_commit_id: str | None = None,
    event_id: str = "00000000-0000-0000-0000-000000000000",
    time: str = "1970-01-01T00:00:00Z",
) -> dict[str, object]:
    """The event CodeCommit sends to EventBridge when `commit` lands on its branch (CodeCommit user
    guide, "Monitoring CodeCommit events in Amazon EventBridge": referenceCreated for a new branch,
    referenceUpdated with oldCommitId otherwise): what the pipeline's SourceChangedRule matches."""
    detail: dict[str, str] = {
        "event": "referenceUpdated" if old_commit_id else "referenceCreated",
        "repositoryName": repository_name,
        "repositoryId": f"{account_id}-{repository_name}",
        "referenceType": "branch",
        "referenceName": commit.branch,
        "referenceFullName": f"refs/heads/{commit.branch}",
        "commitId": commit.commit_id,
    }
    if old_commit_id:
        detail["oldCommitId"] = old_commit_id
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "CodeCommit Repository State Change",
        "source": "aws.codecommit",
        "account": account_id,
        "time": time,
        "region": region,
        "resources": [f"arn:aws:codecommit:{region}:{account_id}:{repository_name}"],
        "detail": detail,
    }


def archive_commit(repository: Path, commit_id: str, destination: Path) -> Path:
    """Writes the commit's files as a zip (git archive's zip carries the commit's time: reproducible)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    git(repository, "archive", "--format=zip", f"--output={destination}", commit_id)
    return destination


def git_source_action(context: ActionContext) -> ActionOutput:
    """Executor for Source/CodeCommit and Source/CodeStarSourceConnection actions."""
    if context.source is None:
        raise ActionFailed("the Source action needs a repository: run the pipeline with a SourceRequest")
    if len(context.action.output_artifacts) != 1:
        raise ActionFailed("a Source action has exactly one output artifact")
    try:
        commit = snapshot_commit(context.source.repository, context.source.ref)
        artifact = context.action.output_artifacts[0]
        archive_commit(context.source.repository, commit.commit_id, context.output_path(artifact))
    except GitError as error:
        raise ActionFailed(str(error)) from error
    title = commit.message.splitlines()[0] if commit.message else ""
    context.progress(f"commit {commit.commit_id[:12]} {title}".rstrip())
    variables = {
        "CommitId": commit.commit_id,
        "CommitMessage": commit.message,
        "BranchName": context.configuration.get("BranchName", commit.branch),
        "AuthorDate": commit.author_date,
        "CommitterDate": commit.committer_date,
    }
    provider = context.action.action_type.provider
    if provider == "CodeCommit":
        repository_name = context.configuration.get("RepositoryName", context.source.repository.name)
        variables["RepositoryName"] = repository_name
    else:
        variables["FullRepositoryName"] = context.configuration.get(
            "FullRepositoryId", context.source.repository.name
        )
        variables["ConnectionArn"] = context.configuration.get("ConnectionArn", "")
    return ActionOutput(
        variables=variables,
        artifacts={artifact: context.output_path(artifact)},
        summary=title or commit.commit_id,
        revision=commit.commit_id,
        external_execution_id=commit.commit_id,
    )
