"""Run and qrels files: a written run re-sorts to the order it was written in, and reads back."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from kb.errors import InputError
from kb.eval.metrics import evaluate_run, rank, trec_score
from kb.eval.trec import format_score, read_qrels, read_run, write_run


def _trec_order(lines: list[str]) -> list[str]:
    """Re-sort written lines as trec_eval does, from the printed scores alone."""
    rows = [line.split() for line in lines]
    rows.sort(key=lambda r: (trec_score(float(r[4])), r[2]), reverse=True)
    return [r[2] for r in rows]


def test_write_run_lines_and_ranks() -> None:
    out = io.StringIO()
    write_run(out, {"q1": [("a", 0.5), ("c", 2.0), ("b", 0.5)], "q2": []}, tag="kb")
    assert out.getvalue().splitlines() == [
        "q1 Q0 c 1 2 kb",
        "q1 Q0 b 2 0.5 kb",  # tie with a: docid descending
        "q1 Q0 a 3 0.5 kb",
    ]


def test_written_scores_reproduce_the_ranking() -> None:
    rng = random.Random(7)
    # Coarse scores force exact ties; near-ties below float32 precision must behave the same.
    hits = [(f"d{i}", rng.choice([0.1, 0.2, 0.3]) + rng.choice([0.0, 1e-12])) for i in range(200)]
    hits += [(f"e{i}", rng.random()) for i in range(200)]
    out = io.StringIO()
    write_run(out, {"q": hits}, tag="t")
    lines = out.getvalue().splitlines()
    assert _trec_order(lines) == rank(hits)
    assert [int(line.split()[3]) for line in lines] == list(range(1, len(hits) + 1))


def test_format_score_round_trips_float32() -> None:
    rng = random.Random(3)
    values = [rng.uniform(-50, 50) for _ in range(2000)] + [0.1, 1e-30, 3.4e38, 0.0]
    for value in values:
        assert trec_score(float(format_score(value))) == trec_score(value)
    assert format_score(0.5) == "0.5"
    assert format_score(1e300) == "inf"


def test_run_round_trip(tmp_path: Path) -> None:
    run = {"q1": [("a", 0.25), ("b", 0.75), ("c", 0.25)], "q2": [("x", -1.5)]}
    path = tmp_path / "run.trec"
    with path.open("w", encoding="utf-8") as fh:
        write_run(fh, run, tag="kb")
    back = read_run(path)
    assert {qid: rank(hits) for qid, hits in back.items()} == {qid: rank(hits) for qid, hits in run.items()}
    assert dict(back["q1"]) == {"a": 0.25, "b": 0.75, "c": 0.25}
    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"y": 1}}
    assert evaluate_run(back, qrels) == evaluate_run(run, qrels)


def test_write_run_rejects_whitespace_in_ids() -> None:
    with pytest.raises(ValueError, match="whitespace"):
        write_run(io.StringIO(), {"q": [("a b", 1.0)]}, tag="kb")
    with pytest.raises(ValueError, match="whitespace"):
        write_run(io.StringIO(), {"q": [("a", 1.0)]}, tag="my run")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q Q0 a 1 0.5\n", ":1: expected"),
        ("q Q0 a 1 high kb\n", "not a number"),
        ("q Q0 a 1 nan kb\n", "NaN"),
        ("q Q0 a 1 0.5 kb\n\nq Q0 a 2 0.4 kb\n", ":3: doc a listed twice"),
    ],
)
def test_read_run_reports_bad_lines(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "run.trec"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_run(path)


def test_read_run_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_run(tmp_path / "nope.trec")


def test_read_qrels_beir_tsv(tmp_path: Path) -> None:
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\n1\td1\t2\n1\td2\t0\n2\td 3\t1\n", encoding="utf-8")
    assert read_qrels(path) == {"1": {"d1": 2, "d2": 0}, "2": {"d 3": 1}}


def test_read_qrels_trec_format(tmp_path: Path) -> None:
    path = tmp_path / "qrels.txt"
    path.write_text("301 0 FT1 1\n301 0 FT2 0\n302 0 FT3 -1\n", encoding="utf-8")
    assert read_qrels(path) == {"301": {"FT1": 1, "FT2": 0}, "302": {"FT3": -1}}


def test_read_qrels_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("query-id\tcorpus-id\tscore\n1\td1\tyes\n", encoding="utf-8")
    with pytest.raises(InputError, match=":2: relevance 'yes'"):
        read_qrels(path)
    path.write_text("1 d1\n", encoding="utf-8")
    with pytest.raises(InputError, match=":1: expected"):
        read_qrels(path)
