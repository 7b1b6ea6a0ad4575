"""BEIR data sets on disk: `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv` in one folder.

Only the split's judged queries are kept in memory; the corpus is streamed from disk each
time it is iterated, so a large corpus is never held (or read) twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.errors import InputError
from kb.eval.metrics import Qrels
from kb.eval.trec import read_qrels


@dataclass(frozen=True)
class BeirDoc:
    """One corpus entry."""

    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class BeirData:
    """A split of a BEIR data set: its judged queries and qrels, and a path to stream the corpus."""

    folder: Path
    split: str
    queries: dict[str, str]  # only queries with a relevant doc in this split's qrels
    qrels: Qrels  # every judgment of the split, grades <= 0 included

    def corpus(self) -> Iterator[BeirDoc]:
        """Stream corpus.jsonl one document at a time; each call reads the file afresh."""
        return iter_corpus(self.folder / "corpus.jsonl")


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(obj, dict) or "_id" not in obj:
                raise InputError(f"{path}:{number}: expected a JSON object with an '_id'")
            yield number, obj


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return "" if value is None else str(value)  # BEIR leaves some titles null or missing


def iter_corpus(path: Path) -> Iterator[BeirDoc]:
    """Yield the documents of a BEIR corpus.jsonl in file order."""
    try:
        for _, obj in _jsonl(path):
            yield BeirDoc(str(obj["_id"]), _text(obj, "title"), _text(obj, "text"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


def _read_queries(path: Path, wanted: set[str]) -> dict[str, str]:
    try:
        return {str(obj["_id"]): _text(obj, "text") for _, obj in _jsonl(path) if str(obj["_id"]) in wanted}
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


def _require(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise InputError(f"{folder}: no {name}")
    return path


def _splits(folder: Path) -> str:
    names = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
    return f" (available splits: {', '.join(names)})" if names else " (no qrels/*.tsv at all)"


def load_beir(folder: Path, split: str = "test") -> BeirData:
    """Load the queries and qrels of one split of a BEIR folder; the corpus stays on disk."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    _require(folder, "corpus.jsonl")
    queries_path = _require(folder, "queries.jsonl")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise InputError(f"{folder}: no qrels/{split}.tsv{_splits(folder)}")
    qrels = read_qrels(qrels_path)
    judged = {qid for qid, docs in qrels.items() if any(rel > 0 for rel in docs.values())}
    if not judged:
        raise InputError(f"{qrels_path}: no query has a relevant document")
    queries = _read_queries(queries_path, judged)
    missing = sorted(judged - queries.keys())
    if missing:
        examples = ", ".join(missing[:3])
        raise InputError(f"{queries_path}: {len(missing)} judged queries are missing, e.g. {examples}")
    return BeirData(folder=folder, split=split, queries=queries, qrels=qrels)
