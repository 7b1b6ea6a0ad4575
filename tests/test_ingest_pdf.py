"""PDF parsing: pages, text clean-up, encryption, damaged files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import EmptyDocument, EncryptedFile, ParseError
from ingest.formats import parse_file
from ingest.pdf import clean_pdf_text, parse_pdf
from tests.ingest_fixtures import make_pdf, write_encrypted_pdf


def test_pages_become_blocks_with_page_numbers(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf([["Quarterly report", "Revenue grew."], [], ["Outlook is stable."]], title="Q3 Report"))
    doc = parse_pdf(path)
    assert doc.format == "pdf"
    assert doc.title == "Q3 Report"
    assert doc.n_pages == 3
    # The empty middle page has no block, and numbering stays 1-based on the real pages.
    assert [(doc.block_text(b), b.page) for b in doc.blocks] == [
        ("Quarterly report\nRevenue grew.", 1),
        ("Outlook is stable.", 3),
    ]
    assert doc.warnings == ()


def test_clean_pdf_text() -> None:
    raw = "An exam-\nple   of  text\twith ﬁne ligatures\r\nand\u00a0nbsp.\n\n\n\nJean-\nPierre stays; co-\n operate."
    assert clean_pdf_text(raw) == (
        "An example of text with fine ligatures\nand nbsp.\n\nJean-\nPierre stays; cooperate."
    )
    assert clean_pdf_text("soft\xad\nhyphen and in\xadside") == "softhyphen and inside"
    assert clean_pdf_text("nul\x00 and bell\x07 gone") == "nul and bell gone"


def test_empty_user_password_opens(tmp_path: Path) -> None:
    path = tmp_path / "restricted.pdf"
    write_encrypted_pdf(path, [["Only printing is restricted."]], user_password="", owner_password="owner-secret")
    assert parse_pdf(path).text == "Only printing is restricted."


def test_given_password_opens(tmp_path: Path) -> None:
    path = tmp_path / "secret.pdf"
    write_encrypted_pdf(path, [["Top secret plans."]], user_password="s3cret", owner_password="owner")
    assert parse_pdf(path, password="s3cret").text == "Top secret plans."


@pytest.mark.parametrize("password", ["", "wrong"])
def test_missing_or_wrong_password(tmp_path: Path, password: str) -> None:
    path = tmp_path / "secret.pdf"
    write_encrypted_pdf(path, [["Top secret plans."]], user_password="s3cret", owner_password="owner")
    with pytest.raises(EncryptedFile, match=r"encrypted; no working password \(use --password\)"):
        parse_file(path, password=password)


def test_no_text_is_empty_document(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf([[], []]))
    with pytest.raises(EmptyDocument, match=r"no extractable text \(scanned PDF\?\)"):
        parse_pdf(path)


@pytest.mark.parametrize(
    "content",
    [b"%PDF-1.4\nthis is not really a pdf\n", make_pdf([["Some text here."]])[:120]],
    ids=["garbage", "truncated"],
)
def test_corrupt_pdf_is_a_parse_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    with pytest.raises(ParseError) as err:
        parse_file(path)
    reason = str(err.value)
    assert reason.startswith("corrupt PDF: ") or reason.startswith("PDF has no pages")
    assert "\n" not in reason and str(path) not in reason


def test_failing_page_becomes_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypdf import PageObject

    original = PageObject.extract_text

    def flaky(self: PageObject, *args: object, **kwargs: object) -> str:
        text = original(self, *args, **kwargs)
        if "boom" in text:
            raise ValueError("bad content stream")
        return text

    monkeypatch.setattr(PageObject, "extract_text", flaky)
    path = tmp_path / "partly.pdf"
    path.write_bytes(make_pdf([["Good page one."], ["boom"], ["Good page three."]]))
    doc = parse_file(path)
    assert [(doc.block_text(b), b.page) for b in doc.blocks] == [("Good page one.", 1), ("Good page three.", 3)]
    assert any(w.startswith("page 2: text extraction failed (ValueError") for w in doc.warnings)


def test_pypdf_log_messages_are_collected_not_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_pdf([["Text survives a bad xref."]])
    # Point startxref at the wrong offset: pypdf recovers and logs a warning.
    head, _, tail = data.rpartition(b"startxref\n")
    path = tmp_path / "badxref.pdf"
    path.write_bytes(head + b"startxref\n" + b"12" + tail[tail.index(b"\n") :])
    doc = parse_file(path)
    assert doc.text == "Text survives a bad xref."
    assert any(w.startswith("pypdf reported") for w in doc.warnings)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_all_pages_failing_is_a_parse_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypdf import PageObject

    def always_fails(self: PageObject, *args: object, **kwargs: object) -> str:
        raise KeyError("/Font")

    monkeypatch.setattr(PageObject, "extract_text", always_fails)
    path = tmp_path / "broken-fonts.pdf"
    path.write_bytes(make_pdf([["a"], ["b"]]))
    with pytest.raises(ParseError, match=r"^text extraction failed on 2 of 2 pages \(page 1: "):
        parse_file(path)


def test_missing_aes_support_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypdf import PageObject
    from pypdf.errors import DependencyError

    def needs_crypto(self: PageObject, *args: object, **kwargs: object) -> str:
        raise DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(PageObject, "extract_text", needs_crypto)
    path = tmp_path / "aes.pdf"
    path.write_bytes(make_pdf([["a"]]))
    with pytest.raises(ParseError, match="AES-encrypted PDF; install the 'cryptography' package"):
        parse_file(path)


def test_running_headers_and_footers_are_dropped():
    from ingest.pdf import strip_running_lines

    topics = ["leave", "travel", "security", "pensions", "parking"]
    pages = [
        (i, f"ACME Corp | Handbook\n{t.title()}\nThe rules about {t} are here.\nACME - Page {i} of 5")
        for i, t in enumerate(topics, start=1)
    ]
    out = strip_running_lines(pages)
    for (_, text), t in zip(out, topics, strict=True):
        assert "ACME" not in text
        assert f"The rules about {t} are here." in text and t.title() in text
    short = pages[:2]
    assert strip_running_lines(short) == short  # too few pages to tell a running line


def test_repeated_lines_that_are_all_the_content_are_kept():
    from ingest.pdf import strip_running_lines

    pages = [(i, "Same label on every page") for i in range(1, 5)]
    assert strip_running_lines(pages) == pages
