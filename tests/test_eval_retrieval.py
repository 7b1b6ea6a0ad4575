"""`kb eval retrieval` on a tiny BEIR folder with the fake embedder: building, caching, scoring, run files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.eval_cmd import run_file_path
from kb.errors import InputError
from kb.eval.beir import BeirDoc, load_beir
from kb.eval.metrics import evaluate_run
from kb.eval.retrieval import (
    build_corpus_kb,
    cache_folder,
    chunk_doc_ids,
    doc_rankings,
    evaluate_retrieval,
    iter_with_count,
    open_eval_kb,
    pool_by_doc,
)
from kb.eval.trec import read_run, write_run
from kb.retrieval import Retriever
from tests.fakes import FakeEmbedder

TOPICS = {
    "cats": "cats purr and sleep on warm windows; a cat hunts mice at night",
    "dogs": "dogs bark at the postman and fetch sticks in the park",
    "solar": "solar panels turn sunlight into electricity on the roof",
    "wind": "wind turbines spin in the storm and feed the grid with power",
    "bread": "bread dough rises with yeast before it is baked in the oven",
    "coffee": "coffee beans are roasted then ground and brewed with hot water",
    "rivers": "rivers carry sediment to the sea and carve deep valleys",
    "chess": "chess players open with the king pawn and castle early",
}


def _jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _corpus_rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"_id": name, "title": name.title(), "text": text} for name, text in TOPICS.items()
    ]
    # A long document, several chunks with the default test chunk size, on one topic.
    rows.append(
        {
            "_id": "long",
            "title": "Gardening",
            "text": " ".join(f"gardeners plant tomatoes and water the garden beds in row {i}." for i in range(30)),
        }
    )
    return rows


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    _jsonl(folder / "corpus.jsonl", _corpus_rows())
    _jsonl(
        folder / "queries.jsonl",
        [
            {"_id": "q1", "text": "why do cats purr"},
            {"_id": "q2", "text": "wind turbines and solar panels for electricity"},
            {"_id": "q3", "text": "how is bread baked"},
            {"_id": "q4", "text": "watering tomatoes in the garden"},
            {"_id": "q5", "text": "a question about nothing at all zebra"},
        ],
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\tcats\t1\nq2\twind\t1\nq2\tsolar\t2\nq3\tbread\t1\nq4\tlong\t1\nq5\tchess\t1\n",
        encoding="utf-8",
    )
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tcats\t1\n", encoding="utf-8")
    return folder


@pytest.fixture
def eval_settings(settings, tmp_path):
    return settings.with_overrides(home=tmp_path / "unused")


def _build(data, settings, folder, embedder):
    with open_eval_kb(data, settings, folder=folder, embedder=embedder) as kb:
        total, corpus = iter_with_count(data)
        return build_corpus_kb(kb, corpus, total=total)


def test_build_indexes_every_entry_once_and_resumes(beir_dir, eval_settings, tmp_path):
    data = load_beir(beir_dir)
    emb = FakeEmbedder()
    ticks: list[tuple[int, int]] = []
    with open_eval_kb(data, eval_settings, folder=tmp_path / "ev", embedder=emb) as kb:
        total, corpus = iter_with_count(data)
        report = build_corpus_kb(kb, corpus, total=total, progress=lambda d, n: ticks.append((d, n)))
        counts = kb.store.counts()
        assert report.documents == report.embedded == total == 9 and report.removed == 0
        assert counts["documents"] == 9 and counts["chunks"] == counts["keyword_entries"] == kb.vectors.size
        assert report.chunks == counts["chunks"] > 9, "the long document is cut into several chunks"
        assert ticks[0] == (0, 9) and ticks[-1] == (9, 9)
        paths = {d.path for d in kb.store.documents()}
        assert "beir:cats" in paths
        (doc,) = [d for d in kb.store.documents() if d.path == "beir:cats"]
        assert doc.title == "Cats" and doc.format == "beir"
        assert set(chunk_doc_ids(kb).values()) == set(TOPICS) | {"long"}
    calls = emb.calls
    again = _build(data, eval_settings, tmp_path / "ev", emb)
    assert again.embedded == 0 and emb.calls == calls, "a built corpus is not embedded again"


def test_build_follows_a_changed_corpus(beir_dir, eval_settings, tmp_path):
    data = load_beir(beir_dir)
    _build(data, eval_settings, tmp_path / "ev", FakeEmbedder())
    rows = [r for r in _corpus_rows() if r["_id"] != "dogs"]
    rows[0] = {**rows[0], "text": "cats ignore their owners entirely"}
    _jsonl(beir_dir / "corpus.jsonl", rows)
    report = _build(data, eval_settings, tmp_path / "ev", FakeEmbedder())
    assert report.embedded == 1 and report.removed == 1 and report.documents == 8
    with open_eval_kb(data, eval_settings, folder=tmp_path / "ev", embedder=FakeEmbedder()) as kb:
        retriever = Retriever(kb)
        assert retriever.search("bark postman", mode="keyword") == []
        (hit,) = retriever.search("ignore owners", mode="keyword")
        assert hit.chunk.path == "beir:cats"
        counts = kb.store.counts()
        assert counts["chunks"] == counts["keyword_entries"] == kb.vectors.size


def test_cache_folder_depends_on_data_and_settings(beir_dir, eval_settings, tmp_path):
    emb = FakeEmbedder()
    a = cache_folder(beir_dir, eval_settings, emb, tmp_path / "cache")
    assert a.parent == tmp_path / "cache" and a.name.startswith("tiny-")
    assert a == cache_folder(beir_dir, eval_settings, emb, tmp_path / "cache")
    assert a != cache_folder(beir_dir, eval_settings.with_overrides(chunk_tokens=64), emb, tmp_path / "cache")
    assert a != cache_folder(tmp_path, eval_settings, emb, tmp_path / "cache")


def test_pool_by_doc_keeps_the_best_chunk_and_counts_distinct_docs():
    doc_of = {1: "a", 2: "b", 3: "a", 4: "c", 5: "d"}
    ranked = [(1, 0.9), (3, 0.95), (2, 0.5), (99, 0.4), (4, 0.3), (5, 0.2)]
    assert pool_by_doc(ranked, doc_of, 3) == [("a", 0.95), ("b", 0.5), ("c", 0.3)]
    # A later chunk of an already-listed doc can still raise its score, never add a doc past n.
    assert pool_by_doc([(2, 0.1), (4, 0.2), (5, 0.3)], doc_of, 1) == [("b", 0.1)]


class _ShallowRetriever:
    """Returns only `depth` chunks of a fixed ranking, recording the depths asked for."""

    def __init__(self, ranking: list[tuple[int, float]]) -> None:
        self.ranking = ranking
        self.depths: list[int] = []

    def rank_many(self, texts, mode, depth):
        self.depths.append(depth)
        return [self.ranking[:depth] for _ in texts]


def test_doc_rankings_deepen_until_enough_distinct_docs():
    # 100 chunks of doc "big" first, then one chunk each of 30 other docs.
    doc_of = {i: "big" for i in range(100)} | {1000 + i: f"d{i}" for i in range(30)}
    ranking = [(i, 1.0 - i / 1000) for i in range(100)] + [(1000 + i, 0.5 - i / 1000) for i in range(30)]
    fake = _ShallowRetriever(ranking)
    (docs,) = doc_rankings(fake, ["q"], "dense", doc_of, n_docs=10)  # type: ignore[arg-type]
    assert len(docs) == 10 and docs[0][0] == "big"
    assert len(fake.depths) > 1, "the first candidate list was too shallow and had to be deepened"
    # When the sources run dry there are simply fewer docs.
    (few,) = doc_rankings(_ShallowRetriever(ranking[:105]), ["q"], "dense", doc_of, n_docs=10)  # type: ignore[arg-type]
    assert [d for d, _ in few] == ["big", "d0", "d1", "d2", "d3", "d4"]


def test_metrics_agree_with_scoring_the_run_files(beir_dir, eval_settings, tmp_path):
    data = load_beir(beir_dir)
    _build(data, eval_settings, tmp_path / "ev", FakeEmbedder())
    seen: list[tuple[str, int, int]] = []
    with open_eval_kb(data, eval_settings, folder=tmp_path / "ev", embedder=FakeEmbedder()) as kb:
        results = evaluate_retrieval(kb, data, batch=2, progress=lambda m, d, n: seen.append((m, d, n)))
    assert [r.mode for r in results] == ["hybrid", "dense", "keyword"]
    assert ("dense", 5, 5) in seen
    for r in results:
        assert set(r.run) == set(data.queries)
        assert all(len({d for d, _ in hits}) == len(hits) <= 100 for hits in r.run.values())
        assert set(r.metrics) >= {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
        assert r.qps > 0 and set(r.per_query) == set(data.queries)
        path = tmp_path / f"{r.mode}.trec"
        with path.open("w") as fh:
            write_run(fh, r.run, f"kb-{r.mode}")
        assert evaluate_run(read_run(path), data.qrels, (10, 100)) == r.metrics
    hybrid = results[0]
    assert hybrid.per_query["q1"]["ndcg@10"] == 1.0, "an easy query finds its document first"
    assert hybrid.run["q4"][0][0] == "long", "a multi-chunk document is pooled into one doc hit"


def test_unknown_mode_is_refused(beir_dir, eval_settings, tmp_path):
    data = load_beir(beir_dir)
    with (
        open_eval_kb(data, eval_settings, folder=tmp_path / "ev", embedder=FakeEmbedder()) as kb,
        pytest.raises(ValueError, match="unknown mode"),
    ):
        evaluate_retrieval(kb, data, modes=["sparse"])


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def fake_models(monkeypatch):
    monkeypatch.setattr("kb.eval.retrieval.load_embedder", lambda name, **kw: FakeEmbedder())


def _settings_env(monkeypatch, tmp_path):
    # The fake embedder counts whitespace tokens; small chunks make the long doc multi-chunk.
    monkeypatch.setenv("KB_CHUNK_TOKENS", "40")
    monkeypatch.setenv("KB_CHUNK_OVERLAP", "8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_cli_json_and_run_files_agree(beir_dir, tmp_path, monkeypatch, fake_models):
    _settings_env(monkeypatch, tmp_path)
    runner = CliRunner()
    base = tmp_path / "out" / "runs.trec"
    base.parent.mkdir()
    result = runner.invoke(app, ["eval", "retrieval", str(beir_dir), "--json", "--run-out", str(base)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["split"] == "test" and out["queries"] == 5 and out["documents"] == 9
    assert out["index"]["embedded"] == 9
    assert Path(out["kb"]).parent == tmp_path / "cache" / "kb" / "eval", "cached under XDG_CACHE_HOME"
    assert set(out["modes"]) == {"dense", "keyword", "hybrid"}
    data = load_beir(beir_dir)
    for mode, info in out["modes"].items():
        path = run_file_path(base, mode)
        assert out["run_files"][mode] == str(path) and path.name == f"runs.{mode}.trec"
        lines = path.read_text().splitlines()
        assert all(line.split()[5] == f"kb-{mode}" for line in lines)
        assert evaluate_run(read_run(path), data.qrels, (10, 100)) == info["metrics"]
        assert info["qps"] > 0
    again = runner.invoke(app, ["eval", "retrieval", str(beir_dir), "--json", "--mode", "keyword"])
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert second["index"]["embedded"] == 0 and list(second["modes"]) == ["keyword"]
    assert second["modes"]["keyword"]["metrics"] == out["modes"]["keyword"]["metrics"]
    assert out["fusion"] == "score"
    rrf = runner.invoke(app, ["eval", "retrieval", str(beir_dir), "--json", "--mode", "hybrid", "--fusion", "rrf"])
    assert rrf.exit_code == 0, rrf.output
    assert json.loads(rrf.stdout)["fusion"] == "rrf"


def test_cli_table(beir_dir, tmp_path, monkeypatch, fake_models):
    _settings_env(monkeypatch, tmp_path)
    result = CliRunner().invoke(
        app, ["eval", "retrieval", str(beir_dir), "--split", "train", "--kb", str(tmp_path / "evkb")]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tiny (train): 1 query, 9 documents")
    assert lines[1].startswith("hybrid dense weight 0.60 (default; default 0.6); tuning skipped: ")
    assert lines[2].split() == ["mode", "nDCG@10", "Recall@10", "Recall@100", "MRR@10", "queries/s"]
    assert [line.split()[0] for line in lines[3:6]] == ["dense", "keyword", "hybrid"]
    assert (tmp_path / "evkb" / "manifest.json").is_file()


def test_cli_errors(beir_dir, tmp_path, monkeypatch, fake_models):
    _settings_env(monkeypatch, tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "retrieval", str(beir_dir), "--split", "dev"])
    assert isinstance(result.exception, InputError) and "available splits: test, train" in str(result.exception)
    result = runner.invoke(app, ["eval", "retrieval", str(beir_dir), "--mode", "sparse"])
    assert isinstance(result.exception, InputError) and "unknown mode" in str(result.exception)
    result = runner.invoke(app, ["eval", "retrieval", str(beir_dir), "--fusion", "max"])
    assert isinstance(result.exception, InputError) and "unknown fusion" in str(result.exception)
    result = runner.invoke(app, ["eval", "--help"])
    assert result.exit_code == 0 and "retrieval" in result.stdout


def test_parsed_document_is_one_titled_block():
    from kb.eval.retrieval import parsed_document

    doc = parsed_document(BeirDoc("7", "A title", "Some text."))
    assert doc.path == "beir:7" and doc.title == "A title" and doc.text == "Some text."
    assert [(b.start, b.end) for b in doc.blocks] == [(0, 10)]


def test_cli_tunes_on_the_corpus_only_when_asked(beir_dir, tmp_path, monkeypatch, fake_models):
    _settings_env(monkeypatch, tmp_path)
    runner = CliRunner()
    args = ["eval", "retrieval", str(beir_dir), "--json", "--kb", str(tmp_path / "ev")]
    out = json.loads(runner.invoke(app, args).stdout)
    # Nine documents cannot make enough pseudo-queries: tuning is skipped, the default is used.
    assert out["tuning"]["status"].startswith("skipped: ") and "pseudo-queries" in out["tuning"]["status"]
    assert out["weights"] == {"used": 0.6, "tuned": None, "default": 0.6, "source": "default"}
    assert set(out["modes"]) == {"dense", "keyword", "hybrid"}, "no second hybrid run when the weight is the default"
    out = json.loads(runner.invoke(app, [*args, "--no-tune"]).stdout)
    assert out["tuning"]["status"] == "not asked (--no-tune)"
    given = json.loads(runner.invoke(app, [*args, "--dense-weight", "0.2", "--mode", "hybrid"]).stdout)
    assert given["weights"]["used"] == 0.2 and given["weights"]["source"] == "given"
    assert set(given["modes"]) == {"hybrid", "hybrid-default"}
    assert given["modes"]["hybrid-default"]["metrics"] == out["modes"]["hybrid"]["metrics"]


def test_cli_uses_a_recorded_tuning(beir_dir, tmp_path, monkeypatch, fake_models):
    from kb.knowledge import write_fusion

    _settings_env(monkeypatch, tmp_path)
    runner = CliRunner()
    args = ["eval", "retrieval", str(beir_dir), "--json", "--kb", str(tmp_path / "ev"), "--mode", "hybrid"]
    assert runner.invoke(app, [*args, "--no-tune"]).exit_code == 0
    write_fusion(tmp_path / "ev", {"dense_weight": 1.0, "chosen_by": "test"})
    out = json.loads(runner.invoke(app, [*args, "--no-tune"]).stdout)
    assert out["weights"]["source"] == "tuned" and out["weights"]["used"] == 1.0
    dense = json.loads(runner.invoke(app, [*args[:-2], "--mode", "dense", "--no-tune"]).stdout)
    assert out["modes"]["hybrid"]["metrics"] == dense["modes"]["dense"]["metrics"], "weight 1 ranks as dense"
    text = runner.invoke(app, [a for a in args if a != "--json"] + ["--no-tune"]).stdout
    assert "hybrid dense weight 1.00 (tuned; default 0.6)" in text
    assert [line.split()[0] for line in text.splitlines()[3:5]] == ["hybrid", "hybrid-default"]


def test_halves_split_the_judged_queries(beir_dir, tmp_path, monkeypatch, fake_models):
    from kb.eval.retrieval import query_half, select_half

    data = load_beir(beir_dir)
    a, b = select_half(data, "a"), select_half(data, "b")
    assert sorted([*a.queries, *b.queries]) == sorted(data.queries) and not set(a.queries) & set(b.queries)
    assert set(a.qrels) <= set(a.queries) | {q for q in data.qrels if query_half(q) == "a"}
    _settings_env(monkeypatch, tmp_path)
    out = json.loads(CliRunner().invoke(app, ["eval", "retrieval", str(beir_dir), "--json", "--half", "B"]).stdout)
    assert out["half"] == "b" and out["queries"] == len(b.queries)
    bad = CliRunner().invoke(app, ["eval", "retrieval", str(beir_dir), "--half", "c"])
    assert isinstance(bad.exception, InputError) and "unknown half" in str(bad.exception)
