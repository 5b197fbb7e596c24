"""Training hyperparameters: parsed from `hyperparameters.json` (values arrive as strings) and validated.

Keys (all optional):

- `model_preset`: `tiny` (CPU checks) or `125m` (EleutherAI/gpt-neo-125M's shape). Default `tiny`.
- `epochs`: passes over the training data (1-1000). Default 8.
- `max_steps`: stop after this many optimizer steps; 0 means no cap (0-10,000,000). Default 0.
- `batch_size`: examples per step (1-4096). Default 16.
- `learning_rate`: AdamW's peak rate (0 < lr <= 1). Default per preset: 2e-3 for tiny, 5e-5 for 125m.
- `max_length`: tokens per example, prompt and completion (16-2048). Default 64.
- `seed`: seeds data order, the split and the weights (0-2**32-1). Default 42.
- `eval_fraction`: share of the training data held out when there is no `validation` channel
  (0 < f <= 0.5). Default 0.1.

Unknown keys are a user error; keys beginning with `sagemaker_` (added by SageMaker's tools) are ignored.
SageMaker's SDK sometimes JSON-encodes values (`"\"tiny\""`); such quotes are removed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from byoc.errors import UserError

PRESETS = ("tiny", "125m")
DEFAULT_LEARNING_RATES = {"tiny": 2e-3, "125m": 5e-5}
IGNORED_PREFIX = "sagemaker_"

T = TypeVar("T", int, float)


@dataclass(frozen=True)
class Hyperparameters:
    model_preset: str = "tiny"
    epochs: int = 8
    max_steps: int = 0
    batch_size: int = 16
    learning_rate: float = DEFAULT_LEARNING_RATES["tiny"]
    max_length: int = 64
    seed: int = 42
    eval_fraction: float = 0.1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


KNOWN_KEYS = frozenset(field.name for field in fields(Hyperparameters))


def _text(key: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UserError(f"hyperparameter {key} must be a string, got {type(value).__name__} {value!r}")
    text = str(value).strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def _number(
    key: str, value: object, kind: Callable[[str], T], low: T, high: T, *, low_open: bool = False
) -> T:
    text = _text(key, value)
    try:
        number = kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise UserError(f"hyperparameter {key} must be {expected}, got {text!r}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise UserError(f"hyperparameter {key} must be finite, got {text!r}")
    too_low = number <= low if low_open else number < low
    if too_low or number > high:
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise UserError(f"hyperparameter {key} must be in {interval}, got {text!r}")
    return number


def parse_hyperparameters(raw: Mapping[str, object]) -> Hyperparameters:
    """Validates the raw mapping of `hyperparameters.json` into typed values with defaults."""
    given = {key: value for key, value in raw.items() if not key.startswith(IGNORED_PREFIX)}
    unknown = sorted(set(given) - KNOWN_KEYS)
    if unknown:
        raise UserError(
            f"unknown hyperparameters: {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_KEYS))}"
        )
    defaults = Hyperparameters()

    preset = (
        _text("model_preset", given["model_preset"]).lower()
        if "model_preset" in given
        else defaults.model_preset
    )
    if preset not in PRESETS:
        raise UserError(f"hyperparameter model_preset must be one of {', '.join(PRESETS)}, got {preset!r}")

    def integer(key: str, default: int, low: int, high: int) -> int:
        return _number(key, given[key], int, low, high) if key in given else default

    def real(key: str, default: float, high: float) -> float:
        return _number(key, given[key], float, 0.0, high, low_open=True) if key in given else default

    return Hyperparameters(
        model_preset=preset,
        epochs=integer("epochs", defaults.epochs, 1, 1000),
        max_steps=integer("max_steps", defaults.max_steps, 0, 10_000_000),
        batch_size=integer("batch_size", defaults.batch_size, 1, 4096),
        learning_rate=real("learning_rate", DEFAULT_LEARNING_RATES[preset], 1.0),
        max_length=integer("max_length", defaults.max_length, 16, 2048),
        seed=integer("seed", defaults.seed, 0, 2**32 - 1),
        eval_fraction=real("eval_fraction", defaults.eval_fraction, 0.5),
    )
