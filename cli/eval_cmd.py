"""`kb eval`: measure kb against public benchmarks. `kb eval retrieval DIR` scores search on a BEIR folder."""

from __future__ import annotations

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
            "FILE.keyword.trec, FILE.hybrid.trec (tag kb-MODE).",
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
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    threads: ThreadsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Score dense, keyword and hybrid search on a BEIR data set: nDCG@10, Recall@10/100, MRR@10, queries/s.

    The corpus is indexed once into a cached knowledge base (only new or changed entries are
    embedded on later runs). Each query's passage hits are pooled into documents, a document
    scoring as its best passage, down to 100 distinct documents. The printed metrics are those
    trec_eval gives on the --run-out files.
    """
    from kb.errors import InputError
    from kb.eval.beir import load_beir
    from kb.eval.retrieval import build_corpus_kb, evaluate_retrieval, iter_with_count, open_eval_kb
    from kb.eval.trec import write_run
    from kb.retrieval import FUSIONS, MODES, Retriever

    chosen = list(dict.fromkeys(modes or ("dense", "keyword", "hybrid")))
    bad = [m for m in chosen if m not in MODES]
    if bad:
        raise InputError(f"unknown mode {bad[0]!r}; choose from {', '.join(MODES)}")
    if fusion not in FUSIONS:
        raise InputError(f"unknown fusion {fusion!r}; choose from {', '.join(FUSIONS)}")
    s = settings(config, embed_model=embed_model, threads=threads)
    data = load_beir(folder, split)
    show = not quiet and not json_out
    with open_eval_kb(data, s, folder=kb.expanduser() if kb else None) as base:
        total, corpus = iter_with_count(data)
        with Bar("indexing corpus", enabled=show) as bar:
            build = build_corpus_kb(base, corpus, total=total, progress=lambda d, n: bar.update(d, n))
        with Bar("searching", enabled=show) as bar:
            results = evaluate_retrieval(
                base,
                data,
                modes=chosen,
                retriever=Retriever(base, fusion=fusion),
                progress=lambda m, d, n: bar.update(d, n, m),
            )
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
                "split": split,
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
    typer.echo(
        f"{data.folder.name} ({split}): {plural(n_queries, 'query', 'queries')}, "
        f"{plural(build.documents, 'document')}, {plural(build.chunks, 'chunk')}; {index_note}"
    )
    typer.echo(f"{'mode':<9}" + "".join(f"{label:>12}" for label in _LABELS.values()) + f"{'queries/s':>12}")
    for r in results:
        typer.echo(f"{r.mode:<9}" + "".join(f"{r.metrics[key]:>12.4f}" for key in _LABELS) + f"{r.qps:>12.1f}")
    for mode, written in files.items():
        typer.echo(f"run ({mode}): {written}", err=True)
