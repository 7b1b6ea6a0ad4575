"""E-mail: .eml (MIME, standard library) and Outlook .msg (extract-msg). From, To, Cc, Date and
Subject are kept as the first block; an HTML body goes through the HTML parser; attachments are
parsed by their own parsers into the same document (ingest/members.py)."""

from __future__ import annotations

import contextlib
import logging
from email.message import EmailMessage, Message
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.errors import ParseError
from ingest.members import LimitReached, Nesting, add_member, claim
from ingest.text import bom_encoding, clean_text, decode_bytes
from ingest.types import ParsedDocument

_HEADERS = ("From", "To", "Cc", "Date", "Subject")
_ENCRYPTED_TYPES = ("multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime")
_ENCRYPTED_NOTE = "the message body is encrypted: decrypt it in your mail program and save it again to index it"


def _header_block(values: dict[str, str]) -> str:
    return "\n".join(f"{name}: {values[name]}" for name in _HEADERS if values.get(name))


def _add_body(builder: DocumentBuilder, text: str, html: str, subject: str) -> None:
    """The body as paragraphs under the subject; HTML only when there is no plain text."""
    path = (subject,) if subject else ()
    if text.strip():
        for paragraph in clean_text(text).split("\n\n"):
            builder.add("\n".join(line.rstrip() for line in paragraph.split("\n")), heading_path=path)
        return
    if html.strip():
        from ingest.html import html_document

        with contextlib.suppress(ParseError):  # an HTML body with no visible text adds nothing
            doc = html_document(html, Path("body.html"))
            for block in doc.blocks:
                heading = block.heading_path if block.heading_path[:1] == path else (*path, *block.heading_path)
                builder.add(doc.block_text(block), heading_path=heading, kind=block.kind)


# .eml -----------------------------------------------------------------------------------------


def _read_message(path: Path) -> Message:
    from email import policy
    from email.parser import BytesParser

    data = path.read_bytes()
    if (bom_encoding(data) and not data.startswith(b"\xef\xbb\xbf")) or b"\x00" in data[:2000]:
        # Saved as UTF-16/32 (with or without a byte-order mark) by some Windows tools; MIME
        # itself is ASCII with 8-bit bodies.
        data = decode_bytes(data).encode("utf-8")
    return BytesParser(policy=policy.default).parsebytes(data)


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a malformed header must not cost the message
        value = None
    if value is None:
        raw = msg.get_all(name, failobj=[]) if hasattr(msg, "get_all") else []
        value = raw[0] if raw else None
    return " ".join(str(value).split()) if value is not None else ""


def _part_text(part: Message) -> str:
    """A text part's content as str, whatever its declared charset."""
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else None
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, ValueError, AssertionError, KeyError):
        pass
    payload = part.get_payload(decode=True)
    return decode_bytes(payload) if isinstance(payload, bytes) and payload else ""


def _parts(msg: Message):
    """The message's parts, depth first, without entering attached messages (message/rfc822)."""
    yield msg
    if msg.is_multipart() and msg.get_content_type() != "message/rfc822":
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                if sub.get_content_type() == "message/rfc822":
                    yield sub
                else:
                    yield from _parts(sub)


def _bodies(msg: Message) -> tuple[str, str]:
    """(plain text, HTML) of the message's body parts, outside attachments."""
    plain, html = [], []
    for part in _parts(msg):
        if part.is_multipart() or part.get_content_disposition() == "attachment" or part.get_filename():
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            plain.append(_part_text(part))
        elif kind == "text/html":
            html.append(_part_text(part))
    return "\n\n".join(p for p in plain if p.strip()), "\n".join(html)


def _attachments(msg: Message) -> list[tuple[str, bytes]]:
    """(file name, bytes) of the attached files, forwarded messages as .eml files."""
    out = []
    for part in _parts(msg):
        if part.is_multipart() and part.get_content_type() != "message/rfc822":
            continue
        name = part.get_filename()
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                label = name or _header(inner[0], "Subject") or "message"
                out.append((label if label.lower().endswith(".eml") else label + ".eml", inner[0].as_bytes()))
            continue
        if not name and part.get_content_disposition() != "attachment":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and payload:
            out.append((" ".join(str(name or "attachment").split()), payload))
    return out


def _is_encrypted(msg: Message) -> bool:
    return msg.get_content_type() in _ENCRYPTED_TYPES


def _add_attachments(
    builder: DocumentBuilder, files: list[tuple[str, bytes]], nesting: Nesting, warnings: list[str], password: str
) -> None:
    for i, (name, data) in enumerate(files):
        try:
            claim(nesting, len(data))
        except LimitReached as exc:
            warnings.append(f"{len(files) - i} attachments not read: the message holds {exc.reason}")
            return
        add_member(builder, name, data, nesting, warnings, password=password)


def parse_eml(path: Path, *, password: str = "", nesting: Nesting | None = None) -> ParsedDocument:
    """An .eml message: its headers, its body and its attachments (cited as `mail.eml › a.pdf`)."""
    nesting = nesting or Nesting()
    msg = _read_message(path)
    values = {name: _header(msg, name) for name in _HEADERS}
    builder = DocumentBuilder()
    warnings: list[str] = []
    builder.add(_header_block(values))
    if _is_encrypted(msg):
        warnings.append(_ENCRYPTED_NOTE)
        files: list[tuple[str, bytes]] = []
    else:
        text, html = _bodies(msg)
        _add_body(builder, text, html, values["Subject"])
        files = _attachments(msg)
    _add_attachments(builder, files, nesting, warnings, password)
    return builder.build(path, "eml", title=values["Subject"][:300], warnings=warnings, empty_reason="empty message")


# .msg -----------------------------------------------------------------------------------------


def parse_msg(path: Path, *, password: str = "", nesting: Nesting | None = None) -> ParsedDocument:
    """An Outlook .msg message: its headers, body (plain, else HTML, else RTF) and attachments."""
    import extract_msg

    nesting = nesting or Nesting()
    # extract-msg logs warnings about odd properties; the library never prints.
    log = logging.getLogger("extract_msg")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    try:
        msg = extract_msg.openMsg(str(path), delayAttachments=False)
    except Exception as exc:  # extract-msg raises its own types for damaged or non-message files
        raise ParseError(f"not a readable Outlook message ({type(exc).__name__})") from exc
    try:
        values = {
            "From": _str(getattr(msg, "sender", "")),
            "To": _str(getattr(msg, "to", "")),
            "Cc": _str(getattr(msg, "cc", "")),
            "Date": _str(getattr(msg, "date", "")),
            "Subject": _str(getattr(msg, "subject", "")),
        }
        body = _str_keep_lines(_safe(lambda: msg.body))  # type: ignore[attr-defined]
        html = _safe(lambda: msg.htmlBody)  # type: ignore[attr-defined]
        html_text = decode_bytes(html) if isinstance(html, bytes) and html else str(html or "")
        if not body.strip() and not html_text.strip():
            rtf = _safe(lambda: msg.rtfBody)  # type: ignore[attr-defined]
            if isinstance(rtf, bytes) and rtf:
                from ingest.rtf import rtf_to_plain

                body = rtf_to_plain(rtf)
        files = []
        for att in getattr(msg, "attachments", []) or []:
            data = _safe(lambda att=att: att.data)
            name = _str(getattr(att, "longFilename", "") or getattr(att, "shortFilename", "") or "attachment")
            if isinstance(data, bytes) and data:
                files.append((name, data))
            elif data is not None and hasattr(data, "exportBytes"):  # an attached message
                files.append((name if name.lower().endswith(".msg") else name + ".msg", data.exportBytes()))
    finally:
        with contextlib.suppress(Exception):
            msg.close()
    builder = DocumentBuilder()
    warnings: list[str] = []
    builder.add(_header_block(values))
    names = [n.lower() for n, _ in files]
    if not body.strip() and not html_text.strip() and any(n.endswith((".p7m", ".pgp-encrypted")) for n in names):
        warnings.append(_ENCRYPTED_NOTE)
        files = []
    else:
        _add_body(builder, body, html_text, values["Subject"])
    _add_attachments(builder, files, nesting, warnings, password)
    return builder.build(path, "msg", title=values["Subject"][:300], warnings=warnings, empty_reason="empty message")


def _safe(get):
    try:
        return get()
    except Exception:  # one unreadable property must not cost the rest of the message
        return None


def _str(value: object) -> str:
    return " ".join(str(value).split()) if value else ""


def _str_keep_lines(value: object) -> str:
    return clean_text(str(value)) if value else ""
