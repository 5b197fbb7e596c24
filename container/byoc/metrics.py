"""Held-out metrics and how they are printed for SageMaker's MetricDefinitions (`name=value;`)."""

from __future__ import annotations

from collections.abc import Sequence

from byoc.errors import UserError


def metric_line(**values: float | int) -> str:
    return " ".join(
        f"{name}={value:.6g};" if isinstance(value, float) else f"{name}={value};"
        for name, value in values.items()
    )


def emit_metrics(**values: float | int) -> None:
    print(metric_line(**values), flush=True)


def score(truth: Sequence[str], predicted: Sequence[str | None]) -> dict[str, float | int]:
    """Accuracy, macro-F1 (over every intent seen as truth or prediction) and the unknown rate."""
    n = len(truth)
    if n == 0:
        raise UserError("there are no held-out examples to evaluate")
    correct = sum(t == p for t, p in zip(truth, predicted, strict=True))
    classes = set(truth) | {p for p in predicted if p is not None}
    f1s = []
    for label in sorted(classes):
        tp = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {
        "accuracy": correct / n,
        "macro_f1": sum(f1s) / len(f1s),
        "unknown_rate": sum(p is None for p in predicted) / n,
        "eval_examples": n,
    }
