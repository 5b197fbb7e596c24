"""The scenario schema's hyperparameter ranges are the container's own (byoc/hyperparameters.py): at
each bound the schema declares, and just past it, the schema accepts a value exactly when the
container's parser does. The bounds are read from the schema, so a range changed on one side only
fails here."""

from __future__ import annotations

import math
import typing

import pytest
from annotated_types import Ge, Gt, Le, Lt
from byoc.errors import UserError
from byoc.hyperparameters import KNOWN_KEYS, parse_hyperparameters
from pydantic import ValidationError

from harness.scenarios.schema import HyperparameterValues

NUMERIC = [name for name in HyperparameterValues.model_fields if name != "model_preset"]


def _bounds(name: str) -> tuple[type, list[object]]:
    """The field's number type and its bounds' metadata (from `Annotated[int, Field(ge=..)] | None`)."""
    annotation = HyperparameterValues.model_fields[name].annotation
    [inner] = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    kind, *metadata = typing.get_args(inner)
    constraints = [item for field_info in metadata for item in getattr(field_info, "metadata", [field_info])]
    return kind, constraints


def _probes(kind: type, constraints: list[object]) -> list[float]:
    probes: list[float] = []
    for constraint in constraints:
        bound_of = {Ge: "ge", Le: "le", Gt: "gt", Lt: "lt"}
        attribute = bound_of.get(type(constraint))
        if attribute is not None:
            bound = float(getattr(constraint, attribute))
            step = 1.0 if kind is int else max(abs(bound) * 1e-9, 1e-12)
            probes += [bound - step, bound, bound + step]
    return probes


def _schema_accepts(name: str, value: object) -> bool:
    try:
        HyperparameterValues.model_validate({name: value})
    except ValidationError:
        return False
    return True


def _container_accepts(name: str, value: object) -> bool:
    try:
        parse_hyperparameters({name: str(value)})
    except UserError:
        return False
    return True


def test_the_schema_knows_the_container_s_keys() -> None:
    assert set(HyperparameterValues.model_fields) == set(KNOWN_KEYS)


@pytest.mark.parametrize("name", NUMERIC)
def test_each_range_is_the_container_s(name: str) -> None:
    kind, constraints = _bounds(name)
    probes = _probes(kind, constraints)
    assert len(probes) >= 6, f"{name}: expected a lower and an upper bound in the schema"
    for probe in probes:
        value: object = int(probe) if kind is int else probe
        if kind is float and not math.isfinite(probe):
            continue
        assert _schema_accepts(name, value) == _container_accepts(name, value), (name, value)


def test_the_presets_are_the_container_s() -> None:
    for preset in ("tiny", "125m", "350m", "huge"):
        assert _schema_accepts("model_preset", preset) == _container_accepts("model_preset", preset), preset
