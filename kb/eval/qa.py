"""Question-answering evaluation: ingest a corpus, ask every question in one process, and score
answers, evidence, citations, verification, refusals and latency.

Two kinds of question must be refused: those the data marks unanswerable (SQuAD 2.0
`is_impossible`, or JSONL rows without answers and document), and those made unanswerable by
holding documents out: a seeded fraction of the gold documents is left out of the knowledge
base, and the questions about them must be refused.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingest.discover import discover, unreadable_folder
from kb.answer import REFUSAL, Answer, Answerer
from kb.answer.gate import PARTIAL_BAND
from kb.errors import InputError
from kb.eval.metrics import percentile


@dataclass(frozen=True)
class QAItem:
    """One question with its gold answers and, when known, its gold document key; an
    unanswerable one (the documents do not answer it) has no answers and must be refused."""

    id: str
    question: str
    answers: tuple[str, ...]
    doc: str | None = None
    answerable: bool = True
    docs: tuple[str, ...] = ()  # every gold file (several for multi-hop questions); `doc` is the first
    pages: tuple[int, ...] = ()  # gold pages (1-based) of the gold files, when known

    @property
    def gold_docs(self) -> tuple[str, ...]:
        """The gold files, whichever field named them."""
        return self.docs or ((self.doc,) if self.doc else ())


@dataclass
class QAData:
    """Questions, plus the corpus texts when the file carries them (SQuAD contexts)."""

    items: list[QAItem]
    corpus: dict[str, str] = field(default_factory=dict)  # doc key -> text


def _safe_key(raw: str) -> str:
    return re.sub(r"[^\w.-]+", "_", raw).strip("_")[:80] or "doc"


def load_qa(path: Path) -> QAData:
    """Read SQuAD JSON (contexts become documents) or JSONL (`question`, `answers`, optional `doc`,
    optional `answerable`/`is_impossible`)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{") and '"data"' in text[:2000]:
        try:
            return _load_squad(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not valid SQuAD JSON ({exc})") from exc
    return _load_jsonl(path, text)


def _load_squad(data: dict) -> QAData:
    items: list[QAItem] = []
    corpus: dict[str, str] = {}
    for i, article in enumerate(data["data"]):
        paragraphs = article["paragraphs"]
        first = paragraphs[0] if paragraphs else {}
        key = _safe_key(str(article.get("title") or first.get("document_id") or f"doc{i}"))
        if key in corpus:
            key = f"{key}-{i}"
        corpus[key] = "\n\n".join(p["context"] for p in paragraphs)
        for p in paragraphs:
            for qa in p["qas"]:
                question = qa["question"].strip()
                if qa.get("is_impossible"):  # SQuAD 2.0: the article does not answer it
                    items.append(QAItem(str(qa["id"]), question, (), f"{key}.txt", answerable=False))
                    continue
                answers = tuple(dict.fromkeys(a["text"].strip() for a in qa["answers"] if a["text"].strip()))
                if answers:
                    items.append(QAItem(str(qa["id"]), question, answers, f"{key}.txt"))
    return QAData(items, corpus)


def _load_jsonl(path: Path, text: str) -> QAData:
    items = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            answers = obj.get("answers", obj.get("answer"))
            answers = [answers] if isinstance(answers, str) else [a for a in answers or [] if a]
            many = obj.get("docs") or []
            one = obj.get("doc") or obj.get("document") or obj.get("file")
            docs = tuple(
                Path(str(d)).name for d in ([*many] if isinstance(many, list) else [many]) + ([one] if one else [])
            )
            docs = tuple(dict.fromkeys(docs))
            pages = obj.get("pages") or ([obj["page"]] if obj.get("page") else [])
            # Unanswerable when marked so, or when the row names neither an answer nor a document.
            answerable = bool(obj.get("answerable", not obj.get("is_impossible", False))) and bool(answers or docs)
            items.append(
                QAItem(
                    str(obj.get("id", n)),
                    str(obj["question"]),
                    tuple(answers),
                    docs[0] if docs else None,
                    answerable,
                    docs,
                    tuple(int(p) for p in pages),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{n}: expected JSON with 'question' and 'answers' ({exc})") from exc
    return QAData(items)


def write_corpus(corpus: dict[str, str], folder: Path) -> dict[str, Path]:
    """The SQuAD contexts as text files named `<key>.txt`; unchanged files are left alone, so
    a second run's ingest skips them. Returns file name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, text in corpus.items():
        p = folder / f"{key}.txt"
        if not p.is_file() or p.read_text(encoding="utf-8") != text:
            p.write_text(text, encoding="utf-8")
        paths[p.name] = p
    return paths


def corpus_documents(
    data: QAData, questions: Path, corpus: Path | None, folder: Path, on_error: Callable[[Path, str], None]
) -> list[Path]:
    """The documents to ingest: the file's own contexts written into `folder`, else the files `kb ingest`
    would take from `corpus` (.kbignore and hidden files respected), never the question file itself.
    A subfolder that cannot be listed is passed to `on_error` with the reason and the rest goes on."""
    if data.corpus:
        return list(write_corpus(data.corpus, folder).values())
    if corpus is None or not corpus.is_dir():
        raise InputError(f"{questions}: JSONL questions need --corpus DIR with the documents")
    found = discover([corpus], on_error=lambda d, e: on_error(d, unreadable_folder(e)))
    return [p for p in found if p.resolve() != questions.resolve()]


def held_out(keys: list[str], fraction: float, seed: int) -> set[str]:
    """A seeded random subset of documents to leave out of the knowledge base."""
    if not 0 <= fraction < 1:
        raise InputError(f"--holdout must be in [0, 1) (got {fraction})")
    k = round(len(keys) * fraction)
    return set(random.Random(seed).sample(sorted(keys), k))


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w%.,-]+", " ", text.lower()).split()).strip(" .,")


def contains_gold(text: str, answers: tuple[str, ...]) -> bool:
    """Whether any gold answer appears in the text (case, spacing and punctuation ignored)."""
    hay = _norm(text)
    return any(_norm(a) and _norm(a) in hay for a in answers)


_MARKERS = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]\s*")


def shown_as_sentence(claim: str, answer_text: str) -> bool:
    """Whether a sentence is part of the answer as shown (its `[n]` markers aside). A rejected
    model sentence "2" is not shown by an answer that cites "[2]"."""
    claim = " ".join(claim.split())
    if not claim:
        return False
    shown = [" ".join(p.split()) for p in _MARKERS.split(answer_text)]
    return any(claim == p or (len(claim) >= 12 and claim in p) for p in shown)


@dataclass
class QARecord:
    """One question's outcome."""

    item: QAItem
    excluded: bool
    answer: Answer
    seconds: float

    def flags(self, doc_of: Callable[[str], str | None]) -> dict:
        """Per-question scores."""
        a = self.answer
        gold = set(self.item.gold_docs)
        cited = [(s.hit.chunk.text, doc_of(s.hit.chunk.path), s.hit.chunk.id, s.pages) for s in a.sources]
        good = [contains_gold(t, self.item.answers) or (d is not None and d in gold) for t, d, _, _ in cited]
        cited_docs = {d for _, d, _, _ in cited}
        pages = set(self.item.pages)
        page_hit = any(
            d in gold and first is not None and any(first <= p <= (last or first) for p in pages)
            for _, d, _, (first, last) in cited
        )
        return {
            "answered": not a.refused,
            "partial": a.partial,
            "answer_has_gold": (not a.refused) and contains_gold(a.text, self.item.answers),
            "evidence_has_gold": any(contains_gold(t, self.item.answers) for t, _, _, _ in cited),
            "cites_gold_doc": bool(gold & cited_docs),
            "cites_all_gold_docs": bool(gold) and gold <= cited_docs,
            "cites_gold_page": page_hit if pages else None,
            "citations": len(cited),
            "good_citations": sum(good),
            "unretrieved_citations": sum(1 for _, _, cid, _ in cited if cid not in set(a.retrieved)),
            "sentences": len(a.sentences),
            "supported_sentences": sum(1 for s in a.sentences if s.supported),
            "unsupported_shown": sum(
                1
                for s in a.sentences
                if not s.supported
                and shown_as_sentence(s.text, a.text)
                # a rejected fragment ("Paramount Pictures, Inc.") that a verified quote contains is that quote's
                and not any(" ".join(s.text.split()) in " ".join(t.text.split()) for t in a.sentences if t.supported)
            ),
        }


def ask_all(
    answerer: Answerer,
    items: list[QAItem],
    excluded: set[str],
    *,
    extractive: bool,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[QARecord]:
    """Ask every question in turn (one process, models loaded once)."""
    for i, item in enumerate(items):
        answer = answerer.ask(item.question, extractive=extractive)
        gone = item.answerable and any(d in excluded for d in item.gold_docs)
        yield QARecord(item, gone, answer, answer.timings.get("total", 0.0))
        if progress:
            progress(i + 1, len(items))


def refused_at(record: QARecord, threshold: float) -> bool:
    """Whether the answer would be a refusal with `min_answerability` = threshold.

    The answer itself does not depend on the threshold, only the gate does, so one run asked
    with a low threshold can be scored at any higher one. As the gate does, an answer within
    PARTIAL_BAND below the threshold is still given (as partial) when its evidence's document is
    about a name of the question.
    """
    a = record.answer
    if a.refused or a.answerability is None:
        return True
    if a.answerability >= threshold:
        return False
    return not (a.signals.get("subject") and a.answerability >= threshold - PARTIAL_BAND)


def summarize_records(
    records: list[QARecord], doc_of: Callable[[str], str | None], threshold: float | None = None
) -> dict:
    """The headline metrics over all records (scored as if refused below `threshold`, if given)."""
    if threshold is not None:
        records = [_as_refusal(r) if refused_at(r, threshold) else r for r in records]
    present = [(r, r.flags(doc_of)) for r in records if r.item.answerable and not r.excluded]
    absent = [(r, r.flags(doc_of)) for r in records if r.excluded]
    unanswerable = [(r, r.flags(doc_of)) for r in records if not r.item.answerable]
    every = present + absent + unanswerable
    cites = sum(f["citations"] for _, f in present)
    sentences = sum(f["sentences"] for _, f in every)
    secs = [r.seconds for r in records]

    def share(rows: list, key: str) -> float:
        return sum(1 for _, f in rows if f[key]) / max(1, len(rows))

    def share_known(rows: list, key: str) -> float | None:
        known = [(r, f) for r, f in rows if f[key] is not None]
        return share(known, key) if known else None

    with_answers = [(r, f) for r, f in present if r.item.answers]
    multi = [(r, f) for r, f in present if len(r.item.gold_docs) > 1]

    return {
        "questions": len(records),
        "questions_doc_present": len(present),
        "questions_doc_excluded": len(absent),
        "questions_unanswerable": len(unanswerable),
        "answer_recall": share(with_answers, "answer_has_gold") if with_answers else None,
        "evidence_recall": share(with_answers, "evidence_has_gold") if with_answers else None,
        "gold_doc_cited": share(present, "cites_gold_doc"),
        "all_gold_docs_cited": share(multi, "cites_all_gold_docs") if multi else None,
        "gold_page_cited": share_known(present, "cites_gold_page"),
        "partial_answers": sum(1 for _, f in present if f["partial"]),
        "unsupported_sentences_shown": sum(f["unsupported_shown"] for _, f in every),
        "citation_precision": sum(f["good_citations"] for _, f in present) / max(1, cites),
        "unretrieved_citations": sum(f["unretrieved_citations"] for _, f in every),
        "verified_sentence_share": sum(f["supported_sentences"] for _, f in every) / max(1, sentences),
        "answered_when_doc_present": share(present, "answered"),
        "refusal_rate_doc_present": 1 - share(present, "answered"),
        "refusal_rate_doc_excluded": (1 - share(absent, "answered")) if absent else None,
        "refusal_rate_unanswerable": (1 - share(unanswerable, "answered")) if unanswerable else None,
        "modes": {m: sum(1 for r in records if r.answer.mode == m) for m in ("generative", "extractive", "refusal")},
        "latency_p50": percentile(secs, 50) if secs else 0.0,
        "latency_p95": percentile(secs, 95) if secs else 0.0,
    }


def _as_refusal(record: QARecord) -> QARecord:
    """The record as it would be had the gate refused: no sentences, no citations."""
    a = record.answer
    refused = replace(a, text=REFUSAL, refused=True, mode="refusal", sentences=[], sources=[])
    return replace(record, answer=refused)


def sweep(records: list[QARecord], doc_of: Callable[[str], str | None], thresholds: list[float]) -> list[dict]:
    """The refusal trade-off: for each `min_answerability`, the shares answered and refused and
    the evidence and citation figures."""
    out = []
    for t in thresholds:
        m = summarize_records(records, doc_of, t)
        out.append(
            {
                "min_answerability": t,
                **{
                    k: m[k]
                    for k in (
                        "answered_when_doc_present",
                        "refusal_rate_doc_excluded",
                        "refusal_rate_unanswerable",
                        "evidence_recall",
                        "citation_precision",
                        "answer_recall",
                    )
                },
            }
        )
    return out
