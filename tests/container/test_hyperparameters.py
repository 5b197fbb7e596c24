"""Hyperparameters arrive as strings: parsing, defaults, bounds and unknown keys."""

from __future__ import annotations

import pytest
from byoc.errors import UserError
from byoc.hyperparameters import DEFAULT_LEARNING_RATES, Hyperparameters, parse_hyperparameters
from hypothesis import given
from hypothesis import strategies as st


def test_defaults_are_the_tiny_preset_recipe() -> None:
    hp = parse_hyperparameters({})
    assert hp == Hyperparameters()
    assert (hp.model_preset, hp.batch_size, hp.epochs, hp.learning_rate) == ("tiny", 16, 8, 2e-3)


def test_strings_are_parsed_into_types() -> None:
    hp = parse_hyperparameters(
        {
            "epochs": "3",
            "max_steps": "100",
            "batch_size": "4",
            "learning_rate": "1e-4",
            "max_length": "96",
            "seed": "7",
            "eval_fraction": "0.25",
            "model_preset": "TINY",
        }
    )
    assert hp == Hyperparameters("tiny", 3, 100, 4, 1e-4, 96, 7, 0.25)


def test_json_encoded_values_from_the_sagemaker_sdk_are_unquoted() -> None:
    assert parse_hyperparameters({"model_preset": '"125m"', "epochs": '"2"'}).epochs == 2


def test_learning_rate_default_follows_the_preset() -> None:
    assert parse_hyperparameters({"model_preset": "125m"}).learning_rate == DEFAULT_LEARNING_RATES["125m"]
    assert parse_hyperparameters({"model_preset": "125m", "learning_rate": "0.01"}).learning_rate == 0.01


def test_sagemaker_keys_are_ignored_and_unknown_keys_rejected() -> None:
    assert (
        parse_hyperparameters({"sagemaker_program": "train", "sagemaker_region": '"eu-west-1"'})
        == Hyperparameters()
    )
    with pytest.raises(UserError, match="unknown hyperparameters: epoch, lr"):
        parse_hyperparameters({"epoch": "1", "lr": "0.1"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", "0", r"epochs must be in \[1, 1000\]"),
        ("epochs", "2.5", "epochs must be an integer"),
        ("batch_size", "", "batch_size must be an integer"),
        ("learning_rate", "0", r"learning_rate must be in \(0.0, 1.0\]"),
        ("learning_rate", "inf", "learning_rate must be finite"),
        ("learning_rate", "fast", "learning_rate must be a number"),
        ("eval_fraction", "0.9", "eval_fraction must be in"),
        ("max_length", "8", "max_length must be in"),
        ("seed", "-1", "seed must be in"),
        ("model_preset", "1.3b", "model_preset must be one of tiny, 125m"),
        ("epochs", True, "epochs must be a string"),
        ("epochs", ["1"], "epochs must be a string"),
    ],
)
def test_bad_values_are_user_errors(key: str, value: object, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_hyperparameters({key: value})


@given(epochs=st.integers(1, 1000), batch=st.integers(1, 4096), seed=st.integers(0, 2**32 - 1))
def test_any_valid_integer_string_round_trips(epochs: int, batch: int, seed: int) -> None:
    hp = parse_hyperparameters({"epochs": f" {epochs} ", "batch_size": str(batch), "seed": str(seed)})
    assert (hp.epochs, hp.batch_size, hp.seed) == (epochs, batch, seed)


@given(rate=st.floats(min_value=1e-12, max_value=1.0))
def test_any_valid_learning_rate_round_trips(rate: float) -> None:
    assert parse_hyperparameters({"learning_rate": repr(rate)}).learning_rate == rate


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=4))
def test_arbitrary_input_parses_or_is_a_user_error(raw: dict[str, str]) -> None:
    try:
        hp = parse_hyperparameters(raw)
    except UserError:
        return
    assert isinstance(hp, Hyperparameters)
