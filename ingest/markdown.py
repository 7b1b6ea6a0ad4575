"""Markdown files: headings build the heading path; markup is lightly removed, code kept."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.text import clean_text, decode_bytes
from ingest.types import ParsedDocument

_FRONT_MATTER = re.compile(r"\A(?:---|\+\+\+)[ \t]*\n(.*?)\n(?:---|\.\.\.|\+\+\+)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_TITLE = re.compile(r"""^title\s*[:=]\s*["']?(.*?)["']?\s*$""", re.MULTILINE | re.IGNORECASE)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LINK_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_QUOTE = re.compile(r"^ {0,3}(?:>[ \t]?)+")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)

_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)|!\[[^\]]*\]\[[^\]]*\]")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPH_STAR = re.compile(r"\*(?=\S)(.+?)(?<=\S)\*")
_EMPH_UNDERSCORE = re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)")  # not inside snake_case
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")


def _inline(text: str) -> str:
    """Remove inline markup; code spans are kept verbatim."""
    out = []
    pos = 0
    for match in _CODE_SPAN.finditer(text):
        out.append(_inline_prose(text[pos : match.start()]))
        out.append(match.group(2).strip())
        pos = match.end()
    out.append(_inline_prose(text[pos:]))
    return "".join(out)


_PROTECT_BASE = 0xE000  # escaped characters hide in the private-use area while markup is removed
_PROTECTED = re.compile("[\ue000-\ue07f]")


def _inline_prose(text: str) -> str:
    text = _ESCAPE.sub(lambda m: chr(_PROTECT_BASE + ord(m.group(1))), text)
    text = _IMAGE.sub("", text)
    text = _LINK.sub(lambda m: m.group(1) or m.group(2), text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    for pattern in (_STRONG, _EMPH_STAR, _EMPH_UNDERSCORE, _STRIKE):
        text = pattern.sub(lambda m: m.group(m.lastindex or 0), text)
    return _PROTECTED.sub(lambda m: chr(ord(m.group(0)) - _PROTECT_BASE), text)


def _table_row(line: str) -> str:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return " | ".join(c for c in cells if c)


def _front_matter(text: str) -> tuple[str, str]:
    """(text without front matter, its title if any)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, ""
    title = _FRONT_TITLE.search(match.group(1))
    return text[match.end() :], (title.group(1).strip() if title else "")


def parse_markdown(path: Path) -> ParsedDocument:
    """A Markdown file; paragraphs, list runs, tables and code blocks become blocks."""
    text, title = _front_matter(clean_text(decode_bytes(path.read_bytes())))
    text = _HTML_COMMENT.sub("", text)
    builder = DocumentBuilder()
    headings: list[tuple[int, str]] = []
    paragraph: list[str] = []  # cleaned lines of the paragraph being read
    fence: str | None = None
    first_h1, first_level = "", 0  # the title: the first h1, else the first heading

    def path_now() -> tuple[str, ...]:
        return tuple(t for _, t in headings)

    def flush() -> None:
        builder.add("\n".join(paragraph), heading_path=path_now())
        paragraph.clear()

    def heading(level: int, cleaned: str) -> None:
        nonlocal first_h1, first_level
        flush()
        name = " ".join(cleaned.split())
        if not name:
            return
        while headings and headings[-1][0] >= level:
            headings.pop()
        headings.append((level, name))
        if not first_h1 or (level == 1 and first_level > 1):
            first_h1, first_level = name, level
        builder.add(name, heading_path=path_now())

    for line in text.split("\n"):
        if fence is not None:  # inside a fenced code block: keep lines verbatim
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
                flush()
            else:
                paragraph.append(line.rstrip())
            continue
        fence_match = _FENCE.match(line)
        if fence_match:
            flush()
            fence = fence_match.group(1)
            continue
        if not line.strip():
            flush()
            continue
        atx = _ATX.match(line)
        if atx:
            heading(len(atx.group(1)), _inline(atx.group(2) or ""))
            continue
        setext = _SETEXT.match(line)
        if setext and paragraph:  # the paragraph above an === or --- underline is a heading
            name = " ".join(paragraph)
            paragraph.clear()
            heading(1 if setext.group(1)[0] == "=" else 2, name)
            continue
        if _RULE.match(line) or _LINK_DEF.match(line) or _TABLE_RULE.match(line):
            if _RULE.match(line):
                flush()
            continue
        line = _QUOTE.sub("", line)
        if line.lstrip().startswith("|"):
            paragraph.append(_table_row(_inline(line)))
        else:
            paragraph.append(_inline(line.rstrip()))
    flush()
    return builder.build(path, "markdown", title=title or first_h1, empty_reason="no text")
