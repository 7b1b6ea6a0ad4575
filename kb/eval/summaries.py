"""Summary evaluation: does each document's summary state its key facts, and how many of its
points did the model write in its own words (and kb verify), rather than kb quote?"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kb.errors import InputError
from kb.eval.qa import contains_gold
from kb.summarize.points import Summary


@dataclass(frozen=True)
class KeyFacts:
    """The facts a summary of one file must state; each fact is a tuple of accepted wordings."""

    file: str
    facts: tuple[tuple[str, ...], ...]


def load_key_facts(path: Path) -> list[KeyFacts]:
    """JSONL rows `{"file": "policy.docx", "facts": ["14 characters", ["1 hour", "one hour"], ...]}`."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            facts = tuple((f,) if isinstance(f, str) else tuple(str(x) for x in f) for f in obj["facts"])
            out.append(KeyFacts(Path(str(obj["file"])).name, facts))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{n}: expected JSON with 'file' and 'facts' ({exc})") from exc
    return out


def score_summary(summary: Summary, key: KeyFacts) -> dict:
    """Which key facts the summary's points state, and how its points were made."""
    text = " ".join(p.text for p in summary.points)
    covered = [f[0] for f in key.facts if contains_gold(text, f)]
    generative = sum(1 for p in summary.points if p.mode == "generative")
    return {
        "file": key.file,
        "points": len(summary.points),
        "generative_points": generative,
        "extractive_points": len(summary.points) - generative,
        "unsupported_lines": len(summary.unsupported),
        "facts": len(key.facts),
        "facts_covered": covered,
        "facts_missing": [f[0] for f in key.facts if f[0] not in covered],
    }


def overall(rows: list[dict]) -> dict:
    """Totals over files: the share of points in the model's own words and of key facts stated."""
    points = sum(r["points"] for r in rows)
    facts = sum(r["facts"] for r in rows)
    return {
        "files": len(rows),
        "points": points,
        "generative_share": sum(r["generative_points"] for r in rows) / max(1, points),
        "unsupported_lines": sum(r["unsupported_lines"] for r in rows),
        "key_fact_coverage": sum(len(r["facts_covered"]) for r in rows) / max(1, facts),
    }
