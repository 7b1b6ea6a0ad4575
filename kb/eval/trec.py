"""TREC run files and relevance judgments (TREC qrels or BEIR tsv), read and written as plain text.

A run line is `qid Q0 docid rank score tag`. `write_run` writes each score rounded to the
float32 value trec_eval compares (`kb.eval.metrics.trec_score`), in the fewest digits that
read back to that value. So tools that re-sort by score (trec_eval, pytrec_eval, BEIR,
and `read_run` + `kb.eval.metrics.rank`) see exactly the ties `rank` saw, break them by docid
descending as it did, and reproduce the written order without adjusting any score.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO

from kb.errors import InputError
from kb.eval.metrics import Qrels, Run, rank, trec_score


def format_score(score: float) -> str:
    """The shortest text that reads back as the same float32 score."""
    value = trec_score(score)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    for digits in range(6, 10):  # 9 significant digits always round-trip a float32
        text = f"{value:.{digits}g}"
        if trec_score(float(text)) == value:
            return text
    raise AssertionError("unreachable: 9 digits round-trip every float32")


def _check_token(kind: str, value: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{kind} {value!r} is empty or has whitespace; TREC files split on it")


def write_run(fh: TextIO, run: Mapping[str, list[tuple[str, float]]], tag: str) -> None:
    """Write a run as TREC lines, ranks from 1 in `kb.eval.metrics.rank` order."""
    _check_token("run tag", tag)
    for qid, hits in run.items():
        _check_token("query id", qid)
        hits = list(hits)
        scores = dict(hits)
        for i, docid in enumerate(rank(hits)):
            _check_token("doc id", docid)
            fh.write(f"{qid} Q0 {docid} {i + 1} {format_score(scores[docid])} {tag}\n")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    yield number, line.rstrip("\r\n")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


def read_run(path: Path | str) -> Run:
    """Read a TREC run file into qid -> [(docid, score)]; the rank column is ignored."""
    path = Path(path)
    run: Run = {}
    seen: set[tuple[str, str]] = set()
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) != 6:
            raise InputError(f"{path}:{number}: expected 'qid Q0 docid rank score tag'")
        qid, _, docid, _, score, _ = fields
        try:
            value = float(score)
        except ValueError:
            raise InputError(f"{path}:{number}: score {score!r} is not a number") from None
        if math.isnan(value):
            raise InputError(f"{path}:{number}: score is NaN")
        if (qid, docid) in seen:  # trec_eval rejects such a run too
            raise InputError(f"{path}:{number}: doc {docid} listed twice for query {qid}")
        seen.add((qid, docid))
        run.setdefault(qid, []).append((docid, value))
    return run


def _qrels_fields(line: str) -> list[str]:
    # BEIR tsv is tab-separated; TREC qrels are whitespace-separated.
    return line.split("\t") if "\t" in line else line.split()


def read_qrels(path: Path | str) -> Qrels:
    """Read BEIR tsv (`query-id corpus-id score`, header) or TREC qrels (`qid 0 docid rel`)."""
    path = Path(path)
    qrels: Qrels = {}
    for i, (number, line) in enumerate(_lines(path)):
        fields = [f.strip() for f in _qrels_fields(line)]
        if i == 0 and fields[0].lower() in ("query-id", "query_id", "qid"):
            continue  # BEIR's header line
        if len(fields) == 3:
            qid, docid, grade = fields
        elif len(fields) == 4:
            qid, _, docid, grade = fields
        else:
            raise InputError(f"{path}:{number}: expected 'query-id corpus-id score' or 'qid 0 docid rel'")
        try:
            rel = int(grade)
        except ValueError:
            raise InputError(f"{path}:{number}: relevance {grade!r} is not an integer") from None
        qrels.setdefault(qid, {})[docid] = rel  # a repeated judgment: the last one wins
    return qrels
