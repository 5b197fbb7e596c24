"""Training data: every CSV of the `training` channel, an optional `validation` channel, else a split.

Files have the header `Query,Intent` (UTF-8, a BOM is allowed; more columns are ignored). Anything a
person must fix (no files, an empty file, a missing column, undecodable bytes, an empty field, fewer
than two intents) is a `UserError` that names the file and line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from byoc.errors import UserError

REQUIRED_COLUMNS = ("Query", "Intent")


@dataclass(frozen=True)
class Example:
    query: str
    intent: str


@dataclass(frozen=True)
class DataFile:
    channel: str
    name: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class Dataset:
    train: tuple[Example, ...]
    eval: tuple[Example, ...]
    labels: tuple[str, ...]
    files: tuple[DataFile, ...]
    eval_source: str  # "validation" channel or "split"

    @property
    def fingerprint(self) -> str:
        """One sha256 over every file's channel, name and content hash (the data's version)."""
        digest = hashlib.sha256()
        for item in sorted(self.files, key=lambda f: (f.channel, f.name)):
            digest.update(f"{item.channel}/{item.name}:{item.sha256}\n".encode())
        return digest.hexdigest()


def _csv_files(directory: Path, channel: str) -> list[Path]:
    if not directory.is_dir():
        raise UserError(f"channel {channel!r} is missing: expected a directory at {directory}")
    files = sorted(path for path in directory.rglob("*") if path.is_file() and path.suffix.lower() == ".csv")
    if not files:
        raise UserError(f"channel {channel!r} has no .csv files in {directory}")
    return files


def read_csv_file(path: Path, channel: str, root: Path) -> tuple[list[Example], DataFile]:
    name = path.relative_to(root).as_posix()
    raw = path.read_bytes()
    where = f"channel {channel!r}, file {name}"
    if not raw.strip():
        raise UserError(f"{where} is empty: expected a header Query,Intent and rows")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"{where} is not UTF-8: undecodable byte at offset {error.start}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise UserError(
            f"{where} lacks column(s) {', '.join(missing)}: the header must have Query,Intent, got {header}"
        )
    examples = []
    for row in reader:
        query = (row.get("Query") or "").strip()
        intent = (row.get("Intent") or "").strip()
        if not query or not intent:
            raise UserError(f"{where}, line {reader.line_num}: Query and Intent must not be empty")
        examples.append(Example(query=query, intent=intent))
    if not examples:
        raise UserError(f"{where} has a header but no rows")
    return examples, DataFile(channel, name, hashlib.sha256(raw).hexdigest(), len(examples))


def read_channel(directory: Path, channel: str) -> tuple[list[Example], list[DataFile]]:
    """All examples of all CSV files of one channel, files in name order."""
    examples: list[Example] = []
    files: list[DataFile] = []
    for path in _csv_files(directory, channel):
        rows, info = read_csv_file(path, channel, directory)
        examples.extend(rows)
        files.append(info)
    return examples, files


def stratified_split(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Holds out about `fraction` of each intent (seeded); every intent keeps at least one training row."""
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    rng = random.Random(seed)
    train: list[Example] = []
    held_out: list[Example] = []
    for intent in sorted(by_intent):
        group = list(by_intent[intent])
        rng.shuffle(group)
        count = min(round(len(group) * fraction), len(group) - 1)
        held_out.extend(group[:count])
        train.extend(group[count:])
    if not held_out:
        raise UserError(
            f"too few examples to hold out {fraction:.0%} for evaluation ({len(examples)} rows): "
            "add rows, raise eval_fraction, or give a validation channel"
        )
    return train, held_out


def load_dataset(training_dir: Path, validation_dir: Path | None, eval_fraction: float, seed: int) -> Dataset:
    """Reads the channels; without a validation channel, splits the training data (seeded)."""
    train, files = read_channel(training_dir, "training")
    labels = tuple(sorted({example.intent for example in train}))
    if len(labels) < 2:
        raise UserError(f"the training data has a single intent ({labels[0]!r}): at least two are needed")
    if validation_dir is not None and validation_dir.exists():
        held_out, validation_files = read_channel(validation_dir, "validation")
        files.extend(validation_files)
        source = "validation"
    else:
        train, held_out = stratified_split(train, eval_fraction, seed)
        source = "split"
    return Dataset(tuple(train), tuple(held_out), labels, tuple(files), source)
