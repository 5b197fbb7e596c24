"""What a predictor answers for one query: the one type every backend returns (no torch, no ONNX)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prediction:
    """One answer: the intent when the generated text is a known label (else None), and that text."""

    query: str
    intent: str | None
    generated_text: str
