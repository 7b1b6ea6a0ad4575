"""Access groups: tagging at ingest (--group rules, .kbgroups), the retrieval filter, tokens."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.app import app
from kb.answer import Answerer
from kb.config import Settings
from kb.errors import ConfigError, InputError
from kb.groups import Access, GroupResolver, check_group_name, read_groups_file, visible_documents
from kb.indexer import ingest
from kb.knowledge import KnowledgeBase
from kb.rebuild import rebuild
from kb.retrieval import Retriever
from kb.tokens import authenticate, hash_token, parse_tokens, token_entry
from kb.vectors import IndexPolicy, VectorIndex, build_ivf
from tests.fakes import ScriptedLLM

SECRET = "The merger codename is Bluebird and closes on 14 March."


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    _write(folder / "leave.md", "# Leave\n\nEmployees receive 28 days of annual leave per year.\n")
    _write(folder / "merger.md", "# Merger\n\nThe merger codename is Bluebird and closes on 14 March.\n")
    _write(folder / "hr" / "travel.md", "# Travel\n\nTrains are first class for journeys over four hours.\n")
    _write(folder / "hr" / ".kbgroups", "# people team\nhr\n")
    return folder


def _ingest(settings, fake_embedder, paths, groups=()):
    with KnowledgeBase(settings, embedder=fake_embedder, write=True) as kb:
        return ingest(kb, paths, isolate=False, groups=groups)


def _groups(settings, fake_embedder):
    with KnowledgeBase(settings, embedder=fake_embedder) as kb:
        by_doc = kb.store.groups_by_document()
        return {d.path.rsplit("/", 1)[-1]: by_doc.get(d.id, ()) for d in kb.store.documents()}


def test_group_rules_and_kbgroups_files_tag_documents(settings, fake_embedder, docs):
    _ingest(settings, fake_embedder, [docs])
    _ingest(settings, fake_embedder, [docs / "merger.md"], groups=("finance", "board"))
    assert _groups(settings, fake_embedder) == {"leave.md": (), "merger.md": ("board", "finance"), "travel.md": ("hr",)}
    # A later sync of the whole folder, without --group, keeps the rule: the secret stays hidden.
    report = _ingest(settings, fake_embedder, [docs])
    assert not report.failed
    assert _groups(settings, fake_embedder)["merger.md"] == ("board", "finance")


def test_groups_follow_kbgroups_changes_of_unchanged_files(settings, fake_embedder, docs):
    _ingest(settings, fake_embedder, [docs])
    _write(docs / ".kbgroups", "staff\n")
    _ingest(settings, fake_embedder, [docs])
    assert _groups(settings, fake_embedder) == {
        "leave.md": ("staff",),
        "merger.md": ("staff",),
        "travel.md": ("hr", "staff"),
    }


def test_an_unreadable_groups_file_keeps_the_document_out(settings, fake_embedder, docs):
    _write(docs / "hr" / ".kbgroups", "not a valid name!\n")
    report = _ingest(settings, fake_embedder, [docs])
    failed = {r.path.rsplit("/", 1)[-1]: r.reason for r in report.failed}
    assert list(failed) == ["travel.md"] and ".kbgroups:1" in failed["travel.md"]
    assert "travel.md" not in _groups(settings, fake_embedder)


def test_group_names_are_checked(tmp_path):
    assert check_group_name("finance-2024") == "finance-2024"
    for bad in ("", "*", "a b", "-x", "x" * 65):
        with pytest.raises(InputError):
            check_group_name(bad)
    f = _write(tmp_path / ".kbgroups", "finance\n# comment\n\nfinance  # again\nlegal\n")
    assert read_groups_file(f) == ("finance", "legal")
    resolver = GroupResolver([(str(tmp_path / "a"), "x")])
    assert resolver.groups_for(tmp_path / "a" / "b.txt") == ("finance", "legal", "x")
    assert resolver.groups_for(tmp_path / "ab.txt") == ("finance", "legal")  # a prefix of the name is no folder


def _visible(settings, fake_embedder, access, default_group=""):
    with KnowledgeBase(settings, embedder=fake_embedder) as kb:
        allow = visible_documents(kb.store, access, default_group)
        names = {d.id: d.path.rsplit("/", 1)[-1] for d in kb.store.documents()}
        return None if allow is None else sorted(names[i] for i in allow)


def test_visible_documents(settings, fake_embedder, docs):
    _ingest(settings, fake_embedder, [docs])
    _ingest(settings, fake_embedder, [docs / "merger.md"], groups=("finance",))
    assert _visible(settings, fake_embedder, Access.everything()) is None
    assert _visible(settings, fake_embedder, Access(frozenset({"*"}))) is None
    assert _visible(settings, fake_embedder, Access(frozenset())) == ["leave.md"]
    assert _visible(settings, fake_embedder, Access(frozenset({"finance"}))) == ["leave.md", "merger.md"]
    assert _visible(settings, fake_embedder, Access(frozenset({"hr"})), default_group="staff") == ["travel.md"]
    assert _visible(settings, fake_embedder, Access(frozenset({"staff"})), default_group="staff") == ["leave.md"]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_search_never_returns_a_hidden_document(settings, fake_embedder, docs, mode):
    _ingest(settings, fake_embedder, [docs])
    _ingest(settings, fake_embedder, [docs / "merger.md"], groups=("finance",))
    with KnowledgeBase(settings, embedder=fake_embedder) as kb:
        allow = visible_documents(kb.store, Access(frozenset({"hr"})))
        r = Retriever(kb)
        open_hits = r.search("merger codename Bluebird", 5, mode)
        assert any("Bluebird" in h.chunk.text for h in open_hits)
        hits = r.search("merger codename Bluebird annual leave", 5, mode, allow=allow)
        assert hits and all("Bluebird" not in h.chunk.text for h in hits)
        assert {h.chunk.doc_id for h in hits} <= set(allow or ())
        assert r.search("merger codename Bluebird", 5, mode, allow=set()) == []


def test_a_filter_does_not_starve_the_results(settings, fake_embedder, tmp_path):
    # 300 public documents match the query better than the only one the caller may see.
    folder = tmp_path / "many"
    for i in range(300):
        _write(folder / f"d{i:03}.txt", f"Parking permit rules number {i}: parking permit parking permit.\n")
    _write(folder / "mine" / "note.txt", "A parking permit is issued by the facilities desk.\n")
    _ingest(settings, fake_embedder, [folder])
    _ingest(settings, fake_embedder, [folder / "mine"], groups=("ops",))
    with KnowledgeBase(settings, embedder=fake_embedder) as kb:
        mine = {d.id for d in kb.store.documents() if d.path.endswith("note.txt")}
        for mode in ("dense", "keyword", "hybrid"):
            hits = Retriever(kb).search("parking permit", 3, mode, allow=mine)
            assert [h.chunk.path.rsplit("/", 1)[-1] for h in hits] == ["note.txt"], mode


def test_ivf_filter_falls_back_to_scanning_every_list():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(2000, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(1, 2001, dtype=np.int64)
    index = VectorIndex(16, IndexPolicy("ivf", 0, 1))
    index.index = build_ivf(16, vecs, ids, nlist=40)
    index.policy = IndexPolicy("ivf", 0, 1)  # one list probed: most allowed vectors are elsewhere
    allow = ids[::97]
    query = vecs[:1]
    found = index.search(query, 5, allow)[0]
    exact = sorted(((int(i), float(vecs[i - 1] @ query[0])) for i in allow), key=lambda p: -p[1])[:5]
    assert [i for i, _ in found] == [i for i, _ in exact]
    assert {i for i, _ in index.search(query, 50, allow)[0]} == set(allow.tolist())


def test_answers_never_see_a_hidden_passage(settings, fake_embedder, docs):
    _ingest(settings, fake_embedder, [docs])
    _ingest(settings, fake_embedder, [docs / "merger.md"], groups=("finance",))
    with KnowledgeBase(settings, embedder=fake_embedder) as kb:
        allow = visible_documents(kb.store, Access(frozenset()))
        llm = ScriptedLLM(["The merger codename is Bluebird [1]."])
        answerer = Answerer(Retriever(kb), llm, min_relevance=0.0, min_answerability=0.0)
        answer = answerer.ask("What is the merger codename?", allow=allow)
        prompt = " ".join(m["content"] for p in llm.prompts for m in p)
        assert "Bluebird" not in prompt
        assert all("Bluebird" not in s.hit.chunk.text for s in answer.sources + answer.candidates)
        assert "Bluebird" not in answer.text


def test_rebuild_keeps_group_rules(settings, fake_embedder, docs):
    _ingest(settings, fake_embedder, [docs])
    _ingest(settings, fake_embedder, [docs / "merger.md"], groups=("finance",))
    result = rebuild(settings, embedder=fake_embedder, isolate=False)
    assert result.swapped
    assert _groups(settings, fake_embedder) == {"leave.md": (), "merger.md": ("finance",), "travel.md": ("hr",)}


def test_tokens_parse_and_authenticate():
    tokens = parse_tokens({"alice": {"sha256": hash_token("s3cret"), "groups": ["finance"], "scopes": ["search"]}})
    assert authenticate(tokens, "s3cret") == tokens[0]
    assert tokens[0].access() == Access(frozenset({"finance"}), "alice")
    assert authenticate(tokens, "wrong") is None
    for bad in (
        {"bob": {"sha256": "abc", "groups": []}},
        {"bob": {"sha256": hash_token("x"), "groups": ["not ok"]}},
        {"bob": {"sha256": hash_token("x"), "groups": [], "scopes": ["admin"]}},
        {"bob": {"sha256": hash_token("x"), "groups": [], "colour": "red"}},
        ["not", "a", "table"],
    ):
        with pytest.raises(ConfigError):
            parse_tokens(bad)
    assert "[tokens.ci-bot]" in token_entry("ci-bot", "x", ("a",))


def test_tokens_come_from_the_config_file_only(tmp_path):
    cfg = _write(tmp_path / "c.toml", 'default_group = "staff"\n' + token_entry("alice", "t", ("finance",)))
    s = Settings.load(cfg, environ={"KB_TOKENS": "ignored"})
    assert s.default_group == "staff" and [t.name for t in s.tokens] == ["alice"]
    assert dataclasses.replace(s).tokens == s.tokens
    with pytest.raises(ConfigError):
        Settings.load(_write(tmp_path / "d.toml", 'default_group = "no good"\n'))


def test_cli_token_create_list_and_groups(tmp_path, docs, monkeypatch):
    cfg = tmp_path / "cfg" / "config.toml"
    monkeypatch.setenv("KB_CONFIG", str(cfg))
    runner = CliRunner()
    res = runner.invoke(app, ["token", "create", "alice", "-g", "finance"])
    assert res.exit_code == 0, res.output
    secret = res.stdout.strip().splitlines()[-1]
    tokens = Settings.load(cfg).tokens
    assert authenticate(tokens, secret) is not None and tokens[0].groups == ("finance",)
    assert oct(cfg.stat().st_mode)[-3:] == "600"
    res = runner.invoke(app, ["token", "create", "alice"])
    assert isinstance(res.exception, InputError) and "already exists" in str(res.exception)
    res = runner.invoke(app, ["token", "list"])
    assert "alice: groups finance" in res.output and secret not in res.output

    home = tmp_path / "kbh"
    res = runner.invoke(app, ["ingest", str(docs), "--kb", str(home), "-q", "--embed-model", "fake:dim=64"])
    assert res.exit_code == 0, res.output
    fake = ["--kb", str(home), "-q", "--embed-model", "fake:dim=64"]
    res = runner.invoke(app, ["ingest", str(docs / "merger.md"), "-g", "finance", *fake])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["groups", "--kb", str(home), "--json"])
    assert res.exit_code == 0, res.output
    assert '"finance": 1' in res.output and '"hr": 1' in res.output and '"ungrouped": 1' in res.output
    res = runner.invoke(app, ["groups", "remove", str(docs / "merger.md"), "--kb", str(home)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["groups", "--kb", str(home), "--json"])
    assert '"finance"' not in res.output and '"ungrouped": 2' in res.output
    res = runner.invoke(app, ["ingest", str(docs), "-g", "bad name", "--kb", str(home)])
    assert isinstance(res.exception, InputError) and "bad name" in str(res.exception)
