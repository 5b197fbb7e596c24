"""The `docker` command a build sees under the process runtime: source trees as images.

With the process runtime an image is a source tree addressed by the content hash of its `container/`
folder (`harness.compute.process.tree_digest`). So that the deployer's buildspec runs unchanged (the
file that runs on AWS), the Build action puts this program first on the build's PATH as `docker`; it
understands exactly what the buildspec asks of docker, and nothing else:

- `docker build [-t NAME:TAG]... [--build-arg X] [--label X] CONTEXT`: CONTEXT must be the tree's
  `container` folder; the tags now name the tree's digest.
- `docker push NAME:TAG`: prints the digest line docker prints (`TAG: digest: sha256:... size: N`).
- `docker inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' NAME:TAG`: prints
  `NAME@sha256:...` (a tree has one repository's digest: the tag's).
- `docker login ...`: accepted (there is no registry to log in to).

Tags are kept in the JSON file named by `MLOPS_DOCKER_STANDIN_STATE`. The Build action registers the
tree with the process runtime after the build and checks that the digests agree.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

STATE_ENV = "MLOPS_DOCKER_STANDIN_STATE"
_INSPECT_FORMAT = "{{range .RepoDigests}}{{println .}}{{end}}"


class UsageError(Exception):
    pass


def _state_path() -> Path:
    value = os.environ.get(STATE_ENV)
    if not value:
        raise UsageError(
            f"{STATE_ENV} is not set: this docker stand-in runs only inside a local Build action"
        )
    return Path(value)


def _load() -> dict[str, str]:
    path = _state_path()
    loaded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {str(k): str(v) for k, v in loaded.items()}


def _save(tags: dict[str, str]) -> None:
    _state_path().write_text(json.dumps(tags, indent=2, sort_keys=True), encoding="utf-8")


def _build(args: list[str]) -> str:
    tags: list[str] = []
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in ("-t", "--tag"):
            tags.append(args[index + 1])
            index += 2
        elif arg in ("--build-arg", "--label", "-f", "--file"):
            index += 2
        elif arg.startswith("-"):
            raise UsageError(
                f"docker build option {arg!r} is not supported by the process runtime's stand-in"
            )
        else:
            positional.append(arg)
            index += 1
    if len(positional) != 1 or not tags:
        raise UsageError("docker build needs -t NAME:TAG and one build context")
    context = Path(positional[0]).resolve()
    if context.name != "container":
        raise UsageError(f"the build context must be the tree's container/ folder, got {context}")
    from harness.compute.process import tree_digest

    digest = tree_digest(context.parent)
    known = _load()
    known.update({tag: digest for tag in tags})
    _save(known)
    return f"Successfully built {digest[7:19]}\n" + "".join(f"Successfully tagged {t}\n" for t in tags)


def _digest_of(tag: str) -> str:
    known = _load()
    if tag not in known:
        raise UsageError(f"no image {tag!r} was built in this build")
    return known[tag]


def _name(tag: str) -> str:
    """`host:5000/repo:tag` -> `host:5000/repo` (a colon inside the host is not a tag)."""
    repository, colon, last = tag.rpartition(":")
    return repository if colon and "/" not in last else tag


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args:
            raise UsageError("usage: docker build|push|inspect|login ...")
        command, rest = args[0], args[1:]
        if command == "build":
            sys.stdout.write(_build(rest))
        elif command == "push" and len(rest) == 1:
            digest = _digest_of(rest[0])
            sys.stdout.write(f"{rest[0].rpartition(':')[2]}: digest: {digest} size: 0\n")
        elif command == "inspect" and rest[:2] == ["--format", _INSPECT_FORMAT] and len(rest) == 3:
            sys.stdout.write(f"{_name(rest[2])}@{_digest_of(rest[2])}\n")
        elif command == "login":
            sys.stdout.write("Login Succeeded\n")
        else:
            raise UsageError(f"`docker {' '.join(args)}` is not supported by the process runtime's stand-in")
    except UsageError as error:
        sys.stderr.write(f"docker (process runtime stand-in): {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
