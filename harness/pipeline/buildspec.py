"""Runs a CodeBuild buildspec (version 0.2) for real, in a shell, as CodeBuild does.

All phases run in ONE bash process, in order (install, pre_build, build, post_build), so that `cd` and
exported variables carry from command to command and phase to phase, as buildspec 0.2 specifies. Each
command (a block scalar is one command) stops its phase when it fails. Phase transitions follow
CodeBuild's: a failed install or pre_build skips to the end, a failed build still runs post_build;
`on-failure: CONTINUE` goes on to the next phase anyway; `finally` blocks run whether their phase's
commands failed or not. One difference from CodeBuild: a command that calls `exit` ends the shell, so
its phase fails and nothing after it runs (CodeBuild would still run post_build).
`CODEBUILD_BUILD_SUCCEEDING` is 1 until a phase fails, then 0.
`phases.install.runtime-versions` selects a runtime as CodeBuild's standard images do; the local runner
supports `python` only and checks that the build host's `python3` is that version (CodeBuild fails the
install phase on a version its image lacks), so a wheelhouse the build makes matches the pinned Python.
After the phases the variables named in `env.exported-variables` are read back from the shell, and the
files the `artifacts` section names are zipped. Environment precedence is CodeBuild's: the buildspec's
`env.variables` < the project's variables < the action's (or start-build's) variables.

Not supported (an error, never silently ignored): `env.parameter-store`, `env.secrets-manager`,
secondary artifacts, reports and batch builds.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.pipeline.artifacts import zip_tree

PHASES = ("install", "pre_build", "build", "post_build")
_UNSUPPORTED_ENV = ("parameter-store", "secrets-manager")
_UNSUPPORTED_TOP = ("reports", "batch")


class BuildspecError(ValueError):
    """A buildspec the runner cannot run (malformed, or asking for something unsupported)."""


@dataclass(frozen=True)
class Phase:
    name: str
    commands: tuple[str, ...] = ()
    finally_commands: tuple[str, ...] = ()
    on_failure: str = "ABORT"
    runtime_versions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ArtifactSpec:
    files: tuple[str, ...]
    base_directory: str = "."
    discard_paths: bool = False


@dataclass(frozen=True)
class Buildspec:
    phases: tuple[Phase, ...]
    variables: Mapping[str, str] = field(default_factory=dict)
    exported_variables: tuple[str, ...] = ()
    artifacts: ArtifactSpec | None = None
    shell: str = "bash"
    cache_paths: tuple[str, ...] = ()  # `cache.paths`: what a LOCAL_CUSTOM_CACHE keeps between builds


def parse_buildspec(text: str) -> Buildspec:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BuildspecError(f"the buildspec is not valid YAML: {error}") from error
    if not isinstance(document, dict):
        raise BuildspecError("the buildspec must be a mapping")
    if str(document.get("version")) != "0.2":
        raise BuildspecError(f"only buildspec version 0.2 is supported, got {document.get('version')!r}")
    for key in _UNSUPPORTED_TOP:
        if key in document:
            raise BuildspecError(f"buildspec '{key}' is not supported by the local runner")
    env = document.get("env") or {}
    for key in _UNSUPPORTED_ENV:
        if key in env:
            raise BuildspecError(f"buildspec 'env.{key}' is not supported by the local runner")
    shell = str(env.get("shell", "bash"))
    if shell not in ("bash", "sh"):
        raise BuildspecError(f"buildspec env.shell {shell!r}: only bash and sh are supported")
    raw_phases = document.get("phases") or {}
    unknown = set(raw_phases) - set(PHASES)
    if unknown:
        raise BuildspecError(f"unknown buildspec phases {sorted(unknown)}")
    phases = tuple(_phase(name, raw_phases[name]) for name in PHASES if name in raw_phases)
    return Buildspec(
        phases=phases,
        variables={str(k): str(v) for k, v in (env.get("variables") or {}).items()},
        exported_variables=tuple(str(v) for v in env.get("exported-variables") or []),
        artifacts=_artifacts(document.get("artifacts")),
        shell=shell,
        cache_paths=_cache_paths(document.get("cache")),
    )


def _cache_paths(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not isinstance(raw.get("paths", []), list):
        raise BuildspecError("cache must be a mapping with a list of paths")
    return tuple(str(path) for path in raw.get("paths") or [])


def _phase(name: str, raw: Any) -> Phase:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise BuildspecError(f"phase {name} must be a mapping")
    on_failure = str(raw.get("on-failure", "ABORT"))
    if on_failure not in ("ABORT", "CONTINUE"):
        raise BuildspecError(f"phase {name}: on-failure must be ABORT or CONTINUE, got {on_failure!r}")
    finally_block = raw.get("finally") or []
    if isinstance(finally_block, dict):  # `finally: {commands: [...]}` is also seen in the wild
        finally_block = finally_block.get("commands") or []
    return Phase(
        name,
        tuple(str(c) for c in raw.get("commands") or []),
        tuple(str(c) for c in finally_block),
        on_failure,
        _runtime_versions(name, raw.get("runtime-versions")),
    )


_RUNTIME_VERSION = re.compile(r"^[0-9]+\.[0-9]+$")


def _runtime_versions(phase: str, raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if phase != "install":
        raise BuildspecError(f"phase {phase}: runtime-versions belongs to the install phase only")
    if not isinstance(raw, dict):
        raise BuildspecError("install.runtime-versions must be a mapping of runtime to version")
    versions = []
    for runtime, version in raw.items():
        if runtime != "python":
            raise BuildspecError(f"runtime-versions {runtime!r} is not supported by the local runner")
        if not _RUNTIME_VERSION.match(str(version)):
            raise BuildspecError(f"runtime-versions python {version!r}: the local runner takes MAJOR.MINOR")
        versions.append((str(runtime), str(version)))
    return tuple(versions)


def _artifacts(raw: Any) -> ArtifactSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BuildspecError("artifacts must be a mapping")
    if "secondary-artifacts" in raw:
        raise BuildspecError("secondary artifacts are not supported by the local runner")
    files = raw.get("files") or []
    if isinstance(files, str):
        files = [files]
    if not files:
        raise BuildspecError("artifacts needs 'files'")
    return ArtifactSpec(
        tuple(str(f) for f in files),
        str(raw.get("base-directory", ".")),
        str(raw.get("discard-paths", "no")).lower() in ("yes", "true"),
    )


@dataclass(frozen=True)
class PhaseOutcome:
    name: str
    status: str  # SUCCEEDED, FAILED (or absent: the phase did not run)
    exit_code: int
    duration_s: float


@dataclass(frozen=True)
class BuildOutcome:
    succeeded: bool
    phases: tuple[PhaseOutcome, ...]
    exported: Mapping[str, str]
    log_path: Path
    reason: str | None = None

    def failed_phase(self) -> PhaseOutcome | None:
        return next((p for p in self.phases if p.status == "FAILED"), None)


def _script(spec: Buildspec, status_file: Path, exports_file: Path) -> str:
    """The one shell program that runs every phase (see the module docstring for its semantics)."""
    lines = [
        "__mlops_status=" + shlex.quote(str(status_file)),
        "__mlops_exports=" + shlex.quote(str(exports_file)),
        "export CODEBUILD_BUILD_SUCCEEDING=1",
        "__mlops_skip=0",
        "__mlops_now() { date +%s.%N; }",
        # A command that runs `exit` ends the one shell: record its phase as failed on the way out.
        "__mlops_current=''",
        "__mlops_on_exit() {",
        "  __mlops_code=$?",
        '  if [ -n "$__mlops_current" ]; then',
        '    echo "$__mlops_current FAILED $__mlops_code $__mlops_start $(__mlops_now)" >> "$__mlops_status"',
        "  fi",
        "}",
        "trap __mlops_on_exit EXIT",
    ]
    for phase in spec.phases:
        lines.append(f"__mlops_phase_{phase.name}() {{")
        lines.append("  :")
        for runtime, version in phase.runtime_versions:
            wanted = tuple(int(part) for part in version.split("."))
            check = f"import sys; raise SystemExit(sys.version_info[:2] != {wanted})"
            selecting = f"[Container] Selecting {runtime} runtime version {version}"
            lines.append(f"  echo {shlex.quote(selecting)}")
            lines.append(
                f"  python3 -c {shlex.quote(check)} || {{ echo "
                f"{shlex.quote(f'Unknown runtime version named {version} of {runtime}: python3 is not it')}; "
                "return 1; }"
            )
        for command in phase.commands:
            lines.append(f"  echo {shlex.quote('[Container] Running command ' + command.strip())}")
            lines.append("  {")
            lines.append(command)
            lines.append("  } || return $?")
        lines.append("}")
        lines.append(f"__mlops_finally_{phase.name}() {{")
        lines.append("  :")
        for command in phase.finally_commands:
            lines.append("  {")
            lines.append(command)
            lines.append("  } || return $?")
        lines.append("}")
    for phase in spec.phases:
        # build may run after a failed pre_build only when on-failure says CONTINUE (then skip is 0).
        guard = "[ $__mlops_skip -eq 0 ]"
        if phase.name == "post_build":
            guard = "[ $__mlops_skip -eq 0 ] || [ $__mlops_skip -eq 2 ]"
        lines += [
            f"if {guard}; then",
            f"  echo '[Container] Entering phase {phase.name.upper()}'",
            "  __mlops_start=$(__mlops_now)",
            f"  __mlops_current={phase.name}",
            f"  __mlops_phase_{phase.name}; __mlops_rc=$?",
            f"  __mlops_finally_{phase.name}; __mlops_frc=$?",
            "  [ $__mlops_rc -eq 0 ] && __mlops_rc=$__mlops_frc",
            "  __mlops_current=''",
            "  if [ $__mlops_rc -eq 0 ]; then __mlops_result=SUCCEEDED; else __mlops_result=FAILED; fi",
            f'  echo "{phase.name} $__mlops_result $__mlops_rc $__mlops_start $(__mlops_now)" \\',
            '    >> "$__mlops_status"',
            f'  echo "[Container] Phase complete: {phase.name.upper()} State: $__mlops_result"',
            "  if [ $__mlops_rc -ne 0 ]; then",
            "    export CODEBUILD_BUILD_SUCCEEDING=0",
        ]
        if phase.on_failure == "ABORT":
            # a failed build phase still runs post_build (skip=2); install/pre_build skip everything.
            skip = "2" if phase.name == "build" else "1"
            lines.append(f"    __mlops_skip={skip}")
        lines += ["  fi", "fi"]
    for name in spec.exported_variables:
        lines.append(
            f'if [ -n "${{{name}+x}}" ]; then printf "%s\\0%s\\0" {shlex.quote(name)} "${{{name}}}" '
            '>> "$__mlops_exports"; fi'
        )
    lines.append('[ "$CODEBUILD_BUILD_SUCCEEDING" = 1 ]')
    return "\n".join(lines) + "\n"


def run_buildspec(
    spec: Buildspec,
    source_dir: Path,
    env: Mapping[str, str],
    log_path: Path,
    on_line: Callable[[str], None] | None = None,
    timeout_s: float | None = None,
) -> BuildOutcome:
    """Runs `spec` in `source_dir` with `env` (already merged by precedence); logs to `log_path`."""
    scratch = log_path.parent
    scratch.mkdir(parents=True, exist_ok=True)
    status_file, exports_file = scratch / "phases.txt", scratch / "exports.bin"
    script_file = scratch / "buildspec.sh"
    for stale in (status_file, exports_file):
        stale.unlink(missing_ok=True)
    script_file.write_text(_script(spec, status_file, exports_file), encoding="utf-8")
    timed_out = threading.Event()
    with (
        log_path.open("w", encoding="utf-8") as log,
        subprocess.Popen(
            [spec.shell, str(script_file)],
            cwd=source_dir,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: a timeout stops every child too
        ) as process,
    ):

        def stop() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, stop) if timeout_s else None
        if timer is not None:
            timer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                log.flush()
                if on_line is not None:
                    on_line(line.rstrip("\n"))
            code = process.wait()
        finally:
            if timer is not None:
                timer.cancel()
    phases = _read_phases(status_file)
    exported = _read_exports(exports_file)
    if timed_out.is_set():
        return BuildOutcome(False, phases, exported, log_path, f"the build timed out after {timeout_s:.0f} s")
    failed = next((p for p in phases if p.status == "FAILED"), None)
    if failed is not None:
        reason = (
            f"Error while executing command in phase {failed.name.upper()}: exit status {failed.exit_code}"
        )
        return BuildOutcome(False, phases, exported, log_path, reason)
    if code != 0:
        return BuildOutcome(False, phases, exported, log_path, f"the build shell exited with status {code}")
    return BuildOutcome(True, phases, exported, log_path)


def _read_phases(path: Path) -> tuple[PhaseOutcome, ...]:
    if not path.is_file():
        return ()
    outcomes = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name, status, code, start, end = line.split()
        outcomes.append(PhaseOutcome(name, status, int(code), float(end) - float(start)))
    return tuple(outcomes)


def _read_exports(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    parts = path.read_bytes().decode("utf-8", errors="replace").split("\0")
    return dict(zip(parts[0:-1:2], parts[1::2], strict=False))


def collect_artifacts(spec: ArtifactSpec, source_dir: Path, destination: Path) -> Path:
    """Zips the files `spec` names (globs relative to base-directory) into `destination`."""
    base = (source_dir / spec.base_directory).resolve()
    if not base.is_dir():
        raise BuildspecError(f"artifacts base-directory {spec.base_directory!r} does not exist")
    chosen: set[Path] = set()
    for pattern in spec.files:
        matches = (
            [p for p in base.glob(pattern) if p.is_file()]
            if pattern != "**/*"
            else [p for p in base.rglob("*") if p.is_file()]
        )
        chosen.update(matches)
    if not chosen:
        raise BuildspecError(f"no matching artifact paths found for {list(spec.files)}")
    if not spec.discard_paths:
        return zip_tree(base, destination, chosen)
    flat = destination.parent / (destination.stem + "-flat")
    flat.mkdir(parents=True, exist_ok=True)
    for path in chosen:
        (flat / path.name).write_bytes(path.read_bytes())
    return zip_tree(flat, destination)
