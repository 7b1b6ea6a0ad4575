"""CSV and TSV files (csv, streamed): each record a row block naming its values by the header
row, cited by cell range as a spreadsheet would show the file ("A2:F40")."""

from __future__ import annotations

import codecs
import csv
import io
import sys
from collections.abc import Iterator
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.errors import ParseError
from ingest.tables import cell_text
from ingest.text import bom_encoding, looks_binary
from ingest.types import ParsedDocument
from ingest.xlsx import add_sheet

_SAMPLE = 64 * 1024
_DELIMITERS = ",;\t|"


def _encoding(sample: bytes) -> str:
    """The encoding to stream the file with, judged from its first bytes."""
    found = bom_encoding(sample)
    if found:
        return {"utf-8": "utf-8-sig", "utf-16-le": "utf-16", "utf-16-be": "utf-16", "utf-32-le": "utf-32",
                "utf-32-be": "utf-32"}[found[0]]  # fmt: skip
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1252"


def _dialect(text: str, tab: bool) -> type[csv.Dialect] | csv.Dialect:
    if tab:
        return csv.excel_tab
    try:
        return csv.Sniffer().sniff(text[:20_000], delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel


def _records(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    for number, record in enumerate(reader, start=1):
        cells = [cell_text(c) for c in record]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            yield number, cells


def parse_delimited(path: Path) -> ParsedDocument:
    """A .csv or .tsv file; the delimiter is sniffed (comma, semicolon, tab, bar) for .csv."""
    with path.open("rb") as fh:
        sample = fh.read(_SAMPLE)
    if looks_binary(sample):
        raise ParseError("binary file, not CSV")
    encoding = _encoding(sample)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long cells are data, not an attack
    builder = DocumentBuilder()
    with path.open("rb") as raw:
        stream = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        head = stream.read(_SAMPLE)
        dialect = _dialect(head, path.suffix.lower() == ".tsv")
        stream.seek(0)
        try:
            count = add_sheet(builder, None, _records(csv.reader(stream, dialect)))
        except csv.Error as exc:
            raise ParseError(f"malformed CSV: {exc}") from exc
    notes = [f"{count} rows indexed"] if count else []
    return builder.build(path, "csv", warnings=notes, empty_reason="no values")
