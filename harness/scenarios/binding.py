"""Where the runner finds the harness: a factory named explicitly as `module:attribute`.

The spec comes from, in order: the caller (`--harness` on the command line), the environment variable
`MLOPS_SCENARIO_HARNESS`, then `DEFAULT_HARNESS` below, which names the project's own adapter over the
real harness once it is wired. Naming the factory as a string (rather than passing an object) keeps
parallel runs simple: each worker process imports it by name.
"""

from __future__ import annotations

import importlib
import os
from typing import Final

from harness.scenarios.interface import HarnessFactory

HARNESS_ENV: Final = "MLOPS_SCENARIO_HARNESS"
# The project's adapter over the real harness (harness/scenarios/adapter.py), a `HarnessFactory`.
DEFAULT_HARNESS: str | None = "harness.scenarios.adapter:open_harness"


class HarnessNotWired(RuntimeError):
    """No harness factory is named, or the named one cannot be imported."""


def harness_spec(explicit: str | None = None) -> str:
    spec = explicit or os.environ.get(HARNESS_ENV) or DEFAULT_HARNESS
    if not spec:
        raise HarnessNotWired(
            "no harness is wired to the scenario runner: name a factory as MODULE:FACTORY with --harness "
            f"(pytest: --scenario-harness) or {HARNESS_ENV}"
        )
    return spec


def resolve_harness_factory(explicit: str | None = None) -> HarnessFactory:
    """Imports the factory named by `explicit`, the environment, or the default (in that order)."""
    spec = harness_spec(explicit)
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise HarnessNotWired(f"a harness is named as MODULE:FACTORY, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise HarnessNotWired(f"cannot import the harness module {module_name!r}: {error}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise HarnessNotWired(f"{spec!r} does not name a callable harness factory")
    return factory  # type: ignore[no-any-return]
