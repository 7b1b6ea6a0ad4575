"""Word .docx parsing: document order, headings, tables, damaged files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx
import pytest

from ingest.docx import parse_docx
from ingest.errors import EmptyDocument, ParseError
from ingest.formats import parse_file


def _handbook(path: Path) -> None:
    document = docx.Document()
    document.core_properties.title = "Employee Handbook"
    document.add_heading("Handbook", 0)
    document.add_paragraph("Welcome to the company.")
    document.add_heading("Leave", 1)
    document.add_paragraph("You get 25 days of leave.")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate([("Type", "Days", "Paid"), ("Annual", "25", "yes"), ("Sick", "", "yes")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Parental leave", 2)
    document.add_paragraph("Sixteen weeks.")
    document.add_heading("Expenses", 1)
    para = document.add_paragraph("Submit receipts ")
    para.add_run("within 30 days").bold = True
    para.add_run(".")
    document.save(str(path))


def test_docx_order_headings_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "handbook.docx"
    _handbook(path)
    doc = parse_docx(path)
    assert doc.format == "docx"
    assert doc.title == "Employee Handbook"
    got = [(doc.block_text(b), b.heading_path) for b in doc.blocks]
    assert got == [
        ("Handbook", ("Handbook",)),
        ("Welcome to the company.", ("Handbook",)),
        ("Leave", ("Handbook", "Leave")),
        ("You get 25 days of leave.", ("Handbook", "Leave")),
        # Table rows are blocks of their own, each value named by its column.
        ("Type: Annual; Days: 25; Paid: yes", ("Handbook", "Leave")),
        ("Type: Sick; Paid: yes", ("Handbook", "Leave")),
        ("Parental leave", ("Handbook", "Leave", "Parental leave")),
        ("Sixteen weeks.", ("Handbook", "Leave", "Parental leave")),
        ("Expenses", ("Handbook", "Expenses")),
        ("Submit receipts within 30 days.", ("Handbook", "Expenses")),
    ]
    assert all(b.page is None for b in doc.blocks)
    assert [b.kind for b in doc.blocks].count("row") == 2


def test_docx_title_falls_back_to_title_style(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("Security Policy", 0)
    document.add_paragraph("Lock your screen.")
    path = tmp_path / "policy.docx"
    document.save(str(path))
    assert parse_docx(path).title == "Security Policy"


def test_docx_merged_cells_not_repeated(tmp_path: Path) -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    merged = table.cell(0, 0).merge(table.cell(0, 2))
    merged.text = "Quarterly totals"
    for c, value in enumerate(("Q1", "Q2", "Q3")):
        table.cell(1, c).text = value
    path = tmp_path / "merged.docx"
    document.save(str(path))
    # One cell over three columns is no header row: both rows stay plain, the merged text once.
    doc = parse_docx(path)
    assert [doc.block_text(b) for b in doc.blocks] == ["Quarterly totals", "Q1 | Q2 | Q3"]


def test_empty_docx(tmp_path: Path) -> None:
    path = tmp_path / "blank.docx"
    docx.Document().save(str(path))
    with pytest.raises(EmptyDocument):
        parse_docx(path)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "fake.docx"
    path.write_text("just some text pretending", encoding="utf-8")
    with pytest.raises(ParseError, match="not a valid DOCX"):
        parse_file(path)


def test_zip_without_word_document(tmp_path: Path) -> None:
    path = tmp_path / "other.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ParseError) as err:
        parse_file(path)
    assert "DOCX" in str(err.value) and "\n" not in str(err.value)


def test_damaged_document_xml(tmp_path: Path) -> None:
    good = tmp_path / "good.docx"
    _handbook(good)
    bad = tmp_path / "bad.docx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "word/document.xml":
                data = data[: len(data) // 2]  # cut the XML in half
            dst.writestr(item, data)
    with pytest.raises(ParseError) as err:
        parse_file(bad)
    assert str(err.value).startswith("corrupt DOCX: ")


def test_truncated_zip(tmp_path: Path) -> None:
    good = tmp_path / "good.docx"
    _handbook(good)
    bad = tmp_path / "truncated.docx"
    bad.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ParseError):
        parse_file(bad)
