"""`kb eval qa`: answer a whole question set in one process and score answers and citations."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from cli.common import ConfigOpt, EmbedOpt, JsonOpt, LlmOpt, ModeOpt, ThreadsOpt, err, print_json, settings
from cli.progress import Bar


def register(eval_app: typer.Typer) -> None:
    """Add `qa` to the `kb eval` group."""
    eval_app.command("qa")(qa)


def _rate(value: float | None) -> str:
    """A share for the report; n/a when there was nothing to share."""
    return "n/a" if value is None else f"{value:.3f}"


def _cache_home() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kb" / "eval-qa"


def qa(
    file: Annotated[
        Path,
        typer.Argument(
            help="SQuAD JSON (contexts become the corpus; is_impossible questions must be refused) or JSONL with "
            "question, answers, optional doc (one gold file) or docs (several, as in multi-hop questions), optional "
            "pages (gold pages, 1-based) and answerable (false: must be refused; rows with neither answers nor a "
            "document must be refused too)."
        ),
    ],
    corpus: Annotated[
        Path | None, typer.Option("--corpus", help="Folder of documents (needed for JSONL questions).")
    ] = None,
    holdout: Annotated[
        float,
        typer.Option(
            "--holdout",
            help="Fraction of gold documents left out of the knowledge base; their questions must be refused.",
        ),
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed for choosing held-out documents.")] = 13,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Ask only the first N questions (after a seeded shuffle).")
    ] = None,
    extractive: Annotated[bool, typer.Option("--extractive", help="Evaluate extractive answers (no LLM).")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write one JSON line per question here.")] = None,
    k: Annotated[int | None, typer.Option("-k", "--top", help="Passages retrieved per question.")] = None,
    mode: ModeOpt = None,
    kb: Annotated[
        Path | None,
        typer.Option(
            "--kb",
            help="Knowledge-base folder for the corpus (default: a cache folder under ~/.cache/kb/eval-qa); "
            "one holding documents outside the corpus is refused, never changed.",
        ),
    ] = None,
    thresholds: Annotated[
        str | None,
        typer.Option(
            "--thresholds",
            help="Comma-separated min_answerability values to score the same run at (e.g. 0.5,0.56,0.62): "
            "prints the refusal trade-off. Questions are asked with the lowest of them and the setting, so --out "
            "rows are those answers, each with its answerability; the headline figures use the setting.",
        ),
    ] = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    llm_model: LlmOpt = None,
    threads: ThreadsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Ingest the corpus, ask every question, and report answer recall, evidence recall,
    citation precision, the share of sentences that passed verification, refusal rates with
    the gold document present and held out, and latency p50/p95."""
    import random

    from kb.answer import Answerer
    from kb.errors import InputError
    from kb.eval.qa import ask_all, corpus_documents, held_out, load_qa, summarize_records, sweep
    from kb.indexer import ingest
    from kb.knowledge import KnowledgeBase

    try:
        sweep_at = sorted({float(x) for x in thresholds.split(",") if x.strip()}) if thresholds else []
    except ValueError as exc:
        raise typer.BadParameter(f"--thresholds: {exc}") from exc
    data = load_qa(file)
    if not data.items:
        raise InputError(f"{file}: no questions")
    tag = hashlib.sha256(f"{file.resolve()}|{corpus}|{holdout}|{seed}".encode()).hexdigest()[:12]
    home = kb or _cache_home() / f"{file.stem}-{tag}"
    s = settings(
        config, home=home, embed_model=embed_model, llm_model=llm_model, top_k=k, search_mode=mode, threads=threads
    )
    docs = corpus_documents(data, file, corpus, home.parent / f"{home.name}-corpus", lambda d, why: err(f"{d}: {why}"))
    names = {p.name for p in docs}
    gold_docs = sorted({d for i in data.items for d in i.gold_docs if d in names})
    excluded = held_out(gold_docs, holdout, seed)
    keep = [p for p in docs if p.name not in excluded]
    items = list(data.items)
    if limit:
        random.Random(seed).shuffle(items)
        items = items[:limit]
    quiet = json_out
    with KnowledgeBase(s, write=True) as base:
        # A knowledge base holding other documents (another copy of the corpus, a user's own files)
        # would change what is retrieved and cited; kb eval never deletes them.
        wanted = {str(p.resolve()) for p in docs}
        foreign = [d.path for d in base.store.documents() if str(Path(d.path).resolve()) not in wanted]
        if foreign:
            raise InputError(
                f"{home}: holds {len(foreign)} document(s) that are not in the corpus (first: {foreign[0]}); "
                "give --kb an empty folder, or the one an earlier evaluation of this corpus used"
            )
        with Bar("ingesting corpus", enabled=not quiet) as bar:
            report = ingest(base, keep, progress=lambda d, t, r: bar.update(d, t))
        for r in report.failed:
            err(f"{r.path}: {r.reason}")
        # Documents held out by an earlier run with other settings must not linger.
        for d in base.store.documents():
            if Path(d.path).name in excluded:
                base.vectors.remove(base.store.remove_document(d.path))
        answerer = Answerer.for_kb(base, extractive=extractive)
        for warning in answerer.warnings:
            err(f"kb: {warning}")
        if sweep_at:
            answerer.min_answerability = min([*sweep_at, s.min_answerability])
        records = []
        sink = out.open("w", encoding="utf-8") if out else None
        try:
            with Bar("asking", enabled=not quiet) as bar:
                for rec in ask_all(
                    answerer, items, excluded, extractive=extractive, progress=lambda d, t: bar.update(d, t)
                ):
                    records.append(rec)
                    if sink:
                        row = {
                            "id": rec.item.id,
                            "question": rec.item.question,
                            "gold_answers": list(rec.item.answers),
                            "gold_doc": rec.item.doc,
                            "gold_docs": list(rec.item.gold_docs),
                            "gold_pages": list(rec.item.pages),
                            "answerable": rec.item.answerable,
                            "doc_excluded": rec.excluded,
                            **rec.flags(lambda p: Path(p).name),
                            "answer": rec.answer.to_json(),
                        }
                        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
        finally:
            if sink:
                sink.close()

    def name_of(p: str) -> str:
        return Path(p).name

    metrics = summarize_records(records, name_of, s.min_answerability if sweep_at else None)
    metrics["min_answerability"] = s.min_answerability
    if sweep_at:
        metrics["sweep"] = sweep(records, name_of, sweep_at)
    metrics.update(
        {
            "kb": str(home),
            "extractive": extractive,
            "holdout": holdout,
            "seed": seed,
            "held_out_documents": len(excluded),
            "documents_indexed": len(keep),
        }
    )
    if json_out:
        print_json(metrics)
        return
    rows = [
        (
            "questions (doc present / held out)",
            f"{metrics['questions_doc_present']} / {metrics['questions_doc_excluded']}",
        ),
        ("unanswerable questions (marked so in FILE)", str(metrics["questions_unanswerable"])),
        ("answer recall (gold text in answer)", _rate(metrics["answer_recall"])),
        ("evidence recall (gold text in cited passages)", _rate(metrics["evidence_recall"])),
        ("gold document cited", f"{metrics['gold_doc_cited']:.3f}"),
        ("all gold documents cited (questions with several)", _rate(metrics["all_gold_docs_cited"])),
        ("a gold page cited (questions with pages)", _rate(metrics["gold_page_cited"])),
        ("citation precision", f"{metrics['citation_precision']:.3f}"),
        ("citations to passages not retrieved", str(metrics["unretrieved_citations"])),
        ("unbacked sentences shown as fact", str(metrics["unsupported_sentences_shown"])),
        ("sentences that passed verification", f"{metrics['verified_sentence_share']:.3f}"),
        ("answered when the doc is present", f"{metrics['answered_when_doc_present']:.3f}"),
        ("refused when the doc is held out", _rate(metrics["refusal_rate_doc_excluded"])),
        ("refused when unanswerable", _rate(metrics["refusal_rate_unanswerable"])),
        ("answer modes", ", ".join(f"{k} {v}" for k, v in metrics["modes"].items())),
        ("answers that say the documents only partly answer", str(metrics["partial_answers"])),
        ("latency p50 / p95 (s)", f"{metrics['latency_p50']:.2f} / {metrics['latency_p95']:.2f}"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        typer.echo(f"{name:<{width}}  {value}")
    if sweep_at:
        typer.echo(
            "\nmin_answerability  answered(present)  refused(held out)  refused(unanswerable)  evidence recall  "
            "citation precision"
        )
        for row in metrics["sweep"]:
            typer.echo(
                f"{row['min_answerability']:<17.3f}  {row['answered_when_doc_present']:<17.3f}  "
                f"{_rate(row['refusal_rate_doc_excluded']):<17}  {_rate(row['refusal_rate_unanswerable']):<21}  "
                f"{_rate(row['evidence_recall']):<15}  {row['citation_precision']:.3f}"
            )
