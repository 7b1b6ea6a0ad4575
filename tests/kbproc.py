"""Run the real `kb` command in subprocesses: fake embedder, no network, isolated homes."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NETGUARD = REPO / "tests" / "netguard"

# Small chunks and batches so that an ingest commits often and a kill lands between or inside commits.
FAKE_SETTINGS = {"KB_EMBED_MODEL": "fake:", "KB_CHUNK_TOKENS": "40", "KB_CHUNK_OVERLAP": "8", "KB_EMBED_BATCH": "4"}


def kb_env(tmp_path: Path, *, delay: float = 0.0, **extra: str) -> dict[str, str]:
    """Environment for a kb subprocess: KB_* cleared, fake embedder (seconds per text `delay`), network blocked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(FAKE_SETTINGS)
    if delay:
        env["KB_EMBED_MODEL"] = f"fake:delay={delay}"
    env["KB_HOME"] = str(tmp_path / "kb-home")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(NETGUARD), str(REPO)])
    env.update(extra)
    return env


def kb_cmd(*args: str | Path) -> list[str]:
    """The argv of `kb ARGS` run with this interpreter."""
    return [sys.executable, "-m", "cli", *map(str, args)]


def run_kb(env: dict[str, str], *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `kb ARGS` to completion."""
    return subprocess.run(kb_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def start_kb(env: dict[str, str], *args: str | Path) -> subprocess.Popen[str]:
    """Start `kb ARGS` in the background."""
    return subprocess.Popen(kb_cmd(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, step: float = 0.02) -> bool:
    """Poll until `condition()` holds; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def stored_documents(home: Path) -> int:
    """How many documents the knowledge base at `home` holds (read-only; 0 if it cannot be read yet)."""
    try:
        db = sqlite3.connect(f"file:{home / 'kb.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT count(*) FROM documents").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (Linux /proc; empty elsewhere)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def sigkill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a process (not its children) and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
