"""What a newcomer's first hour hits, each checked through the real `kb` command (a subprocess, so
the one error handler of cli.app.main runs) or Typer's CliRunner: refusals that explain
themselves, signs of life, Ctrl-C, failed commands that create nothing, files that can never be
read, input checks, `kb config`, citations that say where, and output polish."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.kbproc import kb_env, run_kb, start_kb, wait_for

LEAVE = (
    "# Leave policy\n\n## Annual leave\n\nFull-time employees receive 28 days of annual leave per calendar year. "
    "Up to five unused days may be carried over until 31 March of the following year.\n"
)
HTML = (
    "<html><head><title>IT Security Policy</title></head><body><h1>IT Security Policy</h1>"
    "<p>This policy applies to every employee, contractor and visitor who uses company systems or data.</p>"
    "<h2>2. Passwords and Authentication</h2><p>Passwords must be at least fourteen characters long and are "
    "rotated every ninety days. Multi-factor authentication is mandatory for remote access.</p></body></html>"
)


@pytest.fixture
def env(tmp_path):
    return kb_env(tmp_path)


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "leave.md").write_text(LEAVE)
    (folder / "security.html").write_text(HTML)
    return folder


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """The CLI in-process (fake embedder, the test's knowledge-base home)."""
    from cli.app import app

    monkeypatch.setenv("KB_EMBED_MODEL", "fake:")
    monkeypatch.setenv("KB_HOME", str(tmp_path / "kb-home"))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


# ---------------------------------------------------------------- 1. refusals explain themselves


def test_a_refusal_says_why_and_names_the_setting_that_tunes_it(cli, docs):
    assert cli("ingest", docs).exit_code == 0
    # The hashing embedder finds the leave passage relevant but not answerable at a strict threshold.
    r = cli(
        "ask", "How many days of annual leave do full-time employees get?", "--extractive", "--min-answerability", "1"
    )
    assert r.exit_code == 0, r.output
    assert "The documents do not answer this question." in r.stdout
    assert "Why: the closest passages do not match the question well enough" in r.stdout
    assert "min_answerability = 1" in r.stdout and "--min-answerability" in r.stdout
    answered = cli(
        "ask", "How many days of annual leave do full-time employees get?", "--extractive", "--min-answerability", "0"
    )
    assert answered.exit_code == 0 and "Sources:" in answered.stdout and "Why:" not in answered.stdout


def test_a_refusal_for_a_name_no_document_mentions_says_no_threshold_helps(cli, docs, monkeypatch):
    monkeypatch.setenv("KB_MIN_RELEVANCE", "0")  # past the relevance check, to the gate's name check
    assert cli("ingest", docs).exit_code == 0
    r = cli("ask", "How many days of leave does Globex give?", "--extractive", "--min-answerability", "0")
    assert r.exit_code == 0, r.output
    assert "The documents do not answer this question." in r.stdout
    text = " ".join(r.stdout.split())
    assert 'Why: the documents never mention "Globex".' in text
    assert "whatever min_answerability is" in text and "kb ingest" in text


def test_a_partial_answer_says_which_thresholds_answer_it_in_full_or_refuse_it(cli, docs):
    assert cli("ingest", docs).exit_code == 0
    question = "What does the IT Security Policy say about visitors?"  # names the document's title
    score = json.loads(cli("ask", question, "--extractive", "--json", "--min-answerability", "0").stdout)[
        "answerability"
    ]
    # A threshold a little above the score: the evidence is weak, but its document is what the question names.
    r = cli("ask", question, "--extractive", "--min-answerability", f"{min(1.0, score + 0.05):.2f}")
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "The documents only partly answer this question." in text and "Sources:" in text
    found = re.search(
        r"at (\d\.\d+) or below such a question is answered in full; at (\d\.\d+) or above it is refused", text
    )
    assert found and "`kb ask --min-answerability`" in text, text
    full, refuse = found.groups()
    # What the note promises is what those thresholds do.
    answer = json.loads(cli("ask", question, "--extractive", "--json", "--min-answerability", full).stdout)
    assert not answer["refused"] and not answer["partial"]
    assert json.loads(cli("ask", question, "--extractive", "--json", "--min-answerability", refuse).stdout)["refused"]


def test_min_answerability_outside_0_to_1_is_refused_naming_it(env, docs):
    r = run_kb(env, "ask", "anything", "--min-answerability", "5")
    assert r.returncode == 1
    assert "min_answerability must be between 0 and 1 (got 5.0, from the command line)" in r.stderr


# ---------------------------------------------------------------- 2. signs of life


def test_the_one_time_model_preparation_is_announced(capsys):
    from cli.common import prepare_embedder

    class Unprepared:
        prepared = False

        def needs_export(self):
            return not self.prepared

        def prepare(self):
            self.prepared = True

    embedder = Unprepared()
    prepare_embedder(embedder)
    assert embedder.prepared
    assert "preparing the embedding model (once" in capsys.readouterr().err
    prepare_embedder(embedder)  # ready now: nothing to say
    assert capsys.readouterr().err == ""


def test_no_spinner_when_stderr_is_not_a_terminal(env, docs):
    assert run_kb(env, "ingest", docs).returncode == 0
    r = run_kb(env, "ask", "annual leave days", "--extractive")
    assert r.returncode == 0
    assert "searching" not in r.stderr and "\x1b[" not in r.stderr


# ---------------------------------------------------------------- 3. Ctrl-C


def test_ctrl_c_during_ingest_says_what_was_kept(tmp_path):
    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(12):
        (docs / f"note{i:02}.md").write_text(f"# Note {i}\n\n" + f"Topic {i} word. " * 40)
    # About 25 s of embedding in all: on a loaded machine the interrupt, sent once the first file
    # is stored, must still find the ingest running (at 10 s it once arrived after the last file).
    env = kb_env(tmp_path, delay=0.5, KB_EMBED_BATCH="1")
    proc = start_kb(env, "ingest", docs)
    db = Path(env["KB_HOME"]) / "kb.sqlite"

    def stored() -> int:
        try:
            with contextlib.closing(sqlite3.connect(db, timeout=1)) as con:
                return int(con.execute("SELECT count(*) FROM documents").fetchone()[0])
        except sqlite3.Error:
            return 0

    assert wait_for(lambda: db.is_file() and stored() >= 1, timeout=120)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = [x for x in err.splitlines() if x.startswith("interrupted:")]
    assert line and line[0].endswith("of 12 files stored; run again to finish"), err
    kept = int(line[0].split()[1])
    assert 0 <= kept < 12 and kept <= stored() <= kept + 1  # an interrupt may fall between a commit and its report
    again = run_kb(env, "ingest", docs, "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["totals"]["documents"] == 12


# ---------------------------------------------------------------- 4. a failed command creates nothing


def test_ingest_of_a_missing_path_creates_no_knowledge_base(env, tmp_path):
    target = tmp_path / "new-kb"
    r = run_kb(env, "ingest", tmp_path / "does-not-exist", "--kb", target)
    assert r.returncode == 1 and "does-not-exist: no such file or folder" in r.stderr
    assert not target.exists()


def test_ask_and_search_on_an_empty_knowledge_base_say_how_to_fill_it(env, tmp_path):
    only_empty = tmp_path / "empty-docs"
    only_empty.mkdir()
    (only_empty / "empty.txt").write_text("")
    assert run_kb(env, "ingest", only_empty).returncode == 2
    for args in (("ask", "How many days of leave?", "--extractive"), ("search", "leave")):
        r = run_kb(env, *args)
        assert r.returncode == 1, r.stderr
        assert "is empty (1 file could not be read: `kb status --failed`)" in r.stderr
        assert "add documents with `kb ingest FOLDER`" in r.stderr


# ---------------------------------------------------------------- 5. files that can never be read


def test_a_known_unchanged_failure_does_not_fail_every_sync(env, docs):
    (docs / "empty.txt").write_text("")
    first = run_kb(env, "ingest", docs)
    assert first.returncode == 2 and "failed: " in first.stderr and "empty.txt: empty file" in first.stderr
    second = run_kb(env, "ingest", docs)
    assert second.returncode == 0, second.stderr
    assert "1 failed (1 known from earlier runs)" in second.stderr
    assert "1 file failed as before and was not read again" in second.stderr
    assert "failed: " not in second.stderr  # not reported as a new failure
    assert run_kb(env, "ingest", docs, "--strict").returncode == 2
    known = json.loads(run_kb(env, "ingest", docs, "--json").stdout)["files"]
    assert [f["known"] for f in known if f["path"].endswith("empty.txt")] == [True]
    listed = run_kb(env, "status", "--failed")
    assert listed.returncode == 0 and "failed" in listed.stdout and "empty.txt: empty file" in listed.stdout
    status = run_kb(env, "status")
    assert "1 file could not be read: `kb status --failed`" in status.stdout
    ask = run_kb(env, "ask", "annual leave", "--extractive")
    assert "1 file could not be read" in ask.stderr and "kb status --failed" in ask.stderr
    # A changed file is read again: fixed, it is indexed and forgotten as a failure.
    (docs / "empty.txt").write_text("The canteen opens at eight o'clock every working day.")
    fixed = run_kb(env, "ingest", docs)
    assert fixed.returncode == 0 and "1 added" in fixed.stderr
    assert "No file failed" in run_kb(env, "status", "--failed").stdout


def test_retry_failed_reads_a_known_failure_again(env, docs):
    (docs / "empty.txt").write_text("")
    assert run_kb(env, "ingest", docs).returncode == 2
    again = run_kb(env, "ingest", docs, "--retry-failed")
    assert again.returncode == 2 and "failed: " in again.stderr


def test_remove_inside_an_ingested_folder_says_it_comes_back_or_ignores_it(env, docs):
    assert run_kb(env, "ingest", docs).returncode == 0
    r = run_kb(env, "remove", docs / "leave.md")
    assert r.returncode == 0
    assert "still exists: the next `kb ingest` of the folder holding it adds it again" in r.stderr
    assert "kb remove --ignore" in r.stderr
    assert "1 added" in run_kb(env, "ingest", docs).stderr  # it came back, as announced
    r = run_kb(env, "remove", docs / "leave.md", "--ignore")
    assert r.returncode == 0 and "added leave.md to" in r.stderr
    assert (docs / ".kbignore").read_text().splitlines() == ["leave.md"]
    back = run_kb(env, "ingest", docs, "--json")
    assert not [f for f in json.loads(back.stdout)["files"] if f["path"].endswith("leave.md")]


# ---------------------------------------------------------------- 6. input checks at the edge


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("search", "vacation", "-k", "0"), "-k must be at least 1 (got 0)"),
        (("search", "vacation", "-k", "-3"), "-k must be at least 1 (got -3)"),
        (("search", ""), "the query is empty"),
        (("ask", "  "), "the question is empty"),
        (("ask", "vacation", "-k", "0"), "top_k must be at least 1 (got 0, from the command line)"),
    ],
)
def test_bad_values_are_refused_naming_the_one_that_is_wrong(env, docs, args, message):
    assert run_kb(env, "ingest", docs).returncode == 0
    r = run_kb(env, *args)
    assert r.returncode == 1
    assert f"kb: error: {message}" in r.stderr, r.stderr
    assert "threads" not in r.stderr and "n_ctx" not in r.stderr


def test_a_bad_value_in_the_config_file_names_the_file(env, tmp_path):
    conf = tmp_path / "kb.toml"
    conf.write_text("min_answerability = 5\n")
    r = run_kb(env, "status", "--config", conf)
    assert r.returncode == 1
    assert f"min_answerability must be between 0 and 1 (got 5.0, from {conf})" in r.stderr


# ---------------------------------------------------------------- 7. kb config


def test_config_shows_the_file_and_where_each_value_comes_from(env, tmp_path):
    conf = tmp_path / "kb.toml"
    conf.write_text("top_k = 8\n")
    env = {**env, "KB_CONFIG": str(conf), "KB_THREADS": "3"}
    r = run_kb(env, "config", "--kb", tmp_path / "elsewhere")
    assert r.returncode == 0, r.stderr
    assert f"Config file: {conf}" in r.stdout
    assert f"top_k = 8    (from {conf})" in r.stdout
    assert "threads = 3    (from KB_THREADS)" in r.stdout
    assert f"home = '{tmp_path / 'elsewhere'}'    (from the command line)" in r.stdout
    assert "search_mode = 'hybrid'    (default)" in r.stdout
    assert r.stdout.count("KB_EMBED_BACKEND") == 1, "the environment variable is named once"
    data = json.loads(run_kb(env, "config", "--json").stdout)
    assert data["config_file"] == str(conf)
    assert data["settings"]["top_k"] == {"value": 8, "source": "file"}
    assert data["settings"]["threads"] == {"value": 3, "source": "env KB_THREADS"}


def test_config_without_a_file_says_defaults_apply(env):
    r = run_kb(env, "config")
    assert r.returncode == 0 and "Config file: none (" in r.stdout and "defaults apply" in r.stdout


def test_an_unknown_setting_suggests_the_right_name(env, tmp_path):
    conf = tmp_path / "kb.toml"
    conf.write_text("top_kk = 3\n")
    r = run_kb(env, "config", "--config", conf)
    assert r.returncode == 1 and "unknown setting top_kk (did you mean top_k?)" in r.stderr


def test_an_unknown_kb_variable_is_warned_about(env):
    r = run_kb({**env, "KB_TOP_KK": "3"}, "config")
    assert r.returncode == 0
    assert "kb: warning: KB_TOP_KK is not a kb setting, ignored (did you mean KB_TOP_K?)" in r.stderr


# ---------------------------------------------------------------- 8. citations say where


def test_citations_and_hits_show_the_heading_path(cli, docs, monkeypatch):
    # Small chunks, so that the passage about passwords starts at its own heading.
    monkeypatch.setenv("KB_CHUNK_TOKENS", "24")
    monkeypatch.setenv("KB_CHUNK_OVERLAP", "0")
    assert cli("ingest", docs).exit_code == 0
    hits = cli("search", "passwords fourteen characters multi-factor", "-k", "1")
    assert hits.exit_code == 0
    assert "security.html (§ 2. Passwords and Authentication)" in hits.stdout, hits.stdout
    answer = cli("ask", "How long must passwords be?", "--extractive", "--min-answerability", "0")
    assert answer.exit_code == 0
    assert "security.html, § 2. Passwords and Authentication" in answer.stdout, answer.stdout


# ---------------------------------------------------------------- 9. output polish


def test_search_full_shows_the_whole_passage(cli, tmp_path, monkeypatch):
    folder = tmp_path / "long"
    folder.mkdir()
    tail = "The last sentence of this long passage mentions the zebra crossing."
    (folder / "long.txt").write_text("Parking rules. " * 30 + tail)
    monkeypatch.setenv("KB_CHUNK_TOKENS", "250")
    monkeypatch.setenv("KB_CHUNK_OVERLAP", "0")
    assert cli("ingest", folder).exit_code == 0
    short = cli("search", "parking rules zebra", "-k", "1")
    full = cli("search", "parking rules zebra", "-k", "1", "--full")
    assert "zebra" not in short.stdout and "…" in short.stdout
    assert "zebra crossing" in " ".join(full.stdout.split())
    assert "score " in short.stdout and "relevance" not in short.stdout, "one number per hit"


def test_counts_agree_with_their_nouns(env, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "leave.md").write_text(LEAVE)
    r = run_kb(env, "ingest", folder)
    assert "1 file: 1 added" in r.stderr and "1 document, 1 chunk." in r.stderr, r.stderr
    assert "1 files" not in r.stderr and "1 chunks" not in r.stderr


def test_a_jpeg_named_pdf_is_not_a_pdf(env, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "scan.pdf").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 200)
    r = run_kb(env, "ingest", folder)
    assert r.returncode == 2
    assert "scan.pdf: not a PDF (looks like JPEG)" in r.stderr
    assert "PdfStreamError" not in r.stderr


def test_with_json_an_error_is_json_on_stdout_too(env, tmp_path):
    r = run_kb(env, "search", "leave", "--json", "--kb", tmp_path / "nothing-here")
    assert r.returncode == 1
    assert r.stderr.startswith("kb: error: no knowledge base at")
    assert json.loads(r.stdout) == {"error": r.stderr.strip().removeprefix("kb: error: "), "code": 1}
    usage = run_kb(env, "search", "leave", "--json", "--mode")  # a usage error: the option lacks its value
    assert usage.returncode == 1 and json.loads(usage.stdout)["code"] == 1


def test_version(env):
    r = run_kb(env, "--version")
    assert r.returncode == 0 and r.stdout.startswith("kb ")


def test_a_spinner_says_what_ask_is_doing_on_a_terminal(tmp_path, docs):
    import os
    import pty
    import subprocess
    import threading

    from tests.kbproc import kb_cmd

    env = kb_env(tmp_path)
    assert run_kb(env, "ingest", docs).returncode == 0
    slow = {**env, "KB_EMBED_MODEL": "fake:delay=0.05", "TERM": "xterm", "COLUMNS": "80"}  # a few seconds of embedding
    leader, follower = pty.openpty()
    seen = bytearray()

    def drain() -> None:  # read the terminal while kb writes to it, so that it never blocks
        with contextlib.suppress(OSError):  # EIO once the last writer has closed it
            while chunk := os.read(leader, 65536):
                seen.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        proc = subprocess.run(
            kb_cmd("ask", "annual leave days", "--extractive"),
            env=slow,
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=120,
        )
    finally:
        os.close(follower)
        reader.join(timeout=10)
        os.close(leader)
    assert proc.returncode == 0 and "Sources:" in proc.stdout
    assert "searching" in seen.decode(errors="replace"), bytes(seen[-500:])
