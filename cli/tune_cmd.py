"""`kb tune`: choose how hybrid search weighs its two sources on this knowledge base."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import ConfigOpt, EmbedOpt, JsonOpt, KbOpt, ThreadsOpt, print_json, settings
from cli.progress import Bar


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("tune")(tune)


def tune(
    kb: KbOpt = None,
    queries: Annotated[
        int, typer.Option("--queries", "-n", min=1, help="Pseudo-queries to make from the documents.")
    ] = 400,
    seed: Annotated[
        int, typer.Option("--seed", help="Which documents and pieces are drawn (same seed, same set).")
    ] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be chosen; record nothing.")] = False,
    reset: Annotated[
        bool, typer.Option("--reset", help="Forget the recorded setting: hybrid search goes back to the default.")
    ] = False,
    config: ConfigOpt = None,
    embed_model: EmbedOpt = None,
    threads: ThreadsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Tune hybrid search to this knowledge base: pick the dense/keyword weight that ranks its own documents best.

    Pseudo-queries are made from the stored documents (a sentence, a few of its words, a title,
    a heading with a phrase of its section), each with that piece held out of its document while
    both sources search; the weight whose fused ranking puts the source documents highest is
    recorded in the knowledge base's manifest (with the scores it was chosen on) and used by
    `kb search`, `kb ask` and `kb serve` from then on. The default weight is kept unless another
    beats it by more than twice its standard error. No question you ask is ever used. Re-run after
    the collection has changed much; `--reset` returns to the default. Each pseudo-query costs
    about two embeddings (the query, and its source passage without the held-out piece).
    """
    from kb.errors import KBNotFound
    from kb.knowledge import KnowledgeBase, kb_exists, write_fusion
    from kb.tune import tune as run_tune

    s = settings(config, home=kb, embed_model=embed_model, threads=threads)
    if not kb_exists(s.home):
        raise KBNotFound(f"no knowledge base at {s.home}; create one with `kb ingest FOLDER`")
    with KnowledgeBase(s, write=True) as base:
        if reset:
            write_fusion(base.folder, None)
            if json_out:
                print_json({"kb": str(base.folder), "reset": True})
            else:
                typer.echo(f"{base.folder}: recorded fusion forgotten; hybrid search uses the default weight")
            return
        with Bar("pseudo-queries", enabled=not quiet and not json_out) as bar:
            report = run_tune(
                base, queries=queries, seed=seed, record=not dry_run, progress=lambda d, n: bar.update(d, n)
            )
    if json_out:
        print_json(
            {"kb": str(s.home), "recorded": report.recorded, "seconds": round(report.seconds, 2), **report.record}
        )
        return
    c = report.choice
    kinds = ", ".join(f"{n} {kind}" for kind, n in c.kinds.items() if n)
    typer.echo(f"{c.queries} pseudo-queries ({kinds}); nDCG@10 of their held-out source documents:")
    typer.echo(f"{'dense weight':>12}  {'nDCG@10':>8}")
    for w, value in sorted(c.scores.items()):
        label = " (keyword only)" if w == 0 else " (dense only)" if w == 1 else ""
        marks = " <- chosen" if w == c.dense_weight else ""
        marks += " (default)" if w == c.default_weight else ""
        typer.echo(f"{w:>12.1f}  {value:>8.4f}{label}{marks}")
    if c.dense_weight != c.default_weight:
        verdict = (
            f"dense weight {c.dense_weight:.1f} chosen: {c.margin:+.4f} over the default {c.default_weight:.1f} "
            f"(standard error {c.stderr:.4f})"
        )
    elif c.best != c.default_weight:
        verdict = (
            f"the default weight {c.default_weight:.1f} is kept: {c.best:.1f} scored {c.margin:+.4f}, within "
            f"twice its standard error ({c.stderr:.4f})"
        )
    else:
        verdict = f"the default weight {c.default_weight:.1f} scored best and is kept"
    where = "not recorded (--dry-run)" if dry_run else f"recorded in {s.home / 'manifest.json'}"
    typer.echo(f"{verdict}; {where}; {report.seconds:.1f} s")
