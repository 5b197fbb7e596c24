"""Reading the channels: every CSV, the split, the fingerprint, and bad data as user errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from byoc.data import Example, load_dataset, stratified_split
from byoc.errors import UserError

HEADER = "Query,Intent\n"


def write(directory: Path, name: str, content: str | bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def rows(intent: str, count: int) -> str:
    return "".join(f"{intent} question number {i},{intent}\n" for i in range(count))


def test_reads_every_csv_of_the_channel(tmp_path: Path) -> None:
    training = tmp_path / "training"
    write(training, "a.csv", HEADER + rows("greet", 10))
    write(training / "more", "b.CSV", "\ufeff" + HEADER + rows("book", 10))  # a BOM, a subfolder
    write(training, "notes.txt", "ignored")
    dataset = load_dataset(training, None, eval_fraction=0.2, seed=1)
    assert dataset.labels == ("book", "greet")
    assert len(dataset.train) + len(dataset.eval) == 20
    assert [f.name for f in dataset.files] == ["a.csv", "more/b.CSV"]
    assert dataset.eval_source == "split"


def test_validation_channel_is_used_when_present(tmp_path: Path) -> None:
    write(tmp_path / "training", "t.csv", HEADER + rows("greet", 3) + rows("book", 3))
    write(tmp_path / "validation", "v.csv", HEADER + '"hello, there",greet\n')
    dataset = load_dataset(tmp_path / "training", tmp_path / "validation", 0.1, 0)
    assert dataset.eval == (Example("hello, there", "greet"),)
    assert len(dataset.train) == 6 and dataset.eval_source == "validation"


def test_split_is_seeded_and_stratified() -> None:
    examples = [Example(f"q{i}", f"intent{i % 3}") for i in range(60)]
    train, held_out = stratified_split(examples, 0.25, seed=3)
    assert (train, held_out) == stratified_split(examples, 0.25, seed=3)
    assert stratified_split(examples, 0.25, seed=4)[1] != held_out
    assert sorted(e.intent for e in held_out) == ["intent0"] * 5 + ["intent1"] * 5 + ["intent2"] * 5


def test_fingerprint_follows_the_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "training", "t.csv", HEADER + rows("greet", 5) + rows("book", 5))
    first = load_dataset(tmp_path / "training", None, 0.2, 0).fingerprint
    assert load_dataset(tmp_path / "training", None, 0.2, 0).fingerprint == first
    path.write_text(HEADER + rows("greet", 5) + rows("book", 6))
    assert load_dataset(tmp_path / "training", None, 0.2, 0).fingerprint != first


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b"Query,Label\nhi,greet\n", "lacks column"),
        (b"Query,Intent\n", "has a header but no rows"),
        (b"Query,Intent\nhi,\n", "line 2: Query and Intent must not be empty"),
        (b"Query,Intent\nh\xff\xfei,greet\n", "is not UTF-8: undecodable byte at offset 14"),
        (b"Query,Intent\nhi,greet\nhello,greet\n", "a single intent"),
    ],
)
def test_bad_data_is_a_user_error(tmp_path: Path, content: bytes, message: str) -> None:
    write(tmp_path / "training", "bad.csv", content)
    with pytest.raises(UserError, match=message):
        load_dataset(tmp_path / "training", None, 0.1, 0)


def test_missing_or_empty_channel_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="channel 'training' is missing"):
        load_dataset(tmp_path / "training", None, 0.1, 0)
    (tmp_path / "training").mkdir()
    with pytest.raises(UserError, match=r"has no \.csv files"):
        load_dataset(tmp_path / "training", None, 0.1, 0)


def test_too_little_data_to_hold_out(tmp_path: Path) -> None:
    write(tmp_path / "training", "t.csv", HEADER + rows("greet", 1) + rows("book", 1))
    with pytest.raises(UserError, match="too few examples to hold out"):
        load_dataset(tmp_path / "training", None, 0.1, 0)
