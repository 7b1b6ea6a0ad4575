"""The new formats through the whole command line (hashing embedder): ingest reports notes and
actionable skips, and search prints and returns where a passage lies inside a file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.common import location, position_label, source_label
from tests.ingest_fixtures import make_deck, make_mail, make_workbook


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    make_mail(docs / "mail.eml")
    make_deck(docs / "kickoff.pptx")
    make_workbook(docs / "budget.xlsx")
    (docs / "song.wav").write_bytes(b"RIFF" + b"\x00" * 100)
    return docs


def _run(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


def test_ingest_reports_notes_and_search_names_members_and_cells(folder, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KB_EMBED_MODEL", "fake:")
    home = str(tmp_path / "kb")
    result = _run("ingest", str(folder), "--kb", home, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    by_name = {Path(f["path"]).name: f for f in report["files"]}
    assert report["summary"]["added"] == 3 and report["summary"]["skipped"] == 1
    assert by_name["song.wav"]["reason"].startswith("audio or video file: not read; add its transcript")
    assert by_name["budget.xlsx"]["notes"] == ["sheet Budget: 3 rows indexed", "sheet Q1 Travel: 1 rows indexed"]
    # The attached image is read by OCR; this one is not a real image, so it is named with why.
    assert by_name["mail.eml"]["notes"] == ["logo.png: not read (not a readable image (unknown or damaged format))"]

    out = _run("search", "Q2 travel budget EUR 48,000", "--kb", home, "--json", "-k", "20")
    assert out.exit_code == 0, out.output
    hits = json.loads(out.stdout)["hits"]
    pdf = next(h for h in hits if h["member"] == "report.pdf")
    assert Path(pdf["path"]).name == "mail.eml" and pdf["locator"] is None
    assert (pdf["page_start"], pdf["page_end"]) == (1, 2)  # the attachment's own pages
    cells = next(h for h in hits if h["locator"] and h["locator"].startswith("Budget!"))
    assert cells["locator"] == "Budget!A1:E5" and cells["member"] is None
    slide = next(h for h in hits if Path(h["path"]).name == "kickoff.pptx")
    assert slide["locator"].startswith("slide")

    text = _run("search", "Q2 travel budget EUR 48,000", "--kb", home, "-k", "20")
    assert text.exit_code == 0
    assert "mail.eml › report.pdf (pp. 1-2)" in text.stdout
    assert "budget.xlsx (Budget!A1:E5, § Budget)" in text.stdout


def test_ingest_text_report_prints_notes_and_skip_reasons(folder, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KB_EMBED_MODEL", "fake:")
    result = _run("ingest", str(folder), "--kb", str(tmp_path / "kb"))
    assert result.exit_code == 0, result.output
    assert "note: " in result.stderr and "budget.xlsx: sheet Budget: 3 rows indexed" in result.stderr
    assert "song.wav: audio or video file: not read; add its transcript as a text file" in result.stderr


def _chunk(path: str, page: int | None, heading: tuple[str, ...], extra: dict) -> SimpleNamespace:
    return SimpleNamespace(path=path, page_start=page, page_end=page, heading_path=heading, extra=extra)


def test_location_labels() -> None:
    attachment = _chunk("/x/mail.eml", 3, ("report.pdf", "Costs"), {"member": "report.pdf"})
    assert source_label(attachment) == "/x/mail.eml › report.pdf"
    assert position_label(attachment) == "p. 3, § Costs"  # the member's name is not repeated as a heading
    assert location(attachment) == "/x/mail.eml › report.pdf, p. 3, § Costs"
    nested = _chunk("/x/a.zip", None, ("b.zip", "c.txt"), {"member": "b.zip › c.txt"})
    assert location(nested) == "/x/a.zip › b.zip › c.txt"
    sheet = _chunk("/x/budget.xlsx", None, ("Budget",), {"locator": "Budget!A2:F40"})
    assert location(sheet, headings=False) == "/x/budget.xlsx, Budget!A2:F40"
    spread = _chunk("/x/mail.eml", 1, ("report.pdf",), {"member": "report.pdf"})
    spread.page_end = 2
    assert location(spread) == "/x/mail.eml › report.pdf, pp. 1-2"
    assert location(spread, pages=(2, 2)) == "/x/mail.eml › report.pdf, p. 2"  # the quote's page
    plain = _chunk("/x/guide.md", None, ("Guide", "First day"), {})
    assert location(plain) == "/x/guide.md, § First day"  # the section below the document's title
