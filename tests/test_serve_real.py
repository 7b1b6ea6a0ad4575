"""`kb serve` with the real models on the samples: the OpenAI client, group isolation, and the web
page in a real headless browser (Debian's chromium driven by Playwright).

The browser test fails, never skips, when chromium is missing: `.ci/run` installs it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from cli.app import app
from kb.config import Settings
from kb.server.run import ThreadedServer
from kb.server.service import Service
from kb.tokens import hash_token, parse_tokens

pytestmark = pytest.mark.models

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SECRET = "The acquisition of Northwind Traders is priced at 41 million euros and signs on 3 June."
LEAKS = ("41 million", "3 June", "board-minutes")
STAFF, FINANCE = "kb-staff-token", "kb-finance-token"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-real")
    docs = root / "docs"
    shutil.copytree(SAMPLES, docs)
    (docs / "finance").mkdir()
    (docs / "finance" / "board-minutes.md").write_text(f"# Board minutes\n\n{SECRET}\n", encoding="utf-8")
    (docs / "finance" / ".kbgroups").write_text("finance\n", encoding="utf-8")
    home = root / "kb"
    res = CliRunner().invoke(app, ["ingest", str(docs), "--kb", str(home), "--json"])
    assert res.exit_code == 0, res.output
    files = {Path(f["path"]).name: f["status"] for f in json.loads(res.stdout)["files"]}
    assert files["board-minutes.md"] == "added" and files["employee-handbook.pdf"] == "added", files
    tokens = parse_tokens(
        {
            "staff": {"sha256": hash_token(STAFF), "groups": ["staff"]},
            "cfo": {"sha256": hash_token(FINANCE), "groups": ["finance"]},
        }
    )
    settings = dataclasses.replace(Settings.load().with_overrides(home=home), tokens=tokens)
    service = Service(settings)
    with ThreadedServer(service) as srv:
        srv.service = service
        yield srv
    service.close()


def _oai(srv, token=STAFF):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=token, max_retries=0, timeout=120)


def test_streamed_answer_with_the_default_model_cites_file_page_and_quote(real_server):
    stream = _oai(real_server).chat.completions.create(
        model=real_server.service.name,
        messages=[{"role": "user", "content": "How many vacation days do I get per year as a full-time employee?"}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    kb = chunks[-1].model_extra["kb"]
    assert "28" in text and not kb["refused"]
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
    assert markers == {c["n"] for c in kb["citations"]}
    handbook = [c for c in kb["citations"] if c["path"].endswith("employee-handbook.pdf")]
    assert handbook and handbook[0]["page_start"] <= 3 <= handbook[0]["page_end"]
    q = handbook[0]["quote"]
    assert handbook[0]["text"][q["start"] : q["end"]] == q["text"] and "28" in q["text"]


def test_the_finance_secret_never_reaches_the_staff_token(real_server):
    questions = [
        "What is the acquisition of Northwind Traders priced at?",
        "When does the Northwind acquisition sign?",
        "board minutes",
        "How many vacation days do I get per year as a full-time employee?",
    ]
    seen = []
    with httpx.Client(base_url=real_server.url, headers={"Authorization": f"Bearer {STAFF}"}, timeout=120) as c:
        for q in questions:
            seen.append(c.post("/v1/search", json={"query": q, "k": 20}).text)
            seen.append(c.post("/v1/ask", json={"question": q}).text)
            msgs = [{"role": "user", "content": q}]
            seen.append(c.post("/v1/chat/completions", json={"messages": msgs, "stream": True}).text)
            follow = [
                *msgs,
                {"role": "assistant", "content": "I don't know."},
                {"role": "user", "content": "and its price?"},
            ]
            seen.append(c.post("/v1/chat/completions", json={"messages": follow}).text)
    assert not [(leak, s[:200]) for s in seen for leak in LEAKS if leak in s]
    with httpx.Client(base_url=real_server.url, headers={"Authorization": f"Bearer {FINANCE}"}, timeout=120) as c:
        assert "41 million" in c.post("/v1/search", json={"query": questions[0]}).text


def _chromium() -> str:
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).is_file():
        pytest.fail("chromium not found: install Debian's chromium (apt-get install chromium; .ci/run does)")
    return exe


def test_web_page_streams_a_cited_answer_and_expands_a_citation(real_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = context.new_page()
            page.goto(real_server.url + "/")
            expect(page.locator("#token-form")).to_be_visible()
            page.fill("#token", STAFF)
            page.click("#token-form button")
            page.fill("#question", "How many vacation days do I get per year as a full-time employee?")
            page.click("#ask-button")
            answer = page.locator(".turn .answer").first
            expect(page.locator(".turn .citation").first).to_be_visible(timeout=120_000)
            assert "28" in answer.inner_text()
            cite = answer.locator("button.cite").first
            n = cite.get_attribute("data-n")
            cite.click()
            item = page.locator(f'.turn .citation[data-n="{n}"]')
            passage = item.locator(".passage")
            expect(passage).to_be_visible()
            assert "employee-handbook.pdf" in item.locator(".where").inner_text()
            assert re.search(r"pp?\. \d", item.locator(".where").inner_text())
            assert "28" in passage.locator("mark").inner_text()
            page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)

            page.click("#tab-search")
            page.fill("#query", "expense claims deadline")
            page.click("#search-button")
            expect(page.locator("#results li.hit").first).to_be_visible(timeout=30_000)
            assert "expense-policy.html" in page.locator("#results").inner_text()
            assert not [leak for leak in LEAKS if leak in page.content()]
        finally:
            context.close()
