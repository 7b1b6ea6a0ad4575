"""A tiny BEIR folder built in tmp_path: loading, streaming, and the errors a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.errors import InputError
from kb.eval.beir import BeirDoc, load_beir
from kb.eval.metrics import evaluate_run


def _jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    _jsonl(
        folder / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Cats", "text": "Cats purr."},
            {"_id": "d2", "text": "No title here."},
            {"_id": "d3", "title": None, "text": "Null title.", "metadata": {}},
        ],
    )
    _jsonl(
        folder / "queries.jsonl",
        [
            {"_id": "q1", "text": "do cats purr", "metadata": {}},
            {"_id": "q2", "text": "judged, nothing relevant"},
            {"_id": "q3", "text": "not judged in this split"},
        ],
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\nq2\td2\t0\n", encoding="utf-8"
    )
    return folder


def test_load_keeps_judged_queries_and_streams_corpus(beir_dir: Path) -> None:
    data = load_beir(beir_dir)
    assert data.split == "test"
    assert data.queries == {"q1": "do cats purr"}  # q2 has no relevant doc, q3 no judgment
    assert data.qrels == {"q1": {"d1": 2, "d3": 1}, "q2": {"d2": 0}}
    docs = list(data.corpus())
    assert docs == [
        BeirDoc("d1", "Cats", "Cats purr."),
        BeirDoc("d2", "", "No title here."),
        BeirDoc("d3", "", "Null title."),
    ]
    assert list(data.corpus()) == docs  # each call reads the file afresh


def test_loaded_split_evaluates(beir_dir: Path) -> None:
    data = load_beir(beir_dir)
    perfect = {qid: [(d, float(r)) for d, r in data.qrels[qid].items()] for qid in data.queries}
    assert evaluate_run(perfect, data.qrels)["ndcg@10"] == pytest.approx(1.0)


def test_missing_split_names_the_available_ones(beir_dir: Path) -> None:
    with pytest.raises(InputError, match=r"no qrels/dev\.tsv \(available splits: test\)"):
        load_beir(beir_dir, split="dev")


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_missing_file_is_named(beir_dir: Path, name: str) -> None:
    (beir_dir / name).unlink()
    with pytest.raises(InputError, match=f"no {name}"):
        load_beir(beir_dir)


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        load_beir(tmp_path / "absent")


def test_judged_query_without_text(beir_dir: Path) -> None:
    _jsonl(beir_dir / "queries.jsonl", [{"_id": "q2", "text": "other"}])
    with pytest.raises(InputError, match=r"1 judged queries are missing, e\.g\. q1"):
        load_beir(beir_dir)


def test_bad_corpus_line_is_reported_when_streamed(beir_dir: Path) -> None:
    with (beir_dir / "corpus.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    data = load_beir(beir_dir)  # the corpus is not read at load time
    with pytest.raises(InputError, match=r"corpus\.jsonl:4: not valid JSON"):
        list(data.corpus())
