"""`kb eval`: measure kb against public benchmarks. `kb eval retrieval DIR` scores search on a BEIR folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from cli.common import ConfigOpt, EmbedOpt, JsonOpt, ThreadsOpt, plural, print_json, settings
from cli.progress import Bar

app = typer.Typer(
    help="Evaluate kb on benchmark data (retrieval quality and speed).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_LABELS = {"ndcg@10": "nDCG@10", "recall@10": "Recall@10", "recall@100": "Recall@100", "mrr@10": "MRR@10"}


def run_file_path(base: Path, mode: str) -> Path:
    """Where the run of one mode goes: `runs.trec` -> `runs.hybrid.trec` (suffix kept)."""
    return base.with_name(f"{base.stem}.{mode}{base.suffix}")


@app.command("retrieval")
def retrieval(
    folder: Annotated[Path, typer.Argument(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")],
    split: Annotated[str, typer.Option("--split", help="Which qrels/<split>.tsv to score.")] = "test",
    modes: Annotated[
        list[str] | None,
        typer.Option("--mode", help="Mode to run; repeat for several (default: dense, keyword, hybrid)."),
    ] = None,
    kb: Annotated[
        Path | None,
        typer.Option(
            "--kb",
            help="Folder for the corpus's knowledge base (default: a cache folder under "
            "$XDG_CACHE_HOME/kb/eval or ~/.cache/kb/eval, named by the data folder and settings).",
        ),
    ] = None,
    run_out: Annotated[
        Path | None,
        typer.Option(
            "--run-out",
            help="Write a TREC run file per mode: FILE.trec gives FILE.dense.trec, "
            "FILE.keyword.trec, FILE.hybrid.trec, and FILE.hybrid-default.trec when that runs (tag kb-MODE).",
        ),
    ] = None,
    fusion: Annotated[
        str,
        typer.Option(
            "--fusion",
            help="Hybrid fusion: score (weighted normalised scores, kb's default) or rrf "
            "(reciprocal-rank fusion, for comparison).",
        ),
    ] = "score",
    no_tune: Annotated[
        bool,
        typer.Option(
            "--no-tune",
            help="Do not tune the fusion on the corpus: hybrid uses the recorded weight of the corpus's "
            "knowledge base if there is one, else the default.",
        ),
    ] = False,
    tune_queries: Annotated[
        int,
        typer.Option("--tune-queries", min=1, help="Pseudo-queries made from the corpus for tuning (as kb tune -n)."),
    ] = 400,
    dense_weight: Annotated[
        float | None,
        typer.Option(
            "--dense-weight",
            min=0.0,
            max=1.0,
            help="Score hybrid with this dense weight (0 = keyword only, 1 = dense only) instead of the tuned one.",
        ),
    ] = None,
    half: Annotated[
        str | None,
        typer.Option(
            "--half",
            help="Score only half of the judged queries: a (sha1 of the query id even) or b (odd), to choose "
            "a setting on one half and report it on the other.",
        ),
    ] = None,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    threads: ThreadsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Score dense, keyword and hybrid search on a BEIR data set: nDCG@10, Recall@10/100, MRR@10, queries/s.

    The corpus is indexed once into a cached knowledge base (only new or changed entries are
    embedded on later runs). Then, as `kb tune` would for a user, the hybrid fusion is tuned on
    that knowledge base from pseudo-queries made of the corpus itself, never from the judged
    queries (--no-tune skips this; an unchanged corpus reuses its tuning). Hybrid is scored with
    the tuned weight, and again with the default weight when they differ ("hybrid-default").
    Each query's passage hits are pooled into documents, a document scoring as its best
    passage, down to 100 distinct documents. The printed metrics are those trec_eval gives on
    the --run-out files.
    """
    from kb.errors import InputError
    from kb.eval.beir import load_beir
    from kb.eval.retrieval import (
        build_corpus_kb,
        evaluate_retrieval,
        iter_with_count,
        open_eval_kb,
        select_half,
        tune_corpus_kb,
    )
    from kb.eval.trec import write_run
    from kb.retrieval import DENSE_WEIGHT, FUSIONS, MODES, Retriever

    chosen = list(dict.fromkeys(modes or ("dense", "keyword", "hybrid")))
    bad = [m for m in chosen if m not in MODES]
    if bad:
        raise InputError(f"unknown mode {bad[0]!r}; choose from {', '.join(MODES)}")
    if fusion not in FUSIONS:
        raise InputError(f"unknown fusion {fusion!r}; choose from {', '.join(FUSIONS)}")
    if half is not None and half.lower() not in ("a", "b"):
        raise InputError(f"unknown half {half!r}; choose a or b")
    s = settings(config, embed_model=embed_model, threads=threads)
    data = load_beir(folder, split)
    if half is not None:
        data = select_half(data, half.lower())
    show = not quiet and not json_out
    with open_eval_kb(data, s, folder=kb.expanduser() if kb else None) as base:
        total, corpus = iter_with_count(data)
        with Bar("indexing corpus", enabled=show) as bar:
            build = build_corpus_kb(base, corpus, total=total, progress=lambda d, n: bar.update(d, n))
        tuning: dict | None = base.fusion
        tune_status = "not asked (--no-tune)"
        if not no_tune and fusion == "score" and "hybrid" in chosen:
            with Bar("tuning on the corpus", enabled=show) as bar:
                tuning, tune_status = tune_corpus_kb(base, queries=tune_queries, progress=lambda d, n: bar.update(d, n))
        tuned = float(tuning["dense_weight"]) if tuning else DENSE_WEIGHT
        weight = dense_weight if dense_weight is not None else tuned
        with Bar("searching", enabled=show) as bar:
            results = evaluate_retrieval(
                base,
                data,
                modes=chosen,
                retriever=Retriever(base, fusion=fusion, dense_weight=weight),
                progress=lambda m, d, n: bar.update(d, n, m),
            )
            if fusion == "score" and "hybrid" in chosen and weight != DENSE_WEIGHT:
                default_run = evaluate_retrieval(
                    base,
                    data,
                    modes=["hybrid"],
                    retriever=Retriever(base, dense_weight=DENSE_WEIGHT),
                    progress=lambda m, d, n: bar.update(d, n, "hybrid-default"),
                )[0]
                results.append(replace(default_run, mode="hybrid-default"))
    files: dict[str, str] = {}
    if run_out:
        for r in results:
            path = run_file_path(run_out, r.mode)
            try:
                with path.open("w", encoding="utf-8") as fh:
                    write_run(fh, r.run, f"kb-{r.mode}")
            except OSError as exc:
                raise InputError(f"{path}: cannot write run file ({exc.strerror})") from exc
            files[r.mode] = str(path)
    n_queries = len(data.queries)
    if json_out:
        print_json(
            {
                "dataset": str(data.folder),
                "fusion": fusion,
                "dense_weight": weight if fusion == "score" else None,
                "weights": {
                    "used": weight,
                    "tuned": tuned if tuning else None,
                    "default": DENSE_WEIGHT,
                    "source": "given" if dense_weight is not None else ("tuned" if tuning else "default"),
                },
                "tuning": {"status": tune_status, "record": tuning},
                "split": split,
                "half": half.lower() if half else None,
                "queries": n_queries,
                "documents": build.documents,
                "chunks": build.chunks,
                "kb": str(build.folder),
                "index": {"embedded": build.embedded, "removed": build.removed, "seconds": round(build.seconds, 3)},
                "modes": {
                    r.mode: {"metrics": r.metrics, "seconds": round(r.seconds, 3), "qps": round(r.qps, 2)}
                    for r in results
                },
                "run_files": files,
            }
        )
        return
    index_note = (
        f"indexed {plural(build.embedded, 'document')} in {build.seconds:.1f} s"
        if build.embedded
        else f"index reused ({build.seconds:.1f} s check)"
    )
    part = f", half {half.lower()}" if half else ""
    typer.echo(
        f"{data.folder.name} ({split}{part}): {plural(n_queries, 'query', 'queries')}, "
        f"{plural(build.documents, 'document')}, {plural(build.chunks, 'chunk')}; {index_note}"
    )
    if fusion == "score" and "hybrid" in chosen:
        source = "given" if dense_weight is not None else ("tuned" if tuning else "default")
        typer.echo(f"hybrid dense weight {weight:.2f} ({source}; default {DENSE_WEIGHT}); tuning {tune_status}")
    typer.echo(f"{'mode':<15}" + "".join(f"{label:>12}" for label in _LABELS.values()) + f"{'queries/s':>12}")
    for r in results:
        typer.echo(f"{r.mode:<15}" + "".join(f"{r.metrics[key]:>12.4f}" for key in _LABELS) + f"{r.qps:>12.1f}")
    for mode, written in files.items():
        typer.echo(f"run ({mode}): {written}", err=True)
