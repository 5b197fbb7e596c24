"""Collects this folder's scenario files as test items: `pytest scenarios/` replays them.

The hooks are imported (not listed in `pytest_plugins`, which pytest refuses in a conftest below the
root), so that this file also works when pytest reaches it from a parent folder.
"""

from harness.scenarios.pytest_plugin import pytest_addoption, pytest_collect_file

__all__ = ["pytest_addoption", "pytest_collect_file"]
