"""The public surface of harness.pipeline and harness.report: every exported name exists, and nothing
public is left out of `__all__`."""

from __future__ import annotations

import types

import pytest

import harness.pipeline
import harness.report


@pytest.mark.parametrize("package", [harness.pipeline, harness.report])
def test_exported_members(package: types.ModuleType) -> None:
    exported = set(package.__all__)
    public = {
        name
        for name in vars(package)
        if not name.startswith("_") and not isinstance(vars(package)[name], types.ModuleType)
    }
    assert exported == public
    assert all(getattr(package, name) is not None for name in exported)
