"""How `kb ask` finds a running `kb serve`: the server writes serve.json into the knowledge-base
folder while it runs. Kept light (no models, no HTTP) so that commands check it at no cost."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DISCOVERY_FILE = "serve.json"


def kb_id(folder: Path) -> str:
    """A short stable id of a knowledge-base folder (what `kb ask` compares to find its server)."""
    return hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]


def announced_server(folder: Path) -> dict | None:
    """The serve.json of a knowledge-base folder when its process is alive, else None."""
    try:
        data = json.loads((folder / DISCOVERY_FILE).read_text())
        os.kill(int(data["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data if isinstance(data, dict) else None
