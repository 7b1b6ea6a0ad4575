"""`kb eval summaries`: summarise the files a key-facts list names and report which facts each
summary states and how many points the model wrote in its own words."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import ConfigOpt, EmbedOpt, JsonOpt, LlmOpt, ThreadsOpt, err, print_json, settings


def register(eval_app: typer.Typer) -> None:
    """Add `summaries` to the `kb eval` group."""
    eval_app.command("summaries")(summaries)


def summaries(
    facts_file: Annotated[
        Path,
        typer.Argument(
            help='JSONL, one row per file: {"file": "policy.docx", "facts": ["14 characters", ["1 hour", '
            '"one hour"]]} (a list gives accepted wordings of one fact).'
        ),
    ],
    corpus: Annotated[Path, typer.Option("--corpus", help="Folder holding the files the rows name.")],
    words: Annotated[int, typer.Option("--words", help="Approximate length of each summary, in words.")] = 150,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Summarise again even when cached.")] = False,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    llm_model: LlmOpt = None,
    threads: ThreadsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Summarise each file of FACTS_FILE (as `kb summarize` does) and report, per file and in all,
    the key facts its summary states and the share of points the model wrote in its own words
    (verified by kb) rather than quoted."""
    from kb.embeddings import load_embedder
    from kb.errors import InputError
    from kb.eval.summaries import load_key_facts, overall, score_summary
    from kb.llm import conversion_for, load_llm, resolve_gguf
    from kb.summarize import Summarizer, SummaryCache, SummaryOptions, gguf_model_id, summarize_paths

    keys = load_key_facts(facts_file)
    missing = [k.file for k in keys if not (corpus / k.file).is_file()]
    if missing:
        raise InputError(f"{corpus}: no file {missing[0]} (named in {facts_file})")
    s = settings(config, embed_model=embed_model, llm_model=llm_model, threads=threads)
    embedder = load_embedder(s.embed_model, threads=s.threads, backend=s.embed_backend)
    weights = conversion_for(s.llm_model, s.llm_convert)
    model_id = gguf_model_id(resolve_gguf(s.llm_model)) + ("" if weights == "off" else f":{weights}")
    summarizer = Summarizer(lambda: load_llm(s), model_id, embedder, s, SummaryOptions(words=words))
    cache = None if no_cache else SummaryCache(s.home / "summaries")
    report = summarize_paths([corpus / k.file for k in keys], summarizer, cache, overview=False)
    by_name = {Path(f.path).name: f for f in report.files}
    rows = []
    for key in keys:
        outcome = by_name.get(key.file)
        if outcome is None or outcome.summary is None:
            err(f"{corpus / key.file}: not summarised ({outcome.reason if outcome else 'not found'})")
            continue
        rows.append(score_summary(outcome.summary, key))
    totals = {**overall(rows), "model": model_id, "words": words}
    if json_out:
        print_json({**totals, "per_file": rows})
        return
    for r in rows:
        typer.echo(
            f"{r['file']}: {len(r['facts_covered'])}/{r['facts']} key facts, {r['generative_points']} of "
            f"{r['points']} points in the model's own words"
            + (f"; missing: {', '.join(r['facts_missing'])}" if r["facts_missing"] else "")
        )
    typer.echo(
        f"in all: key facts stated {totals['key_fact_coverage']:.3f}, points in the model's own words "
        f"{totals['generative_share']:.3f} ({totals['points']} points, model {model_id})"
    )
