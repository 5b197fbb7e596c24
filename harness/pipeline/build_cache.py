"""CodeBuild's local cache, as the Build executor keeps it between builds on this machine.

A CodeBuild project with `Cache: {Type: LOCAL, Modes: [...]}` keeps a cache on the build host that
only builds on that host see ("Build caching in AWS CodeBuild", *Local caching*; the CloudFormation
`AWS::CodeBuild::Project ProjectCache` property). Its modes:

- `LOCAL_CUSTOM_CACHE` caches the directories the buildspec names in `cache.paths` (relative to the
  primary source directory; `dir/**/*` means the whole directory): after a successful build they are
  kept, and the next build finds them in its source directory before its first phase runs. This
  module does exactly that, with this machine standing for the build host: a folder per project
  under the cache root.
- `LOCAL_DOCKER_LAYER_CACHE` keeps Docker's layers: the local engine keeps its layers anyway.
- `LOCAL_SOURCE_CACHE` caches Git metadata of Git sources: CodePipeline's source artifact is a zip,
  so it has nothing to cache here either.

Absolute `cache.paths` (for example `/root/.cache/pip/**/*`) name the build container's own folders;
the harness runs the build's commands on this machine, whose folders persist anyway, so those paths
are left alone. A restored file is a hard link to the cached one where the file system allows (a copy
elsewhere); a save replaces the project's cached folder as a whole, through a rename.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

LOG = logging.getLogger(__name__)

LOCAL = "LOCAL"
CUSTOM_MODE = "LOCAL_CUSTOM_CACHE"
_GLOB_CHARS = frozenset("*?[")


def cached_directory(pattern: str) -> PurePosixPath | None:
    """The directory a relative `cache.paths` entry names (`container/wheels/**/*` -> container/wheels),
    or None for an absolute path, a path that leaves the source, or one that names the source itself."""
    path = PurePosixPath(pattern)
    if path.is_absolute():
        return None
    parts: list[str] = []
    for part in path.parts:
        if _GLOB_CHARS.intersection(part):
            break
        parts.append(part)
    if not parts or ".." in parts:
        return None
    return PurePosixPath(*parts)


class LocalBuildCache:
    """The local cache of the build projects on this machine: `<root>/<project>/<cached directory>`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def restore(self, project: str, patterns: Sequence[str], source_dir: Path) -> int:
        """Puts the cached directories into `source_dir` (files the source has win); returns the count."""
        restored = 0
        for directory in _directories(patterns):
            cached = self.root / project / directory
            if not cached.is_dir():
                continue
            for file in sorted(path for path in cached.rglob("*") if path.is_file()):
                target = source_dir / directory / file.relative_to(cached)
                if target.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(file, target)
                restored += 1
        return restored

    def save(self, project: str, patterns: Sequence[str], source_dir: Path) -> int:
        """Keeps the named directories of a successful build; returns the number of files kept."""
        kept = 0
        for directory in _directories(patterns):
            built = source_dir / directory
            if not built.is_dir():
                continue
            destination = self.root / project / directory
            destination.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=destination.parent))
            try:
                for file in sorted(path for path in built.rglob("*") if path.is_file()):
                    target = staging / file.relative_to(built)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _link_or_copy(file, target)
                    kept += 1
                old = None
                if destination.exists():
                    old = destination.with_name(f".old-{destination.name}-{os.getpid()}")
                    os.rename(destination, old)
                os.rename(staging, destination)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return kept


def _directories(patterns: Sequence[str]) -> list[PurePosixPath]:
    found = []
    for pattern in patterns:
        directory = cached_directory(pattern)
        if directory is None:
            LOG.debug("build cache: %r is not a directory in the source; left to the build host", pattern)
        elif directory not in found:
            found.append(directory)
    return found


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
