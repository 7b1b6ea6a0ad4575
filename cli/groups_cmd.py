"""`kb groups` (which documents are in which access group) and `kb token` (API tokens for `kb serve`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli.common import ConfigOpt, JsonOpt, KbOpt, display_path, err, print_json, settings

groups_app = typer.Typer(
    help=(
        "Access groups: `kb ingest PATH --group NAME` and .kbgroups files put documents in groups; "
        "`kb serve` tokens see the documents of their groups, plus those in no group (unless the "
        "default_group setting names one)."
    ),
    no_args_is_help=False,
    invoke_without_command=True,
)
token_app = typer.Typer(help="API tokens for `kb serve`, stored hashed in the config file.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the command groups to the app."""
    app.add_typer(groups_app, name="groups")
    app.add_typer(token_app, name="token")


@groups_app.callback()
def groups_list(
    ctx: typer.Context,
    kb: KbOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the group rules (from `kb ingest --group`) and how many documents each group holds."""
    if ctx.invoked_subcommand is not None:
        return
    from kb.groups import groups_report

    s = settings(config, home=kb)
    store = _open_store(s.home)
    try:
        report = groups_report(store)
    finally:
        store.close()
    if json_out:
        print_json(report.to_json())
        return
    if not report.rules and not report.documents:
        typer.echo(f"No access groups: every document is visible to every token ({report.ungrouped} documents).")
        return
    if report.rules:
        typer.echo("Rules (kb ingest --group):")
        for root, name in report.rules:
            typer.echo(f"  {display_path(root)}  ->  {name}")
    typer.echo("Documents per group:")
    for name, n in report.documents.items():
        typer.echo(f"  {name}: {n}")
    who = f"only tokens in group {s.default_group!r}" if s.default_group else "every token"
    typer.echo(f"  (no group): {report.ungrouped}, visible to {who}")


@groups_app.command("remove")
def groups_remove(
    path: Annotated[Path, typer.Argument(help="The PATH a rule was recorded for by `kb ingest PATH --group`.")],
    group: Annotated[
        str | None, typer.Option("--group", "-g", help="Only this group (default: all of PATH's).")
    ] = None,
    kb: KbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Drop the `--group` rules of PATH; its documents keep only the groups other rules and .kbgroups files give."""
    from kb.groups import remove_rules
    from kb.knowledge import acquire_write_lock, release_write_lock
    from kb.store import Store

    s = settings(config, home=kb)
    _open_store(s.home).close()
    lock = acquire_write_lock(s.home)
    try:
        store = Store(s.home / "kb.sqlite")
        try:
            removed, kept = remove_rules(store, path, group)
        finally:
            store.close()
    finally:
        release_write_lock(lock)
    typer.echo(f"Removed {removed} rule{'s' if removed != 1 else ''} for {display_path(str(path))}.", err=True)
    for line in kept:
        err(f"kept previous groups: {line}")


def _open_store(home: Path):
    from kb.errors import KBNotFound
    from kb.knowledge import kb_exists
    from kb.store import Store

    if not kb_exists(home):
        raise KBNotFound(f"no knowledge base at {home}; create one with `kb ingest FOLDER`")
    return Store(home / "kb.sqlite")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="A name for the token (who or what uses it).")],
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="Group the token may read (repeatable; '*' = all).")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="Allowed: search, ask (also chat), summarize (repeatable; default all)."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Make a new token, append its hash to the config file, and print the token (shown only once).

    A token without --group sees only documents in no group.
    """
    from kb.config import Settings, default_config_path
    from kb.errors import InputError
    from kb.groups import EVERYTHING, parse_group_options
    from kb.tokens import SCOPES, append_token, new_secret, token_entry

    path = config or (Path(os.environ["KB_CONFIG"]) if os.environ.get("KB_CONFIG") else default_config_path())
    current = Settings.load(path) if path.is_file() else None
    if current is not None and any(t.name == name for t in current.tokens):
        raise InputError(f"{path}: a token named {name!r} already exists")
    names = list(group or [])
    groups = (EVERYTHING,) if EVERYTHING in names else parse_group_options(names)
    scopes = tuple(dict.fromkeys(scope or SCOPES))
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise InputError(f"--scope {bad[0]}: scopes are {', '.join(SCOPES)}")
    secret = new_secret()
    before = path.read_text(encoding="utf-8") if path.is_file() else None
    append_token(path, token_entry(name, secret, groups, scopes))
    try:
        Settings.load(path)
    except Exception:
        # Never leave a config file that no longer loads.
        if before is None:
            path.unlink()
        else:
            path.write_text(before, encoding="utf-8")
        raise
    err(f"Token {name!r} added to {path} (groups: {', '.join(groups) or 'none'}). It is shown only now:")
    typer.echo(secret)


@token_app.command("list")
def token_list(config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """The configured tokens: name, groups and scopes (never the secrets, which are not stored)."""
    s = settings(config)
    rows = [{"name": t.name, "groups": list(t.groups), "scopes": list(t.scopes)} for t in s.tokens]
    if json_out:
        print_json(rows)
        return
    if not rows:
        typer.echo("No tokens: `kb serve` answers only on loopback, without authentication.")
    for r in rows:
        typer.echo(f"{r['name']}: groups {', '.join(r['groups']) or '(none)'}; scopes {', '.join(r['scopes'])}")
