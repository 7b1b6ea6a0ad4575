"""Tuning hybrid fusion from pseudo-queries: making them, holding their piece out, choosing, recording."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.app import app
from kb.errors import InputError
from kb.eval.beir import BeirDoc
from kb.eval.retrieval import build_corpus_kb
from kb.knowledge import KnowledgeBase, read_fusion, write_fusion
from kb.retrieval import DENSE_WEIGHT, Retriever, fts_query
from kb.tune import (
    MIN_QUERIES,
    Edit,
    PseudoQuery,
    _edited_fts,
    choose,
    content_words,
    held_out_lists,
    make_pseudo_query,
    ndcg_one,
    pseudo_queries,
    sentences,
    tune,
)
from tests.fakes import FakeEmbedder

WORDS = (  # noqa: SIM905 - a word list reads better
    "amber basalt cobalt dune ember fjord glacier harbor island jungle karst lagoon mesa nebula oasis prairie "
    "quartz reef savanna tundra upland valley wetland xenolith yardang zephyr anvil beacon canyon delta estuary "
    "falcon granite heron ibis jackal kestrel lynx marten newt osprey puffin quail raven stoat tern urchin vole "
    "walrus yak zebu"
).split()


def _corpus(n: int = 70, seed: int = 1) -> list[BeirDoc]:
    """Documents of four sentences, each document with words of its own and a title."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        own = rng.sample(WORDS, 6)
        body = " ".join(
            f"The {own[j % 6]} and the {own[(j + 1) % 6]} meet {rng.choice(WORDS)} near site {i} again {j}."
            for j in range(4)
        )
        docs.append(BeirDoc(f"d{i}", f"Report {own[0]} {own[1]} {i}", body))
    return docs


@pytest.fixture
def corpus_kb(settings, tmp_path):
    s = settings.with_overrides(home=tmp_path / "tkb", chunk_tokens=400, chunk_overlap=8)
    with KnowledgeBase(s, embedder=FakeEmbedder(), write=True) as kb:
        build_corpus_kb(kb, _corpus())
    return s


def test_sentences_and_content_words():
    assert sentences("One two three. Four five six! 7 is a number? yes.") == [
        "One two three.",
        "Four five six!",
        "7 is a number? yes.",
    ]
    assert content_words("The leave of the employees is long") == ["leave", "employees", "long"]


def _rows(kb: KnowledgeBase, doc: str) -> list:
    row = kb.store.document(doc)
    assert row is not None
    return kb.store.document_chunks(row.id)


def test_pseudo_queries_hold_their_piece_out(corpus_kb):
    with KnowledgeBase(corpus_kb, embedder=FakeEmbedder()) as kb:
        chunks = _rows(kb, "beir:d3")
        rng = random.Random(0)
        s = make_pseudo_query("sentence", chunks, rng)
        assert s is not None and s.kind == "sentence" and s.doc_id == chunks[0].doc_id
        assert any(s.text in c.text for c in chunks) and s.edits
        assert all(s.text not in e.body for e in s.edits.values()), "the sentence is held out"
        t = make_pseudo_query("title", chunks, rng)
        assert t is not None and t.text == chunks[0].title
        assert set(t.edits) == {c.id for c in chunks} and all(e.title == "" for e in t.edits.values())
        w = make_pseudo_query("words", chunks, rng)
        assert w is not None and 2 <= len(w.text.split()) <= 4
        assert make_pseudo_query("heading", chunks, rng) is None, "BEIR passages have no headings"
        made = pseudo_queries(kb, 40, seed=3)
        assert len(made) == 40 and len({q.doc_id for q in made}) == 40, "one per document"
        kinds = {q.kind for q in made}
        assert kinds == {"sentence", "words", "title"}
        assert [q.text for q in pseudo_queries(kb, 40, seed=3)] == [q.text for q in made], "seeded"


def test_heading_pseudo_query():
    from kb.store import ChunkRow

    body = "Staff get thirty days of paid leave each year. Unused days carry over until March of next year."
    chunk = ChunkRow(1, 9, "/h.md", "Handbook", 0, body, 0, len(body), None, None, ("Leave",))
    q = make_pseudo_query("heading", [chunk], random.Random(2))
    assert q is not None and q.text.startswith("Leave ") and q.doc_id == 9
    phrase = q.text[len("Leave ") :]
    assert phrase in body and phrase not in q.edits[1].body


def test_edited_rows_are_rolled_back(corpus_kb):
    with KnowledgeBase(corpus_kb, embedder=FakeEmbedder(), write=True) as kb:
        chunks = _rows(kb, "beir:d5")
        word = chunks[0].title.split()[1]
        before = kb.store.keyword_search(fts_query(word), 100)
        assert chunks[0].id in {c for c, _ in before}
        edits = {c.id: Edit("", (), "nothing here") for c in chunks}
        with _edited_fts(kb, edits):
            inside = kb.store.keyword_search(fts_query(word), 100)
            assert chunks[0].id not in {c for c, _ in inside}
        assert kb.store.keyword_search(fts_query(word), 100) == before, "nothing stored changed"
        assert kb.store.db.in_transaction is False


def test_held_out_lists_score_the_edited_passage(corpus_kb):
    with KnowledgeBase(corpus_kb, embedder=FakeEmbedder(), write=True) as kb:
        chunks = _rows(kb, "beir:d7")
        sentence = sentences(chunks[0].text)[1]
        q = PseudoQuery(sentence, "sentence", chunks[0].doc_id, {chunks[0].id: Edit("", (), "x")})
        (lists,) = held_out_lists(kb, [q], 50)
        plain = kb.vectors.search(kb.embedder.embed([sentence]), 50)[0]
        assert plain[0][0] == chunks[0].id, "the passage holding the sentence is the nearest"
        cos = dict(lists.dense)[chunks[0].id]
        assert cos < plain[0][1], "its dense score is recomputed without the sentence"
        assert [s for _, s in lists.dense] == sorted((s for _, s in lists.dense), reverse=True)
        assert chunks[0].id not in {c for c, _ in lists.keyword}, "nor does BM25 see the sentence"
    with KnowledgeBase(corpus_kb, embedder=FakeEmbedder()) as kb, pytest.raises(ValueError, match="for writing"):
        held_out_lists(kb, [q], 50)


def test_ndcg_one_counts_documents_not_passages():
    doc_of = {1: 10, 2: 10, 3: 20, 4: 30}
    assert ndcg_one([(1, 0.9), (2, 0.8), (3, 0.7)], doc_of, 20) == pytest.approx(1 / np.log2(3))
    assert ndcg_one([(4, 1.0)], doc_of, 10) == 0.0
    assert ndcg_one([(3, 1.0)], doc_of, 20) == 1.0


def test_choose_keeps_the_default_unless_clearly_beaten():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 200)
    flat = {round(0.1 * i, 1): list(base + rng.normal(0, 0.01, 200)) for i in range(11)}
    kept = choose(flat, 0.6, {})
    assert kept.dense_weight == 0.6 and (kept.best == 0.6 or kept.margin <= 2 * kept.stderr)
    clear = {w: list(np.clip(base + 0.3 * w, 0, 1)) for w in flat}  # more dense weight, better
    picked = choose(clear, 0.6, {"sentence": 200})
    assert picked.dense_weight in (0.9, 1.0) and picked.margin > picked.stderr > 0
    assert picked.scores[1.0] > picked.scores[0.0] and picked.queries == 200


def test_tune_records_and_search_uses_it(corpus_kb):
    with KnowledgeBase(corpus_kb, embedder=FakeEmbedder(), write=True) as kb:
        report = tune(kb, queries=60, seed=1)
        assert report.recorded and report.choice.queries == 60
        rec = report.record
        assert rec["dense_weight"] == report.choice.dense_weight and rec["default_weight"] == DENSE_WEIGHT
        assert set(rec["ndcg@10"]) == {f"{0.1 * i:.1f}" for i in range(11)} and rec["pseudo_queries"] == 60
        assert rec["documents"] == 70 and sum(rec["kinds"].values()) == 60
    stored = json.loads((corpus_kb.home / "manifest.json").read_text())
    assert stored["fusion"] == rec and stored["embed_name"], "the other manifest fields are kept"
    write_fusion(corpus_kb.home, {**rec, "dense_weight": 0.3})
    with KnowledgeBase(corpus_kb, embedder=FakeEmbedder()) as kb:
        r = Retriever(kb)
        assert (r.dense_weight, r.weight_source) == (0.3, "tuned")
        assert Retriever(kb, dense_weight=0.8).weight_source == "given"
        assert r.rank_many(["amber"], "hybrid") == Retriever(kb, dense_weight=0.3).rank_many(["amber"], "hybrid")


def test_tune_dry_run_and_small_collections(corpus_kb, settings, tmp_path):
    with KnowledgeBase(corpus_kb, embedder=FakeEmbedder(), write=True) as kb:
        assert not tune(kb, queries=55, record=False).recorded
    assert read_fusion(corpus_kb.home) is None
    small = settings.with_overrides(home=tmp_path / "small")
    with KnowledgeBase(small, embedder=FakeEmbedder(), write=True) as kb:
        build_corpus_kb(kb, _corpus(10))
        with pytest.raises(InputError, match=f"only 10 pseudo-queries.*at least {MIN_QUERIES}"):
            tune(kb)


def test_a_damaged_record_means_the_default(corpus_kb):
    path = corpus_kb.home / "manifest.json"
    data = json.loads(path.read_text())
    for bad in ({"dense_weight": "high"}, {"dense_weight": 7}, ["x"], None):
        path.write_text(json.dumps({**data, "fusion": bad}))
        assert read_fusion(corpus_kb.home) is None
        with KnowledgeBase(corpus_kb, embedder=FakeEmbedder()) as kb:
            assert Retriever(kb).weight_source == "default"


@pytest.fixture
def cli_kb(corpus_kb, monkeypatch):
    monkeypatch.setattr("kb.knowledge.load_embedder", lambda name, **kw: FakeEmbedder())
    monkeypatch.setenv("KB_HOME", str(corpus_kb.home))
    monkeypatch.setenv("KB_CHUNK_TOKENS", str(corpus_kb.chunk_tokens))
    monkeypatch.setenv("KB_CHUNK_OVERLAP", str(corpus_kb.chunk_overlap))
    return corpus_kb


def test_cli_tune(cli_kb):
    runner = CliRunner()
    dry = runner.invoke(app, ["tune", "-n", "60", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "60 pseudo-queries" in dry.stdout and "not recorded (--dry-run)" in dry.stdout
    assert "(keyword only)" in dry.stdout and "(dense only)" in dry.stdout and "(default)" in dry.stdout
    assert read_fusion(cli_kb.home) is None
    done = runner.invoke(app, ["tune", "-n", "60", "--json"])
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert out["recorded"] is True and read_fusion(cli_kb.home) == {
        k: v for k, v in out.items() if k not in ("kb", "recorded", "seconds")
    }
    reset = runner.invoke(app, ["tune", "--reset"])
    assert reset.exit_code == 0 and "forgotten" in reset.stdout and read_fusion(cli_kb.home) is None


def test_cli_tune_errors(cli_kb, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["tune", "--kb", str(tmp_path / "nowhere")])
    assert "no knowledge base" in str(missing.exception)
    few = runner.invoke(app, ["tune", "-n", "20"])
    assert isinstance(few.exception, InputError) and "only 20 pseudo-queries" in str(few.exception)
