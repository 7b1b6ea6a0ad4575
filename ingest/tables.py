"""Tables as text that keeps their shape: one block per row, each value named by its column.

A row of a table with a header reads "Destination: Munich; Hotel limit per night: EUR 170",
so every chunk cut from a table carries the column names of the values it holds (the header
is repeated in every row, hence in every chunk), and chunking (ingest/chunking.py) starts and
ends chunks at row boundaries. A table without a header keeps the plain "a | b | c" form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ingest.builder import DocumentBuilder

_WS = re.compile(r"\s+")
_NUMERIC = re.compile(r"^[\s(+\-−]*[$€£¥]?\s*[\d.,\s]+%?\s*[)]?$")
_MAX_HEADER_CELL = 80  # longer first-row cells are data, not column names


def cell_text(value: object) -> str:
    """A cell's text on one line (cells are joined into one line per row)."""
    if value is None:
        return ""
    return _WS.sub(" ", str(value)).strip()


def looks_like_header(cells: Sequence[str]) -> bool:
    """Whether a first row names columns: at least two short, distinct, non-numeric labels."""
    filled = [c for c in cells if c]
    if len(filled) < 2 or len(set(filled)) < len(filled):
        return False
    return all(len(c) <= _MAX_HEADER_CELL and not _NUMERIC.match(c) for c in filled)


def row_text(header: Sequence[str] | None, cells: Sequence[str]) -> str:
    """One row as 'Column: value; Column: value', or 'a | b | c' without a header.

    Empty cells are left out; a value under an unnamed column stands alone.
    """
    if not header:
        return " | ".join(c for c in cells if c)
    parts = []
    for i, value in enumerate(cells):
        if not value:
            continue
        name = header[i] if i < len(header) else ""
        parts.append(f"{name}: {value}" if name and name != value else value)
    return "; ".join(parts)


def add_table(
    builder: DocumentBuilder,
    rows: Iterable[Sequence[str]],
    *,
    heading_path: tuple[str, ...] = (),
    page: int | None = None,
    header: Sequence[str] | bool | None = True,
    meta: dict[str, Any] | None = None,
) -> int:
    """Add a table's rows as row blocks; returns how many rows were added (header excluded).

    `header`: a header row given by the format, True to take the first row as the header when
    it looks like one (looks_like_header), False for none.
    """
    it = iter(rows)
    names: Sequence[str] | None = None
    if header is True:
        first = next(it, None)
        if first is None:
            return 0
        if looks_like_header(first):
            names = first
        else:
            it = _chain(first, it)
    elif header:
        names = header
    count = 0
    for cells in it:
        if names is not None and list(cells) == list(names):
            continue  # a header repeated on a later page of the table
        text = row_text(names, cells)
        if text:
            builder.add(text, page=page, heading_path=heading_path, meta=meta, kind="row")
            count += 1
    return count


def _chain(first: Sequence[str], rest: Iterable[Sequence[str]]) -> Iterator[Sequence[str]]:
    yield first
    yield from rest


def column_letter(n: int) -> str:
    """Spreadsheet column name of the 1-based column n: 1 -> A, 27 -> AA."""
    out = ""
    while n > 0:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


def sheet_range(sheet: str | None, first_row: int, last_row: int, ncols: int) -> str:
    """'Budget!A2:F40' (quoted as a spreadsheet does when the sheet name has spaces)."""
    cols = f"A{first_row}:{column_letter(max(1, ncols))}{last_row}"
    if not sheet:
        return cols
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", sheet):
        return f"{sheet}!{cols}"
    return "'" + sheet.replace("'", "''") + f"'!{cols}"
