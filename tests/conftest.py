"""Shared fixtures: no network, isolated knowledge-base homes, fake models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "netguard"))
import tests_netguard_impl

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    """Any connection beyond loopback fails the test that made it."""
    tests_netguard_impl.install()
    yield
    tests_netguard_impl.uninstall()


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Never touch the user's knowledge base or config; never ask a model hub."""
    for key in list(__import__("os").environ):
        if key.startswith("KB_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KB_HOME", str(tmp_path / "kb-home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def settings(tmp_path):
    """Settings for a fresh knowledge base in tmp_path, sized for the fake embedder."""
    from kb.config import Settings

    return Settings.load().with_overrides(home=tmp_path / "kb", chunk_tokens=40, chunk_overlap=8)


@pytest.fixture
def fake_embedder():
    """A deterministic embedder."""
    from tests.fakes import FakeEmbedder

    return FakeEmbedder()


@pytest.fixture
def kb_of(settings, fake_embedder, tmp_path):
    """A knowledge base of files: `with kb_of({"leave.txt": "..."}) as base:` writes them to a folder
    of tmp_path and ingests them with the fake embedder (settings overridden by keywords)."""
    from contextlib import contextmanager

    from kb.indexer import ingest
    from kb.knowledge import KnowledgeBase

    @contextmanager
    def make(files: dict[str, str], **overrides):
        folder = tmp_path / "docs"
        folder.mkdir(exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
        with KnowledgeBase(settings.with_overrides(**overrides), embedder=fake_embedder, write=True) as base:
            ingest(base, [folder], isolate=False)
            yield base

    return make


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray of two CPUs, started on first use and shut down at the end of the session."""
    import os

    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20)
    yield ray
    ray.shutdown()
