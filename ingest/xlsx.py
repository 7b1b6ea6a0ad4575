"""Excel .xlsx/.xlsm workbooks (openpyxl, read-only: rows are streamed, never the whole sheet in
memory as cells). Each sheet is a heading; each row a block naming its values by the sheet's
header row, cited by cell range ("Budget!A2:F40")."""

from __future__ import annotations

import datetime as dt
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.errors import ParseError
from ingest.tables import cell_text, looks_like_header, row_text
from ingest.types import ParsedDocument


def format_value(value: object, number_format: str = "General") -> str:
    """A cell value as a person reads it: 170 not 170.0, 5% not 0.05, dates without midnight."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if "%" in (number_format or ""):
            return f"{value * 100:.10g}%"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.10g}"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="minutes" if not value.second else "seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return cell_text(value)


def _trimmed(cells: list[str]) -> list[str]:
    while cells and not cells[-1]:
        cells.pop()
    return cells


def sheet_rows(rows: Iterable[Iterable[object]]) -> Iterator[tuple[int, list[str]]]:
    """(1-based row number, cell texts) of the rows that hold a value, from openpyxl rows."""
    for number, row in enumerate(rows, start=1):
        cells = _trimmed([format_value(getattr(c, "value", None), getattr(c, "number_format", "General")) for c in row])
        if cells:
            yield number, cells


def _with_next(rows: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str], list[str] | None]]:
    prev = next(rows, None)
    for item in rows:
        assert prev is not None
        yield prev[0], prev[1], item[1]
        prev = item
    if prev is not None:
        yield prev[0], prev[1], None


def add_sheet(builder: DocumentBuilder, name: str | None, rows: Iterator[tuple[int, list[str]]]) -> int:
    """Add one sheet's rows as row blocks under the heading `name`; returns the rows added.

    The first row with two or more values is the header when it looks like one. After an empty
    row, a row that looks like a header above one that does not starts a new table, and a row
    with a single value is a note, not a table row.
    """
    heading = (name,) if name else ()
    header: list[str] | None = None
    seen_table = False
    last = 0
    count = 0
    for number, cells, following in _with_next(rows):
        filled = sum(1 for c in cells if c)
        new_table = not seen_table and filled >= 2
        after_gap = seen_table and number > last + 1
        starts_table = (new_table or after_gap) and looks_like_header(cells) and cells != header
        # After a gap, the row below a new header must not look like a header itself.
        if starts_table and (new_table or following is None or not looks_like_header(following)):
            header, seen_table, last = cells, True, number
            continue
        seen_table = seen_table or filled >= 2
        # A lone value below an empty row is a note under the table, not a value of its first column.
        alone = filled == 1 and number > last + 1
        text = row_text(None if alone else header, cells)
        meta = {"sheet": name, "row": number, "ncols": len(cells)} if name else {"row": number, "ncols": len(cells)}
        builder.add(text, heading_path=heading, meta=meta, kind="row")
        count += 1
        last = number
    return count


def parse_xlsx(path: Path) -> ParsedDocument:
    """An .xlsx/.xlsm workbook, every sheet in order; reports the rows indexed per sheet."""
    import openpyxl

    if not zipfile.is_zipfile(path):
        raise ParseError("not a valid XLSX (damaged, or not a zip archive)")
    builder = DocumentBuilder()
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about unsupported extensions on stderr
        try:
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except KeyError as exc:
            raise ParseError(f"corrupt XLSX: missing part {exc.args[0] if exc.args else ''}".rstrip()) from exc
        try:
            for sheet in workbook.worksheets:
                # The declared size (often A1:XFD1048576 after formatting whole columns) would pad
                # every row to it; without it rows hold their own cells and gaps cost nothing.
                if hasattr(sheet, "reset_dimensions"):
                    sheet.reset_dimensions()
                count = add_sheet(builder, sheet.title, sheet_rows(sheet.iter_rows()))
                if count:
                    notes.append(f"sheet {sheet.title}: {count} rows indexed")
            title = (workbook.properties.title or "").strip() if workbook.properties else ""
        finally:
            workbook.close()
    return builder.build(path, "xlsx", title=title[:300], warnings=notes, empty_reason="no values in any sheet")
