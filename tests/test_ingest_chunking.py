"""Chunking: sizes, overlap, natural cut points, offsets, pages, headings, speed."""

from __future__ import annotations

import random
import re
from itertools import pairwise
from pathlib import Path

import pytest

from ingest.builder import DocumentBuilder
from ingest.chunking import HFTokenizer, WhitespaceTokenizer, chunk_document
from ingest.types import Block, ParsedDocument

WS = WhitespaceTokenizer()
WORDS = [
    *("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"),
    *("kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma"),
]


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng, rng.randint(4, 12)) for _ in range(sentences))


def _doc(paragraphs: list[tuple[str, int | None, tuple[str, ...]]]) -> ParsedDocument:
    builder = DocumentBuilder()
    for text, page, headings in paragraphs:
        builder.add(text, page=page, heading_path=headings)
    return builder.build(Path("doc.txt"), "text")


def _check_invariants(doc: ParsedDocument, chunks: list, size: int) -> None:
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert c.text == c.text.strip() and c.text
        assert 1 <= c.n_tokens <= size
    # Every word of the document lands in some chunk.
    covered = [False] * len(doc.text)
    for c in chunks:
        covered[c.start : c.end] = [True] * (c.end - c.start)
    for m in re.finditer(r"\S+", doc.text):
        assert covered[m.start()], f"word at {m.start()} not in any chunk"


def test_whitespace_tokenizer() -> None:
    assert WS.spans("  hello  wide\nworld ") == [(2, 7), (9, 13), (14, 19)]


def test_size_overlap_and_offsets() -> None:
    rng = random.Random(7)
    doc = _doc([(_paragraph(rng, rng.randint(1, 8)), None, ()) for _ in range(60)])
    chunks = chunk_document(doc, WS, size=50, overlap=10)
    _check_invariants(doc, chunks, 50)
    assert len(chunks) > 10
    for c in chunks:
        assert c.n_tokens == len(WS.spans(c.text))
    for prev, nxt in pairwise(chunks):
        assert nxt.start < prev.end, "consecutive chunks must overlap"
        shared = len(WS.spans(doc.text[nxt.start : prev.end]))
        assert 5 <= shared <= 20  # up to twice the overlap, to start at a sentence


def test_no_overlap_when_zero() -> None:
    rng = random.Random(3)
    doc = _doc([(_paragraph(rng, 6), None, ()) for _ in range(20)])
    chunks = chunk_document(doc, WS, size=40, overlap=0)
    _check_invariants(doc, chunks, 40)
    for prev, nxt in pairwise(chunks):
        assert nxt.start > prev.end


def test_cuts_prefer_paragraphs_then_sentences() -> None:
    first = " ".join(["word"] * 29) + " end."  # 30 tokens
    second = " ".join(["more"] * 29) + " stop."
    doc = _doc([(first, None, ()), (second, None, ())])
    chunks = chunk_document(doc, WS, size=40, overlap=5)
    assert chunks[0].text == first  # ends at the paragraph break, not at token 40

    sentences = " ".join(f"Sentence number {i} has six words." for i in range(20))  # 6 tokens each
    doc = _doc([(sentences, None, ())])
    chunks = chunk_document(doc, WS, size=40, overlap=8)
    _check_invariants(doc, chunks, 40)
    assert all(c.text.endswith(".") for c in chunks)
    assert all(c.text.startswith("Sentence") for c in chunks)  # overlap starts at a sentence too


def test_long_run_without_breaks_is_cut_at_token_boundaries() -> None:
    doc = _doc([(" ".join(f"w{i}" for i in range(1000)), None, ())])
    chunks = chunk_document(doc, WS, size=100, overlap=10)
    _check_invariants(doc, chunks, 100)
    assert chunks[0].n_tokens == 100


def test_pages_are_recorded() -> None:
    doc = _doc([("one " * 30, 1, ()), ("two " * 30, 2, ()), ("three " * 30, 3, ())])
    chunks = chunk_document(doc, WS, size=80, overlap=10)
    _check_invariants(doc, chunks, 80)
    assert (chunks[0].page_start, chunks[0].page_end) == (1, 2)
    assert chunks[-1].page_end == 3
    for c in chunks:
        pages = {"one": 1, "two": 2, "three": 3}
        present = {pages[w] for w in c.text.split()}
        assert (c.page_start, c.page_end) == (min(present), max(present))


def test_chunk_records_where_each_page_begins() -> None:
    doc = _doc([("one " * 30, 1, ()), ("two " * 30, 2, ()), ("three " * 30, 3, ())])
    chunks = chunk_document(doc, WS, size=80, overlap=10)
    for c in chunks:
        if c.page_start == c.page_end:
            assert c.pages == ()
            continue
        assert c.pages[0] == (0, c.page_start) and c.pages[-1][1] == c.page_end
        for offset, page in c.pages:
            word = c.text[offset:].split()[0]
            assert {"one": 1, "two": 2, "three": 3}[word] == page


def test_block_meta_reaches_the_chunk() -> None:
    builder = DocumentBuilder()
    builder.add("alpha " * 20, page=3, meta={"ocr": 0.91})
    builder.add("beta " * 20, page=3, meta={"ocr": 0.5, "locator": "slide 2"})
    chunks = chunk_document(builder.build(Path("d.pdf"), "pdf"), WS, size=100, overlap=0)
    assert len(chunks) == 1
    assert chunks[0].meta == {"ocr": 0.91, "locator": "slide 2"}


def test_heading_change_starts_a_new_chunk() -> None:
    a = ("A",)
    b = ("B",)
    doc = _doc([("Alpha section", None, a), ("a " * 80, None, a), ("Beta section", None, b), ("b " * 80, None, b)])
    chunks = chunk_document(doc, WS, size=256, overlap=32)
    assert len(chunks) == 2
    assert chunks[0].heading_path == a and chunks[1].heading_path == b
    assert chunks[1].text.startswith("Beta section")
    assert "b" not in chunks[0].text.split() and "a" not in chunks[1].text.split()


def test_small_section_is_not_cut_off() -> None:
    doc = _doc([("Intro", None, ("Intro",)), ("short words here", None, ("Intro",)), ("x " * 100, None, ("Main",))])
    chunks = chunk_document(doc, WS, size=256, overlap=32)
    assert len(chunks) == 1  # 4 tokens of "Intro" are below size/4, so they travel with "Main"
    assert chunks[0].heading_path == ("Intro",)


def test_overlap_never_reaches_back_into_previous_section() -> None:
    a, b = ("A",), ("B",)
    doc = _doc([("a " * 70, None, a), ("b " * 70, None, b)])
    chunks = chunk_document(doc, WS, size=100, overlap=30)
    _check_invariants(doc, chunks, 100)
    for c in chunks:
        if c.heading_path == b:
            assert "a" not in c.text.split()


def test_bad_arguments_and_empty_input() -> None:
    doc = _doc([("some text", None, ())])
    for size, overlap in ((0, 0), (10, 10), (10, -1)):
        with pytest.raises(ValueError):
            chunk_document(doc, WS, size=size, overlap=overlap)
    blank = ParsedDocument(path="x", format="text", text="   ", blocks=(Block(0, 3),))
    assert chunk_document(blank, WS) == []


def test_document_without_blocks_is_chunked_whole() -> None:
    doc = ParsedDocument(path="x", format="text", text="just a few words", blocks=())
    (chunk,) = chunk_document(doc, WS)
    assert (chunk.text, chunk.start, chunk.end, chunk.page_start) == ("just a few words", 0, 16, None)


def _tiny_hf_tokenizer(tmp_path: Path) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, ".": 3, ",": 4}
    for piece in ["the", "report", "annual", "pol", "##icy", "##icies", "un", "##believ", "##able", "fin", "##ance"]:
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.enable_truncation(8)  # HFTokenizer must switch this off
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path


def test_hf_tokenizer_spans_and_windows(tmp_path: Path) -> None:
    path = _tiny_hf_tokenizer(tmp_path)
    tok = HFTokenizer.from_file(tmp_path)  # a model folder works too
    text = "The annual Report, unbelievable Policies."
    spans = tok.spans(text)
    assert [text[a:b] for a, b in spans] == [
        "The",
        "annual",
        "Report",
        ",",
        "un",
        "believ",
        "able",
        "Pol",
        "icies",
        ".",
    ]
    long_text = " ".join(["the annual policy finance report."] * 400)
    windowed = HFTokenizer.from_file(path)
    windowed._window = 100  # force many windows
    assert windowed.spans(long_text) == tok.spans(long_text)
    assert len(tok.spans(long_text)) == 400 * 8  # truncation was disabled


def test_hf_chunks_never_cut_inside_a_word(tmp_path: Path) -> None:
    tok = HFTokenizer.from_file(_tiny_hf_tokenizer(tmp_path))
    rng = random.Random(11)
    words = ["unbelievable", "policies", "finance", "annual", "report"]
    text = " ".join(rng.choice(words) + ("." if rng.random() < 0.1 else "") for _ in range(3000))
    doc = _doc([(text, None, ())])
    chunks = chunk_document(doc, tok, size=64, overlap=8)
    _check_invariants(doc, chunks, 64)
    for c in chunks:
        assert c.start == 0 or doc.text[c.start - 1].isspace()
        assert c.end == len(doc.text) or doc.text[c.end].isspace()
        assert c.n_tokens == len(tok.spans(c.text))


def test_large_document_smoke() -> None:
    rng = random.Random(5)
    paragraphs = [_paragraph(rng, rng.randint(1, 10)) for _ in range(4400)]
    one_big_block = "\n".join(paragraphs[:2000])  # a long stretch with no blank line
    doc = _doc([(one_big_block, None, ())] + [(p, (i // 40) + 1, ()) for i, p in enumerate(paragraphs[2000:])])
    assert len(doc.text) > 1_000_000
    chunks = chunk_document(doc, WS, size=256, overlap=32)
    assert len(chunks) > 500
    for c in chunks[::50]:
        assert doc.text[c.start : c.end] == c.text and c.n_tokens <= 256
    assert chunks[-1].end == len(doc.text)


def test_overlap_reaches_back_to_a_sentence_start_when_sentences_are_long() -> None:
    # Sentences of 18 words; the usual overlap window (6-12 tokens back) holds no sentence start.
    sentences = [f"Sentence {i} " + " ".join(f"w{i}x{j}" for j in range(16)) + "." for i in range(20)]
    doc = _doc([(" ".join(sentences), 1, ())])
    chunks = chunk_document(doc, WS, size=100, overlap=12)
    assert len(chunks) > 3
    for prev, nxt in pairwise(chunks):
        assert nxt.text.startswith("Sentence"), nxt.text[:40]
        assert nxt.start < prev.end  # still overlapping
        assert len(nxt.text.split()) <= 100
