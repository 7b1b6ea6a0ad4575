"""Finished summaries cached by key, and per-window checkpoints so a killed run resumes mid-file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kb.errors import InputError
from kb.summarize.points import Summary


def gguf_model_id(path: Path) -> str:
    """A name for a GGUF file that changes when the file is replaced (name and size; no hashing of GBs)."""
    return f"{path.name}:{path.stat().st_size}"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Checkpoint:
    """Map results of one file, one JSON line per finished window, so a killed run resumes mid-file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[int, dict]:
        """Finished windows by index; a line torn by a kill is ignored."""
        out: dict[int, dict] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return out
        for line in lines:
            try:
                record = json.loads(line)
                out[int(record["window"])] = record
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def add(self, window: int, record: dict) -> None:
        """Append one finished window, flushed to disk before the next starts."""
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"window": window, **record}, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def clear(self) -> None:
        """Forget the windows once the whole summary is saved."""
        self.path.unlink(missing_ok=True)


class SummaryCache:
    """Finished summaries as one JSON file per key, written atomically (temp file, then rename)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{folder}: cannot create the summary cache ({exc.strerror})") from exc

    def get(self, key: str) -> Summary | None:
        """The cached summary, or None (also for a damaged file)."""
        try:
            return Summary.from_json(json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, summary: Summary) -> None:
        """Store a summary."""
        _atomic_write(self.folder / f"{key}.json", json.dumps(summary.to_json(), ensure_ascii=False))

    def checkpoint(self, key: str) -> Checkpoint:
        """The per-window checkpoint of a summary being built."""
        return Checkpoint(self.folder / f"{key}.partial.jsonl")
