"""API tokens for `kb serve`: kept hashed in the config file, each mapped to access groups.

    [tokens.alice]
    sha256 = "…"                      # hash of the token; the token itself is never stored
    groups = ["finance", "staff"]     # "*" sees every document
    scopes = ["search", "ask"]        # optional; default: every scope

A token is 32 random bytes (URL-safe base64), so a plain SHA-256 of it cannot be searched for
by brute force; a slow password hash would only slow every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.errors import ConfigError, InputError
from kb.groups import EVERYTHING, Access, check_group_name

SCOPES = ("search", "ask", "summarize")  # ask covers /v1/ask, /v1/chat/completions and chat
TOKEN_PREFIX = "kb-"


@dataclass(frozen=True)
class Token:
    """A configured token: its name, the SHA-256 of its secret, its groups and scopes."""

    name: str
    sha256: str
    groups: tuple[str, ...]
    scopes: tuple[str, ...] = SCOPES

    def access(self) -> Access:
        """What a caller holding this token may see."""
        return Access(frozenset(self.groups), self.name)


def hash_token(secret: str) -> str:
    """The hex SHA-256 stored for a token."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh random token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def parse_tokens(value: Any, where: str = "config") -> tuple[Token, ...]:
    """Tokens from the `[tokens]` table of the config file; ConfigError naming the bad entry."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: `tokens` must be a table of [tokens.NAME] entries")
    out = []
    for name, entry in value.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: tokens.{name} must be a table with sha256 and groups")
        unknown = set(entry) - {"sha256", "groups", "scopes"}
        if unknown:
            raise ConfigError(f"{where}: tokens.{name}: unknown key(s) {', '.join(sorted(unknown))}")
        digest = str(entry.get("sha256", "")).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"{where}: tokens.{name}.sha256 must be 64 hex digits (see `kb token create`)")
        groups = entry.get("groups", [])
        scopes = entry.get("scopes", list(SCOPES))
        if not isinstance(groups, list) or not isinstance(scopes, list):
            raise ConfigError(f"{where}: tokens.{name}: groups and scopes must be lists of names")
        try:
            checked = tuple(g if g == EVERYTHING else check_group_name(str(g)) for g in groups)
        except InputError as exc:
            raise ConfigError(f"{where}: tokens.{name}: {exc}") from None
        bad = [s for s in scopes if s not in SCOPES]
        if bad:
            raise ConfigError(f"{where}: tokens.{name}: unknown scope(s) {bad}; scopes are {', '.join(SCOPES)}")
        out.append(Token(str(name), digest, checked, tuple(scopes)))
    return tuple(out)


def authenticate(tokens: tuple[Token, ...], secret: str) -> Token | None:
    """The token whose hash matches `secret`, compared in constant time, or None."""
    digest = hash_token(secret)
    found = None
    for token in tokens:
        if hmac.compare_digest(token.sha256, digest):
            found = token
    return found


def token_entry(name: str, secret: str, groups: tuple[str, ...], scopes: tuple[str, ...] = SCOPES) -> str:
    """The TOML table that configures a token (appended to the config file by `kb token create`)."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise InputError(f"token name {name!r}: use letters, digits, '-' and '_'")
    quoted = ", ".join(f'"{g}"' for g in groups)
    lines = [f"[tokens.{name}]", f'sha256 = "{hash_token(secret)}"', f"groups = [{quoted}]"]
    if tuple(scopes) != SCOPES:
        lines.append("scopes = [" + ", ".join(f'"{s}"' for s in scopes) + "]")
    return "\n".join(lines) + "\n"


def append_token(config: Path, entry: str) -> None:
    """Append a token table to the config file, creating the file (and its folder) when needed."""
    config.parent.mkdir(parents=True, exist_ok=True)
    existing = config.read_text(encoding="utf-8") if config.is_file() else ""
    sep = "" if not existing or existing.endswith("\n\n") else ("\n" if existing.endswith("\n") else "\n\n")
    with open(config, "a", encoding="utf-8") as fh:
        fh.write(sep + entry)
    config.chmod(0o600)
