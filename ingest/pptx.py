"""PowerPoint .pptx files (python-pptx): one heading per slide (its title), then its text frames,
tables (as rows) and speaker notes, each block cited as "slide N"."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.errors import ParseError
from ingest.types import ParsedDocument

_MAX_GROUP_DEPTH = 20
NOTES = "Speaker notes"


def _open(path: Path):
    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    if not zipfile.is_zipfile(path):
        raise ParseError("not a valid PPTX (damaged, or not a zip archive)")
    try:
        return Presentation(str(path))
    except PackageNotFoundError as exc:
        raise ParseError("not a valid PPTX (no presentation inside)") from exc
    except KeyError as exc:
        raise ParseError(f"corrupt PPTX: missing part {exc.args[0] if exc.args else ''}".rstrip()) from exc
    except ValueError as exc:  # python-pptx: "file ... is not a PowerPoint file, content type is ..."
        raise ParseError(f"not a PowerPoint presentation: {str(exc)[:120]}") from exc


def _frame_text(frame) -> str:
    lines = []
    for paragraph in frame.paragraphs:
        text = " ".join("".join(run.text for run in paragraph.runs).split()) or " ".join(paragraph.text.split())
        if text:
            lines.append(text)
    return "\n".join(lines)


def _shapes(shapes, depth: int = 0):
    """Every shape, groups opened (a group's shapes in its place)."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if depth < _MAX_GROUP_DEPTH and shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes(shape.shapes, depth + 1)
        else:
            yield shape


def _table(builder: DocumentBuilder, shape, heading_path: tuple[str, ...], meta: dict) -> None:
    from ingest.tables import add_table, cell_text

    table = shape.table
    rows = []
    for row in table.rows:
        # A merged cell's text sits in its first cell; the spanned ones are empty.
        rows.append([cell_text(cell.text) if not cell.is_spanned else "" for cell in row.cells])
    header: list[str] | bool = True
    if rows and table.first_row and len(rows) > 1:
        header = rows.pop(0)
    add_table(builder, rows, heading_path=heading_path, header=header, meta=meta)


def _title(slide) -> str:
    try:
        shape = slide.shapes.title
    except (KeyError, AttributeError):
        return ""
    if shape is None or not shape.has_text_frame:
        return ""
    return " ".join(shape.text_frame.text.split())


def parse_pptx(path: Path) -> ParsedDocument:
    """A .pptx presentation: each slide's title is its heading; blocks carry {"slide": n}."""
    presentation = _open(path)
    builder = DocumentBuilder()
    warnings: list[str] = []
    first_title = ""
    for number, slide in enumerate(presentation.slides, start=1):
        meta = {"slide": number}
        title = _title(slide)
        first_title = first_title or title
        heading = (title or f"Slide {number}",)
        if title:
            builder.add(title, heading_path=heading, meta=meta)
        title_id = slide.shapes.title.shape_id if title else None
        for shape in _shapes(slide.shapes):
            try:
                if title_id is not None and shape.shape_id == title_id:
                    continue
                if getattr(shape, "has_table", False) and shape.has_table:
                    _table(builder, shape, heading, meta)
                elif shape.has_text_frame:
                    builder.add(_frame_text(shape.text_frame), heading_path=heading, meta=meta)
            except (KeyError, AttributeError, ValueError) as exc:  # one broken shape must not cost the deck
                warnings.append(f"slide {number}: a shape could not be read ({type(exc).__name__})")
        if slide.has_notes_slide:
            frame = slide.notes_slide.notes_text_frame
            if frame is not None:
                builder.add(_frame_text(frame), heading_path=(*heading, NOTES), meta=meta)
    title = ""
    try:
        title = (presentation.core_properties.title or "").strip()
    except Exception:  # broken core properties must not cost the text
        title = ""
    return builder.build(
        path,
        "pptx",
        title=(title or first_title)[:300],
        n_pages=None,
        warnings=warnings,
        empty_reason="no text on any slide (pictures only? text in images is not read)",
    )
