"""Retrieval: the FTS query, fusion, keyword search through updates and deletions, modes, batch search."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.app import app
from ingest.types import Chunk
from kb.config import Settings
from kb.errors import InputError
from kb.indexer import ingest
from kb.knowledge import KnowledgeBase
from kb.retrieval import DENSE_WEIGHT, Retriever, drop_near_duplicates, fts_query, rrf, score_fusion
from kb.store import ChunkRow, Store
from tests.fakes import FakeEmbedder

# --- pure parts ---------------------------------------------------------------------------------


def test_fts_query_keeps_content_words_quoted_once():
    assert fts_query("What is the uptime of the SLA? The SLA!") == '"uptime" OR "sla"'
    assert fts_query("who is he") == '"who" OR "is" OR "he"', "all stopwords: keep them rather than match nothing"
    assert fts_query("") == "" and fts_query("?!") == ""
    # Quotes and FTS operators in the text cannot break the MATCH expression.
    assert fts_query('NEAR("x" AND y) OR -z*') == '"near" OR "x" OR "y" OR "z"'


def test_rrf_sums_weighted_reciprocal_ranks():
    fused = dict(rrf([[1, 2, 3], [3, 1]], [1.0, 1.0], k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    order = [cid for cid, _ in rrf([[1, 2], [2, 1]], [1.0, 1.0])]
    assert order == [1, 2], "equal scores break ties by id, so runs are deterministic"
    assert [cid for cid, _ in rrf([[1, 2], [2, 1]], [1.0, 3.0])] == [2, 1]


def test_score_fusion_normalises_each_list_by_its_best():
    dense = [(1, 0.8), (2, 0.6), (3, 0.4)]
    keyword = [(3, 20.0), (1, 10.0), (4, 5.0)]
    fused = dict(score_fusion(dense, keyword, depth=3, dense_weight=0.5))
    assert fused[1] == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    assert fused[3] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    # Both lists are full (depth 3): a missing candidate takes the list's lowest score.
    assert fused[2] == pytest.approx(0.5 * 0.75 + 0.5 * 0.25)
    assert fused[4] == pytest.approx(0.5 * 0.5 + 0.5 * 0.25)
    # The scale of either score does not matter, only its shape.
    scaled = score_fusion(dense, [(c, s * 37) for c, s in keyword], depth=3, dense_weight=0.5)
    assert [c for c, _ in scaled] == [c for c, _ in score_fusion(dense, keyword, depth=3, dense_weight=0.5)]


def test_score_fusion_treats_a_short_list_as_complete():
    # One keyword match out of a deeper request: the others have no keyword match at all,
    # so they must not be credited with that one match's score.
    dense = [(1, 0.9), (2, 0.85), (3, 0.6)]
    fused = score_fusion(dense, [(3, 4.0)], depth=10, dense_weight=0.6)
    assert fused[0][0] == 3 and dict(fused)[1] == pytest.approx(0.6)
    assert [c for c, _ in score_fusion(dense, [], depth=10)] == [1, 2, 3], "no keyword match: dense order"
    assert [c for c, _ in score_fusion([], [(5, 2.0), (6, 1.0)], depth=10)] == [5, 6]


def test_score_fusion_edge_cases():
    # Negative cosines (an unrelated query) keep their order rather than flipping it.
    neg = score_fusion([(1, -0.1), (2, -0.2)], [], depth=2, dense_weight=1.0)
    assert [c for c, _ in neg] == [1, 2]
    assert score_fusion([], [], depth=5) == []
    assert 0.5 <= DENSE_WEIGHT <= 0.7


def test_near_duplicates_are_dropped_keeping_the_better_ranked():
    def row(i: int, text: str) -> ChunkRow:
        return ChunkRow(i, 1, "p", "t", i, text, 0, len(text), None, None, ())

    text = "the quick brown fox jumps over the lazy dog near the river bank today"
    rows = [row(1, text), row(2, text + "."), row(3, "something else entirely about cats and dogs")]
    assert drop_near_duplicates(rows) == [0, 2]


def test_near_duplicates_at_the_threshold_exactly_and_sets_of_unequal_size():
    def row(i: int, text: str) -> ChunkRow:
        return ChunkRow(i, 1, "p", "t", i, text, 0, len(text), None, None, ())

    words = [f"w{i}" for i in range(12)]  # 10 word trigrams
    whole, most = " ".join(words), " ".join(words[:11])  # 9 of those 10: Jaccard 0.9 exactly
    assert drop_near_duplicates([row(1, whole), row(2, most)]) == [0]
    assert drop_near_duplicates([row(1, most), row(2, whole)]) == [0]
    fewer = " ".join(words[:10])  # 8 of 10: 0.8, kept
    assert drop_near_duplicates([row(1, whole), row(2, fewer)]) == [0, 1]
    # Joined shingles stay distinct: "a b" + "c" is not "a" + "b c".
    assert drop_near_duplicates([row(1, "ab c d"), row(2, "a bc d")]) == [0, 1]


# --- keyword index under incremental change ------------------------------------------------------


def _chunks(*texts: str) -> list[Chunk]:
    return [Chunk(i, t, 0, len(t), None, None, ("Section",), len(t.split())) for i, t in enumerate(texts)]


def _put(store: Store, path: str, title: str, *texts: str) -> tuple[list[int], list[int]]:
    return store.replace_document(
        path=path,
        sha256=path + str(len(texts)),
        size=1,
        mtime=1.0,
        format="text",
        title=title,
        n_pages=None,
        chunks=_chunks(*texts),
        vectors=np.zeros((len(texts), 4), dtype=np.float32),
    )


def _kw(store: Store, text: str) -> list[int]:
    return [cid for cid, _ in store.keyword_search(fts_query(text), 50)]


def _consistent(store: Store) -> None:
    counts = store.counts()
    assert counts["chunks"] == counts["keyword_entries"]
    chunk_ids = {r[0] for r in store.db.execute("SELECT id FROM chunks")}
    fts_ids = {r[0] for r in store.db.execute("SELECT rowid FROM chunks_fts")}
    assert chunk_ids == fts_ids


def test_keyword_search_follows_updates_and_deletions(tmp_path):
    store = Store(tmp_path / "kb.sqlite")
    _, first = _put(store, "/a.txt", "Holidays", "annual leave is 28 days", "carry over five days")
    _put(store, "/b.txt", "Travel", "trains are first class")
    assert set(_kw(store, "annual leave")) == {first[0]}
    assert set(_kw(store, "holidays")) == set(first), "the title is searchable"
    removed, second = _put(store, "/a.txt", "Vacation", "annual leave is 30 days")
    assert removed == first
    assert _kw(store, "28") == [] and _kw(store, "carry") == [] and _kw(store, "holidays") == []
    assert _kw(store, "30") == second and _kw(store, "vacation") == second
    _consistent(store)
    assert store.remove_document("/a.txt") == second
    assert _kw(store, "annual leave") == [] and _kw(store, "trains") != []
    _consistent(store)
    assert store.remove_document("/missing.txt") == []
    store.close()


def test_failed_replacement_keeps_old_chunks_and_keyword_entries(tmp_path):
    store = Store(tmp_path / "kb.sqlite")
    _, old = _put(store, "/a.txt", "Leave", "annual leave is 28 days")
    bad = [Chunk(0, "annual leave is 30 days", 0, 1, None, None, (), 5), Chunk(1, None, 0, 1, None, None, (), 1)]  # type: ignore[arg-type]
    with pytest.raises(Exception, match="NOT NULL"):  # the second chunk fails mid-transaction
        store.replace_document(
            path="/a.txt",
            sha256="x",
            size=1,
            mtime=2.0,
            format="text",
            title="Leave",
            n_pages=None,
            chunks=bad,
            vectors=np.zeros((2, 4), dtype=np.float32),
        )
    assert _kw(store, "28") == old and _kw(store, "30") == []
    _consistent(store)
    store.close()


def test_keyword_search_survives_reopening(tmp_path):
    store = Store(tmp_path / "kb.sqlite")
    _put(store, "/a.txt", "Leave", "annual leave is 28 days")
    store.close()
    again = Store(tmp_path / "kb.sqlite")
    assert len(_kw(again, "annual")) == 1
    again.close()


# --- modes through a real knowledge base ---------------------------------------------------------


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\n\nEmployees receive 28 days of annual leave per year.\n")
    (folder / "sla.txt").write_text("The SLA guarantees 99.9% uptime every month for the hosted service.\n")
    (folder / "travel.md").write_text("# Travel\n\nTrains are first class for journeys over four hours.\n")
    return folder


@pytest.fixture
def built(settings, fake_embedder, docs):
    with KnowledgeBase(settings, embedder=fake_embedder, write=True) as kb:
        ingest(kb, [docs], isolate=False)
    return settings


def test_hybrid_is_the_default(built, fake_embedder):
    assert Settings().search_mode == "hybrid"
    with KnowledgeBase(built, embedder=fake_embedder) as kb:
        r = Retriever(kb)
        default = r.search("annual leave days", k=3)
        assert default == r.search("annual leave days", k=3, mode="hybrid")
        top = default[0]
        assert top.chunk.path.endswith("leave.md")
        assert top.dense is not None and top.keyword is not None, "hybrid hits carry both scores"


def test_modes_and_their_scores(built, fake_embedder):
    with KnowledgeBase(built, embedder=fake_embedder) as kb:
        r = Retriever(kb)
        dense = r.search("uptime guarantee", k=3, mode="dense")
        assert len(dense) == 3 and all(h.keyword is None for h in dense)
        assert [h.score for h in dense] == sorted((h.score for h in dense), reverse=True)
        kw = r.search("uptime guarantee", k=3, mode="keyword")
        assert [h.chunk.path.rsplit("/", 1)[-1] for h in kw] == ["sla.txt"]
        assert kw[0].dense is not None, "keyword hits still report their cosine relevance"
        assert [h.rank for h in dense] == [1, 2, 3]
        with pytest.raises(ValueError, match="unknown mode"):
            r.search("x", mode="sparse")


def test_rank_many_matches_search(built, fake_embedder):
    with KnowledgeBase(built, embedder=fake_embedder) as kb:
        r = Retriever(kb)
        queries = ["annual leave", "first class trains", "uptime"]
        for mode in ("dense", "keyword", "hybrid"):
            ranked = r.rank_many(queries, mode, depth=50)
            hits = r.search_many(queries, k=2, mode=mode)
            for rank_list, hit_list in zip(ranked, hits, strict=True):
                assert [h.chunk.id for h in hit_list] == [cid for cid, _ in rank_list][: len(hit_list)]


# --- batch search on the command line ------------------------------------------------------------


@pytest.fixture
def cli_env(built, monkeypatch):
    monkeypatch.setattr("kb.knowledge.load_embedder", lambda name, **kw: FakeEmbedder())
    monkeypatch.setenv("KB_HOME", str(built.home))
    monkeypatch.setenv("KB_CHUNK_TOKENS", str(built.chunk_tokens))
    monkeypatch.setenv("KB_CHUNK_OVERLAP", str(built.chunk_overlap))
    return built


def test_batch_search_jsonl(cli_env, tmp_path):
    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"id": "a", "text": "annual leave"}\n\n{"_id": "b", "text": "trains first class"}\n')
    result = CliRunner().invoke(app, ["search", "--queries", str(qfile), "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["id"], x["query"]) for x in lines] == [("a", "annual leave"), ("b", "trains first class")]
    assert all(1 <= len(x["hits"]) <= 2 for x in lines)
    first = lines[0]["hits"][0]
    assert first["path"].endswith("leave.md") and first["rank"] == 1
    assert set(first) >= {"score", "relevance", "bm25", "chunk_id", "text", "heading", "page_start"}
    assert lines[1]["hits"][0]["path"].endswith("travel.md")


def test_batch_search_plain_lines_and_text_output(cli_env, tmp_path):
    qfile = tmp_path / "q.txt"
    qfile.write_text("annual leave\nuptime SLA\n")
    result = CliRunner().invoke(app, ["search", "--queries", str(qfile), "--mode", "keyword"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert {r[0] for r in rows} == {"1", "2"}, "plain lines are numbered from 1"
    assert rows[0][1] == "1" and rows[0][3].endswith("leave.md")
    assert [r[3].rsplit("/", 1)[-1] for r in rows if r[0] == "2"] == ["sla.txt"]


def test_batch_search_matches_single_searches(cli_env, tmp_path):
    qfile = tmp_path / "q.txt"
    qfile.write_text("annual leave\nuptime SLA\n")
    runner = CliRunner()
    batch = [
        json.loads(line)
        for line in runner.invoke(app, ["search", "--queries", str(qfile), "--json"]).stdout.splitlines()
    ]
    for item in batch:
        single = json.loads(runner.invoke(app, ["search", item["query"], "--json"]).stdout)
        assert single["mode"] == "hybrid"
        assert [h["chunk_id"] for h in single["hits"]] == [h["chunk_id"] for h in item["hits"]]


def test_batch_search_input_errors(cli_env, tmp_path):
    runner = CliRunner()
    both = runner.invoke(app, ["search", "x", "--queries", str(tmp_path / "q.txt")])
    assert isinstance(both.exception, InputError)
    neither = runner.invoke(app, ["search"])
    assert isinstance(neither.exception, InputError)
    missing = runner.invoke(app, ["search", "--queries", str(tmp_path / "nope.txt")])
    assert isinstance(missing.exception, InputError)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n')
    result = runner.invoke(app, ["search", "--queries", str(bad)])
    assert isinstance(result.exception, InputError) and "bad.jsonl:1" in str(result.exception)
