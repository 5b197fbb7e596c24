"""The local Lambda runtime: handlers run in their own processes (see `runtime` for the contract)."""

from harness.lambda_runtime.runtime import (
    FunctionSpec,
    Invocation,
    LambdaRuntime,
    LambdaRuntimeError,
    zip_sources,
)

__all__ = [
    "FunctionSpec",
    "Invocation",
    "LambdaRuntime",
    "LambdaRuntimeError",
    "zip_sources",
]
