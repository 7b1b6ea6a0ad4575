"""Tables kept as tables: rows that name their columns, chunks that start and end at rows, and
spreadsheet positions (sheet and cell range) carried into chunk metadata."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest

from ingest import xlsx
from ingest.builder import DocumentBuilder
from ingest.chunking import WhitespaceTokenizer, chunk_document
from ingest.delimited import parse_delimited
from ingest.errors import EmptyDocument, EncryptedFile, ParseError
from ingest.formats import parse_file
from ingest.html import parse_html
from ingest.tables import add_table, column_letter, looks_like_header, row_text, sheet_range
from ingest.xlsx import format_value, parse_xlsx
from tests.ingest_fixtures import make_workbook


def test_row_text_names_each_value_by_its_column() -> None:
    header = ["Destination", "Per diem", "Hotel limit per night"]
    assert row_text(header, ["Munich", "EUR 28", "EUR 170"]) == (
        "Destination: Munich; Per diem: EUR 28; Hotel limit per night: EUR 170"
    )
    assert row_text(header, ["Munich", "", "EUR 170", "extra"]) == (
        "Destination: Munich; Hotel limit per night: EUR 170; extra"
    )
    assert row_text(None, ["a", "", "c"]) == "a | c"


def test_header_detection() -> None:
    assert looks_like_header(["Team", "Location", "Cups"])
    assert not looks_like_header(["Blues", "STL", "1"])  # a number is data
    assert not looks_like_header(["Only one"])
    assert not looks_like_header(["Same", "Same"])
    assert not looks_like_header(["x" * 81, "y"])


def test_column_letters_and_ranges() -> None:
    assert [column_letter(n) for n in (1, 26, 27, 52, 703)] == ["A", "Z", "AA", "AZ", "AAA"]
    assert sheet_range("Budget", 2, 40, 6) == "Budget!A2:F40"
    assert sheet_range("Q1 2024", 3, 3, 2) == "'Q1 2024'!A3:B3"
    assert sheet_range(None, 2, 9, 3) == "A2:C9"


def _big_table(rows: int) -> DocumentBuilder:
    builder = DocumentBuilder()
    builder.add("Intro paragraph before the table.", heading_path=("Rates",))
    table = [["City", "Per diem", "Hotel limit"]] + [[f"City{i}", f"EUR {i}", f"EUR {100 + i}"] for i in range(rows)]
    add_table(builder, table, heading_path=("Rates",))
    builder.add("A closing paragraph after the table, with a few more words.", heading_path=("Rates",))
    return builder


def test_table_chunks_start_at_rows_and_every_row_names_its_columns() -> None:
    doc = _big_table(60).build(Path("t.html"), "html")
    rows = [(b.start, b.end) for b in doc.blocks if b.kind == "row"]
    assert len(rows) == 60
    chunks = chunk_document(doc, WhitespaceTokenizer(), size=40, overlap=10)
    assert len(chunks) > 5
    row_starts = {start for start, _ in rows}
    for chunk in chunks:
        inside = [r for r in rows if chunk.start < r[1] and r[0] < chunk.end]
        if not inside:
            continue
        # A chunk over table rows starts at a row (or before the table), never inside one ...
        assert chunk.start in row_starts or chunk.start < rows[0][0], chunk.text[:60]
        # ... ends at a row's end (or after the table) ...
        assert any(chunk.end == end for _, end in rows) or chunk.end > rows[-1][1], chunk.text[-60:]
        # ... and the column names come with every value: the header is in every chunk.
        for line in chunk.text.split("\n\n"):
            if line.startswith("City: "):
                assert "Per diem: " in line and "Hotel limit: " in line


def test_overlap_never_cuts_into_a_row_after_a_table() -> None:
    builder = DocumentBuilder()
    add_table(builder, [["Key", "Value"]] + [[f"k{i}", f"value number {i} here"] for i in range(8)])
    builder.add(" ".join(f"word{i}" for i in range(60)))
    doc = builder.build(Path("t.txt"), "text")
    row_starts = {b.start for b in doc.blocks if b.kind == "row"}
    row_spans = [(b.start, b.end) for b in doc.blocks if b.kind == "row"]
    for chunk in chunk_document(doc, WhitespaceTokenizer(), size=30, overlap=12):
        in_row = [s for s, e in row_spans if s <= chunk.start < e]
        assert not in_row or chunk.start in row_starts


def test_html_table_with_rowspan_and_colspan(tmp_path: Path) -> None:
    path = tmp_path / "rates.html"
    path.write_text(
        "<h2>Rates</h2><table>"
        "<thead><tr><th rowspan=2>City</th><th colspan=2>Per diem</th><th rowspan=2>Hotel</th></tr>"
        "<tr><th>full</th><th>partial</th></tr></thead>"
        "<tr><td rowspan=2>Munich</td><td>28</td><td>14</td><td>170</td></tr>"
        "<tr><td>30</td><td>15</td><td>180</td></tr>"
        "<tr><td colspan=3>Note for all cities</td><td>x</td></tr>"
        "</table>",
        encoding="utf-8",
    )
    doc = parse_html(path)
    rows = [doc.block_text(b) for b in doc.blocks if b.kind == "row"]
    assert rows == [
        "City: Munich; Per diem full: 28; Per diem partial: 14; Hotel: 170",
        "City: Munich; Per diem full: 30; Per diem partial: 15; Hotel: 180",  # the rowspan repeats
        "City: Note for all cities; Hotel: x",  # a colspan value once
    ]
    assert all(b.heading_path == ("Rates",) for b in doc.blocks)


def test_html_layout_table_is_not_a_data_table(tmp_path: Path) -> None:
    path = tmp_path / "layout.html"
    path.write_text("<table><tr><td><h1>Title</h1><p>Body text here.</p></td></tr></table>", encoding="utf-8")
    doc = parse_html(path)
    assert [b.kind for b in doc.blocks] == ["text", "text"]


# spreadsheets -------------------------------------------------------------------------------


def test_xlsx_rows_headers_and_cell_ranges(tmp_path: Path) -> None:
    path = tmp_path / "budget.xlsx"
    make_workbook(path)
    doc = parse_xlsx(path)
    assert doc.format == "xlsx"
    got = [(doc.block_text(b), b.heading_path, b.meta) for b in doc.blocks]
    assert got == [
        ("Budget 2024", ("Budget",), {"sheet": "Budget", "row": 1, "ncols": 1}),
        (
            "Department: Sales; Item: Trade fair Hamburg; Amount: 12500; Share: 25%; Approved: 2024-03-01",
            ("Budget",),
            {"sheet": "Budget", "row": 4, "ncols": 5},
        ),
        (
            "Department: IT; Item: Laptops; Amount: 30000; Share: 60%; Approved: 2024-02-14 09:30",
            ("Budget",),
            {"sheet": "Budget", "row": 5, "ncols": 5},
        ),
        ("City: Munich; Trips: 4", ("Q1 Travel",), {"sheet": "Q1 Travel", "row": 2, "ncols": 2}),
    ]
    assert doc.warnings == ("sheet Budget: 3 rows indexed", "sheet Q1 Travel: 1 rows indexed")
    chunks = chunk_document(doc, WhitespaceTokenizer(), size=200, overlap=0)
    assert [c.meta.get("locator") for c in chunks] == ["Budget!A1:E5", "'Q1 Travel'!A2:B2"]
    assert all("sheet" not in c.meta and "row" not in c.meta for c in chunks)


def test_format_value() -> None:
    assert format_value(170.0) == "170"
    assert format_value(0.05, "0.0%") == "5%"
    assert format_value(1.23456789012345) == "1.23456789"
    assert format_value(True) == "TRUE"
    assert format_value(dt.date(2024, 1, 2)) == "2024-01-02"
    assert format_value(None) == ""


def test_large_sheet_streams_and_counts_every_row(tmp_path: Path) -> None:
    path = tmp_path / "large.xlsx"
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Data")
    ws.append(["Id", "Name", "Value"])
    for i in range(3000):
        ws.append([i, f"name {i}", i * 2])
    wb.save(path)
    doc = parse_xlsx(path)
    assert doc.warnings == ("sheet Data: 3000 rows indexed",)
    rows = [b for b in doc.blocks if b.kind == "row"]
    assert len(rows) == 3000 and rows[-1].meta["row"] == 3001
    assert doc.block_text(rows[-1]) == "Id: 2999; Name: name 2999; Value: 5998"
    chunks = chunk_document(doc, WhitespaceTokenizer(), size=64, overlap=8)
    covered = sum(c.text.count("Id: ") for c in chunks)
    assert covered == 3000, "no row lost and none repeated by overlap"


def test_empty_and_encrypted_workbooks(tmp_path: Path) -> None:
    empty = tmp_path / "empty.xlsx"
    openpyxl.Workbook().save(empty)
    with pytest.raises(EmptyDocument, match="no values in any sheet"):
        parse_file(empty)
    locked = tmp_path / "locked.xlsx"
    locked.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600 + "EncryptedPackage".encode("utf-16-le"))
    with pytest.raises(EncryptedFile, match="password-protected"):
        parse_file(locked)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(ParseError) as err:
        parse_file(broken)
    assert "\n" not in err.value.reason


# CSV ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("cups.csv", b'Team,Location,Cups\nBlues,STL,1\n"Maple Leafs",TOR,13\n'),
        ("cups-semicolon.csv", b"Team;Location;Cups\nBlues;STL;1\nMaple Leafs;TOR;13\n"),
        ("cups.tsv", b"Team\tLocation\tCups\nBlues\tSTL\t1\nMaple Leafs\tTOR\t13\n"),
        ("cups-utf16.csv", "Team,Location,Cups\nBlues,STL,1\nMaple Leafs,TOR,13\n".encode("utf-16")),
        ("cups-cp1252.csv", "Team,Location,Cups\nBlues,STL,1\nMaple Leafs,TOR,13\n".encode("cp1252")),
    ],
)
def test_csv_dialects_and_encodings(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    doc = parse_file(path)
    assert doc.format == "csv"
    assert [doc.block_text(b) for b in doc.blocks] == [
        "Team: Blues; Location: STL; Cups: 1",
        "Team: Maple Leafs; Location: TOR; Cups: 13",
    ]
    assert [b.meta for b in doc.blocks] == [{"row": 2, "ncols": 3}, {"row": 3, "ncols": 3}]
    assert doc.warnings == ("2 rows indexed",)


def test_csv_quoted_newlines_and_long_cells(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    long = "x" * 200_000  # beyond the csv module's default field limit
    path.write_text(f'Id,Note\n1,"two\nlines"\n2,{long}\n', encoding="utf-8")
    doc = parse_delimited(path)
    assert doc.block_text(doc.blocks[0]) == "Id: 1; Note: two lines"
    assert doc.blocks[1].meta["row"] == 3 and len(doc.block_text(doc.blocks[1])) > 200_000


def test_binary_csv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"\x00\x01\x02" * 1000)
    with pytest.raises(ParseError, match="binary file"):
        parse_file(path)


def test_a_sheet_declaring_the_whole_grid_is_read_by_its_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "wide.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"], ws["B1"] = "Key", "Value"
    ws["A2"], ws["B2"] = "alpha", 1
    ws["A900000"], ws["B900000"] = "omega", 2
    wb.save(path)
    # As Excel writes it after formatting whole columns: the full grid as the sheet's size.
    with zipfile.ZipFile(path) as src:
        parts = {info.filename: src.read(info) for info in src.infolist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    parts["xl/worksheets/sheet1.xml"] = re.sub(
        r'<dimension ref="[^"]*"', '<dimension ref="A1:XFD1048576"', sheet
    ).encode()
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in parts.items():
            dst.writestr(name, data)
    widths: list[int] = []
    real = xlsx.sheet_rows

    def recording(rows):
        for row in rows:
            widths.append(len(row))
            yield row

    monkeypatch.setattr(xlsx, "sheet_rows", lambda rows: real(recording(rows)))
    doc = parse_xlsx(path)
    # Rows hold their own cells: padded to the declared grid, each would be 16,384 cells wide.
    assert max(widths) == 2
    assert [(doc.block_text(b), b.meta["row"]) for b in doc.blocks] == [
        ("Key: alpha; Value: 1", 2),
        ("Key: omega; Value: 2", 900000),
    ]
