"""E-mail: headers kept, plain or HTML bodies, attachments parsed by their own parsers into the
same document and cited as `mail.eml › report.pdf, p. 2`."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from ingest.chunking import WhitespaceTokenizer, chunk_document
from ingest.formats import parse_file
from tests.ingest_fixtures import make_mail

FIXTURES = Path(__file__).parent / "fixtures"


def test_headers_body_and_attachments(tmp_path: Path) -> None:
    path = tmp_path / "mail.eml"
    make_mail(path)
    doc = parse_file(path)
    assert (doc.format, doc.title) == ("eml", "Travel budget approved")
    blocks = [(doc.block_text(b), b.heading_path, b.page, b.meta) for b in doc.blocks]
    assert blocks[0] == (
        "From: Jana Weber <jana.weber@example.com>\nTo: Team <team@example.com>\nCc: Ali Demir <ali@example.com>\n"
        "Date: Mon, 04 Mar 2024 10:15:00 +0100\nSubject: Travel budget approved",
        (),
        None,
        {},
    )
    # The plain body wins over its HTML alternative; it is not repeated.
    body = [text for text, heading, _, meta in blocks if heading == ("Travel budget approved",)]
    assert body == ["Hello all,", "the travel budget for Q2 is approved.", "Best,\nJana"]
    attached = [(text, heading, page, meta) for text, heading, page, meta in blocks if meta]
    assert attached == [
        ("Report cover page.", ("report.pdf",), 1, {"member": "report.pdf"}),
        ("The Q2 travel budget is EUR 48,000.", ("report.pdf",), 2, {"member": "report.pdf"}),
        (
            "Minutes: the offsite is in Dresden.",
            ("files.zip", "notes/minutes.txt"),
            None,
            {"member": "files.zip › notes/minutes.txt"},
        ),
        (blocks[-2][0], ("hotels.eml",), None, {"member": "hotels.eml"}),
        (
            "The preferred hotel in Munich is the Hotel Isar.",
            ("hotels.eml", "Hotel list"),
            None,
            {"member": "hotels.eml"},
        ),
    ]
    # The attached image is read by OCR; this one is not a real image, so it is named with why.
    assert doc.warnings == ("logo.png: not read (not a readable image (unknown or damaged format))",)


def test_chunks_never_mix_the_body_and_an_attachment(tmp_path: Path) -> None:
    path = tmp_path / "mail.eml"
    make_mail(path)
    doc = parse_file(path)
    chunks = chunk_document(doc, WhitespaceTokenizer(), size=500, overlap=20)
    where = [(c.meta.get("member"), c.page_start, c.page_end) for c in chunks]
    assert where == [
        (None, None, None),
        ("report.pdf", 1, 2),
        ("files.zip › notes/minutes.txt", None, None),
        ("hotels.eml", None, None),
    ]
    assert chunks[1].pages == ((0, 1), (len("Report cover page.\n\n"), 2))


def test_html_only_body_goes_through_the_html_parser(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["Subject"] = "Rates"
    msg.set_content(
        "<h2>Hotel limits</h2><table><tr><th>City</th><th>Limit</th></tr><tr><td>Munich</td><td>EUR 170</td></tr>"
        "</table><script>track()</script>",
        subtype="html",
    )
    path = tmp_path / "rates.eml"
    path.write_bytes(msg.as_bytes())
    doc = parse_file(path)
    got = [(doc.block_text(b), b.heading_path, b.kind) for b in doc.blocks[1:]]
    assert got == [
        ("Hotel limits", ("Rates", "Hotel limits"), "text"),
        ("City: Munich; Limit: EUR 170", ("Rates", "Hotel limits"), "row"),
    ]


def test_odd_messages(tmp_path: Path) -> None:
    encrypted = tmp_path / "secret.eml"
    encrypted.write_bytes(
        b"From: a@example.com\nSubject: Secret\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/encrypted; boundary=foo; protocol="application/pgp-encrypted"\n\n'
        b"--foo\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n--foo\n"
        b"Content-Type: application/octet-stream\n\n-----BEGIN PGP MESSAGE-----\nabc\n--foo--\n"
    )
    doc = parse_file(encrypted)
    assert doc.text == "From: a@example.com\nSubject: Secret"
    assert doc.warnings and "encrypted" in doc.warnings[0] and "decrypt" in doc.warnings[0]

    utf16 = tmp_path / "wide.eml"
    utf16.write_bytes("From: b@example.com\nSubject: Wide\n\nSaved as UTF-16.\n".encode("utf-16-le"))
    assert parse_file(utf16).text.endswith("Saved as UTF-16.")

    no_body = tmp_path / "headers.eml"
    no_body.write_bytes(b"From: c@example.com\nSubject: Only headers\n\n")
    assert parse_file(no_body).text == "From: c@example.com\nSubject: Only headers"


def test_outlook_msg_with_attachment() -> None:
    doc = parse_file(FIXTURES / "outlook-with-attachment.msg")
    assert (doc.format, doc.title) == ("msg", "Fake email with attachment")
    assert doc.block_text(doc.blocks[0]).startswith('From: "Mallori Harrell" <mallori@unstructured.io>\nTo: ')
    assert "Subject: Fake email with attachment" in doc.block_text(doc.blocks[0])
    assert "Here's the attachments!" in doc.text
    last = doc.blocks[-1]
    assert (doc.block_text(last), last.meta, last.heading_path) == (
        "Hey this is a fake attachment!",
        {"member": "fake-attachment.txt"},
        ("fake-attachment.txt",),
    )
