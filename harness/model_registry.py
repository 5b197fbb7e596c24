"""The model registry table (DynamoDB), read as plain JSON: one version's item, every version, and the
model name the register-model Lambda writes."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer


def registry_item(dynamodb: Any, table: str, model_name: str, version: str) -> dict[str, Any] | None:
    """The registry table's item for (`model_name`, `version`), as plain JSON; None when absent."""
    answer = dynamodb.get_item(
        TableName=table,
        Key={"ModelName": {"S": model_name}, "Version": {"S": version}},
        ConsistentRead=True,
    )
    return plain_item(answer["Item"]) if "Item" in answer else None


def registry_versions(dynamodb: Any, table: str) -> list[str]:
    """Every version in the registry table (every page of the scan), sorted."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return sorted(str(item["Version"]["S"]) for page in pages for item in page.get("Items", []))


def registered_model_name(lambdas: Any, register_function: str) -> str:
    """The ModelName the register-model Lambda writes: its MODEL_NAME variable (platform.yaml)."""
    function = lambdas.get_function_configuration(FunctionName=register_function)
    return str(function["Environment"]["Variables"]["MODEL_NAME"])


def plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item without its type descriptors (numbers as int or float)."""
    deserializer = TypeDeserializer()
    return {key: _plain(deserializer.deserialize(value)) for key, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(item) for item in value]
    return value
