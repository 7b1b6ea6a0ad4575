"""PDF parsing: pages, text clean-up, encryption, damaged files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import EmptyDocument, EncryptedFile, ParseError
from ingest.formats import parse_file
from ingest.pdf import clean_pdf_text, parse_pdf
from tests.ingest_fixtures import make_pdf, write_encrypted_pdf

ENGINES = pytest.mark.parametrize("engine", ["auto", "pdfium", "pypdf"])


@ENGINES
def test_pages_become_blocks_with_page_numbers(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf([["Quarterly report", "Revenue grew."], [], ["Outlook is stable."]], title="Q3 Report"))
    doc = parse_pdf(path, engine=engine)
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


@ENGINES
def test_empty_user_password_opens(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "restricted.pdf"
    write_encrypted_pdf(path, [["Only printing is restricted."]], user_password="", owner_password="owner-secret")
    assert parse_pdf(path, engine=engine).text == "Only printing is restricted."


@ENGINES
def test_given_password_opens(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "secret.pdf"
    write_encrypted_pdf(path, [["Top secret plans."]], user_password="s3cret", owner_password="owner")
    assert parse_pdf(path, password="s3cret", engine=engine).text == "Top secret plans."


@ENGINES
@pytest.mark.parametrize("password", ["", "wrong"])
def test_missing_or_wrong_password(tmp_path: Path, password: str, engine: str) -> None:
    path = tmp_path / "secret.pdf"
    write_encrypted_pdf(path, [["Top secret plans."]], user_password="s3cret", owner_password="owner")
    with pytest.raises(EncryptedFile, match=r"encrypted; no working password \(use --password\)"):
        parse_file(path, password=password, pdf_engine=engine)


@ENGINES
def test_no_text_is_empty_document(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf([[], []]))
    with pytest.raises(EmptyDocument, match=r"no extractable text \(scanned PDF\?\)"):
        parse_pdf(path, engine=engine)


@ENGINES
@pytest.mark.parametrize(
    "content",
    [b"%PDF-1.4\nthis is not really a pdf\n", make_pdf([["Some text here."]])[:120]],
    ids=["garbage", "truncated"],
)
def test_corrupt_pdf_is_a_parse_error(tmp_path: Path, content: bytes, engine: str) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    with pytest.raises(ParseError) as err:
        parse_file(path, pdf_engine=engine)
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
    doc = parse_file(path, pdf_engine="pypdf")
    assert [(doc.block_text(b), b.page) for b in doc.blocks] == [("Good page one.", 1), ("Good page three.", 3)]
    assert any(w.startswith("page 2: text extraction failed (ValueError") for w in doc.warnings)


def test_pypdf_log_messages_are_collected_not_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_pdf([["Text survives a bad xref."]])
    # Point startxref at the wrong offset: pypdf recovers and logs a warning.
    head, _, tail = data.rpartition(b"startxref\n")
    path = tmp_path / "badxref.pdf"
    path.write_bytes(head + b"startxref\n" + b"12" + tail[tail.index(b"\n") :])
    doc = parse_file(path, pdf_engine="pypdf")
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
        parse_file(path, pdf_engine="pypdf")


def test_missing_aes_support_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypdf import PageObject
    from pypdf.errors import DependencyError

    def needs_crypto(self: PageObject, *args: object, **kwargs: object) -> str:
        raise DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(PageObject, "extract_text", needs_crypto)
    path = tmp_path / "aes.pdf"
    path.write_bytes(make_pdf([["a"]]))
    with pytest.raises(ParseError, match="AES-encrypted PDF; install the 'cryptography' package"):
        parse_file(path, pdf_engine="pypdf")


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


def test_bare_page_numbers_that_count_up_are_dropped():
    from ingest.pdf import strip_running_lines

    # Printed numbers run one behind the page positions (an unnumbered cover); the figure "1,204"
    # at a page's foot and a lone "3" that does not follow the pages are content.
    topics = ["leave", "travel", "security", "pensions", "parking"]
    pages = [(1, "Cover\nAnnual report")]
    pages += [(i, f"{t.title()}\nThe rules about {t}.\n{i - 1}") for i, t in enumerate(topics, start=2)]
    pages += [(7, "Totals\nUnits sold\n1,204"), (8, "Notes\nSee note\n3")]
    out = dict(strip_running_lines(pages))
    assert out[1] == "Cover\nAnnual report"
    for i, t in enumerate(topics, start=2):
        assert out[i] == f"{t.title()}\nThe rules about {t}."
    assert out[7].endswith("1,204") and out[8].endswith("\n3")


def test_pdfium_hyphen_marker_meets_the_same_rule_as_pypdf():
    # PDFium joins a word broken at a line end and marks the hyphen U+FFFE.
    assert clean_pdf_text("exam\ufffeple and Jean\ufffePierre") == "example and Jean-\nPierre"


def test_a_page_pdfium_fails_on_is_read_by_pypdf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.pdf

    original = ingest.pdf._pdfium_text

    def flaky(doc: object, index: int) -> str:
        if index == 1:
            raise RuntimeError("PDFium: cannot load page")
        return original(doc, index)

    monkeypatch.setattr(ingest.pdf, "_pdfium_text", flaky)
    path = tmp_path / "mixed.pdf"
    path.write_bytes(make_pdf([["Page one."], ["Page two."], ["Page three."]]))
    read = ingest.pdf.read_pages(path)
    assert [t for _, t in read.pages] == ["Page one.", "Page two.", "Page three."]
    assert read.engines == {"pdfium": 2, "pypdf": 1} and not read.failures
    only = ingest.pdf.read_pages(path, engine="pdfium")
    assert [n for n, _ in only.pages] == [1, 3]
    assert only.failures == ["page 2: text extraction failed (RuntimeError: PDFium: cannot load page)"]


def test_a_file_pdfium_cannot_open_is_read_by_pypdf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.pdf

    def refuse(path: Path, password: str) -> object:
        raise ingest.pdf._PdfiumUnreadable("Failed to load document (PDFium: Data format error).")

    monkeypatch.setattr(ingest.pdf, "_open_pdfium", refuse)
    path = tmp_path / "odd.pdf"
    path.write_bytes(make_pdf([["Readable by pypdf."]]))
    doc = parse_pdf(path)
    assert doc.text == "Readable by pypdf."
    reason = "PDFium cannot open it (Failed to load document (PDFium: Data format error).)"
    assert doc.warnings == (f"read with pypdf: {reason}",)
    with pytest.raises(ParseError, match=r"^corrupt PDF: PDFium cannot open it"):
        parse_pdf(path, engine="pdfium")


def test_pypdf_gets_its_chance_when_pdfium_finds_no_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.pdf

    monkeypatch.setattr(ingest.pdf, "_pdfium_text", lambda doc, index: "")
    path = tmp_path / "fonts.pdf"
    path.write_bytes(make_pdf([["Only pypdf maps these glyphs."]]))
    doc = parse_pdf(path)
    assert doc.text == "Only pypdf maps these glyphs." and doc.warnings == ("read with pypdf: PDFium found no text",)


@ENGINES
def test_each_page_is_reported_as_read(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "three.pdf"
    path.write_bytes(make_pdf([["One."], ["Two."], ["Three."]]))
    ticks = []
    parse_file(path, pdf_engine=engine, on_page=lambda: ticks.append(1))
    assert len(ticks) == 3


def test_text_pdfium_garbles_is_read_by_pypdf_in_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.pdf

    original = ingest.pdf._pdfium_text
    letters = "\n".join("MEDTECH Interventional Solutions")  # glyphs placed one by one: one per line

    monkeypatch.setattr(ingest.pdf, "_pdfium_text", lambda doc, i: letters if i == 0 else original(doc, i))
    path = tmp_path / "table.pdf"
    path.write_bytes(make_pdf([["MEDTECH Interventional Solutions"], ["A normal page."]]))
    read = ingest.pdf.read_pages(path)
    assert dict(read.pages) == {1: "MEDTECH Interventional Solutions", 2: "A normal page."}
    assert read.engines == {"pypdf": 1, "pdfium": 1}
    assert dict(ingest.pdf.read_pages(path, engine="pdfium").pages)[1].startswith("M\nE\nD")


def test_doubtful_pdfium_text():
    from ingest.pdf import pdfium_text_is_doubtful

    assert pdfium_text_is_doubtful("\n".join("Worldwide 4,300 3,971 3,046 8.3"))
    assert pdfium_text_is_doubtful("يبيبَح habibi يبيبَح")  # right-to-left script, reversed by PDFium
    assert not pdfium_text_is_doubtful("A\nB\nC\nan ordinary page with a short list of letters above")
    assert not pdfium_text_is_doubtful("")
