"""Small document files built in code, so ingest tests need no binary fixtures."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from email.message import EmailMessage
from pathlib import Path


def _escape(line: str) -> bytes:
    return line.encode("cp1252").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def make_pdf(pages: list[list[str]], *, title: str | None = None) -> bytes:
    """A valid PDF whose pages show the given lines in Helvetica (text extractable)."""
    objects: list[bytes] = []
    n_pages = len(pages)
    page_ids = [4 + 2 * i for i in range(n_pages)]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = b" ".join(b"%d 0 R" % pid for pid in page_ids)
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n_pages))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for i, lines in enumerate(pages):
        ops = b" ".join(b"(%s) Tj T*" % _escape(line) for line in lines)
        stream = b"BT /F1 12 Tf 14 TL 72 720 Td " + ops + b" ET"
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (page_ids[i] + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info_ref = b""
    if title is not None:
        objects.append(b"<< /Title (%s) >>" % _escape(title))
        info_ref = b" /Info %d 0 R" % len(objects)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info_ref, xref))
    return out.getvalue()


def write_encrypted_pdf(path: Path, pages: list[list[str]], *, user_password: str, owner_password: str) -> None:
    """An RC4-encrypted copy of `make_pdf(pages)` (RC4 needs no extra crypto package)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(pages))))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="RC4-128")
    with path.open("wb") as handle:
        writer.write(handle)


def make_zip(files: dict[str, bytes]) -> bytes:
    """A zip archive of the given members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def make_mail(path: Path) -> None:
    """A message with a plain and an HTML body, a PDF, a zip, an image and a forwarded message."""
    msg = EmailMessage()
    msg["From"] = "Jana Weber <jana.weber@example.com>"
    msg["To"] = "Team <team@example.com>"
    msg["Cc"] = "Ali Demir <ali@example.com>"
    msg["Date"] = "Mon, 04 Mar 2024 10:15:00 +0100"
    msg["Subject"] = "Travel budget approved"
    msg.set_content("Hello all,\n\nthe travel budget for Q2 is approved.\n\nBest,\nJana\n")
    msg.add_alternative("<p>Hello all,</p><p>the travel budget for <b>Q2</b> is approved.</p>", subtype="html")
    pdf = make_pdf([["Report cover page."], ["The Q2 travel budget is EUR 48,000."]])
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="report.pdf")
    msg.add_attachment(make_zip({"notes/minutes.txt": b"Minutes: the offsite is in Dresden."}), maintype="application",
                       subtype="zip", filename="files.zip")  # fmt: skip
    msg.add_attachment(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, maintype="image", subtype="png", filename="logo.png")
    inner = EmailMessage()
    inner["From"] = "ali@example.com"
    inner["Subject"] = "Hotel list"
    inner.set_content("The preferred hotel in Munich is the Hotel Isar.")
    msg.add_attachment(inner, filename="hotels.eml")
    path.write_bytes(msg.as_bytes())


def make_deck(path: Path) -> None:
    """Three slides: bullets with notes, a table, a group of text boxes without a title."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    deck.core_properties.title = "Sales Kickoff 2024"
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Targets"
    body = slide.placeholders[1].text_frame
    body.text = "Revenue target: EUR 4.2 million"
    body.add_paragraph().text = "New customers: 35"
    slide.notes_slide.notes_text_frame.text = "Mention the Leipzig office opening."
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Regional quotas"
    rows = [
        ("Region", "Quota", "Owner"),
        ("North", "EUR 1.1 million", "Jana Weber"),
        ("South", "EUR 0.9 million", "Ali Demir"),
    ]
    table = slide.shapes.add_table(3, 3, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank: no title placeholder
    group = slide.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(1), Inches(3), Inches(1)).text_frame.text = "Grouped note one"
    group.shapes.add_textbox(Inches(1), Inches(2), Inches(3), Inches(1)).text_frame.text = "Grouped note two"
    deck.save(str(path))


def make_workbook(path: Path) -> None:
    """Sheets "Budget" (a title row above a header), "Q1 Travel" and "Empty"."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Budget"
    ws.append(["Budget 2024"])
    ws.append([])
    ws.append(["Department", "Item", "Amount", "Share", "Approved"])
    ws.append(["Sales", "Trade fair Hamburg", 12500.0, 0.25, dt.datetime(2024, 3, 1)])
    ws.append(["IT", "Laptops", 30000, 0.6, dt.datetime(2024, 2, 14, 9, 30)])
    ws["D4"].number_format = "0%"
    ws["D5"].number_format = "0%"
    other = wb.create_sheet("Q1 Travel")
    other.append(["City", "Trips"])
    other.append(["Munich", 4])
    wb.create_sheet("Empty")
    wb.save(path)
