"""The project's real data: CLINC150 (CC BY 3.0, see data/clinc150/NOTICE.md) and subsets of it.

The default subset, `clinc10`, takes the first intent of each of the data set's 10 domains, so that a
small model sees ten unrelated intents. Files are written in the training container's format: CSV with
the header `Query,Intent`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLINC150_DIR = Path(__file__).resolve().parent.parent / "data" / "clinc150"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    intent: str


def read_csv(path: Path) -> list[LabelledQuery]:
    """Reads a `Query,Intent` CSV file (the header is required)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"Query", "Intent"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected a CSV header with Query and Intent, got {reader.fieldnames}")
        return [LabelledQuery(row["Query"], row["Intent"]) for row in reader]


def write_csv(path: Path, examples: Iterable[LabelledQuery]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Query", "Intent"])
        for example in examples:
            writer.writerow([example.query, example.intent])
    return path


def clinc10_intents(clinc_dir: Path = CLINC150_DIR) -> list[str]:
    """The first intent of each domain: ten intents from ten unrelated domains."""
    domains: dict[str, list[str]] = json.loads((clinc_dir / "domains.json").read_text(encoding="utf-8"))
    return [intents[0] for intents in domains.values()]


def clinc150_split(
    split: str, intents: Sequence[str] | None = None, clinc_dir: Path = CLINC150_DIR
) -> list[LabelledQuery]:
    """One split of CLINC150 (`train`, `val` or `test`), restricted to `intents` when given."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    examples = read_csv(clinc_dir / f"{split}.csv")
    if intents is None:
        return examples
    wanted = set(intents)
    return [example for example in examples if example.intent in wanted]
