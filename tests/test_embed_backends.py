"""Embedding backends: the ONNX export of the packaged model, made offline once per session,
matches PyTorch (fp32, OpenVINO) or stays close to it (int8, which gets its own fingerprint);
the query path never imports torch; unsupported models fall back or fail clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kb.onnx_embed import ExportError, pool, read_pipeline

REPO = Path(__file__).resolve().parent.parent
TEXTS = [
    "How many days of annual leave do employees get?",
    "Up to 5 days of unused leave may be carried over into the following year. " * 12,
    "  padded with spaces  ",
    "x",
    "Expense claims need receipts.",
    "The VPN must be used on public networks; passwords rotate every 90 days and MFA is mandatory.",
]


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One offline export of the packaged model for the whole session (about 15-30 s on 2 cores)."""
    from kb.embeddings import default_embed_model_dir, model_fingerprint
    from kb.onnx_embed import ensure_export

    root = tmp_path_factory.mktemp("models")
    path = default_embed_model_dir()
    ensure_export(path, model_fingerprint(path), root)
    return root


@pytest.fixture
def cache_env(model_cache, monkeypatch):
    monkeypatch.setenv("KB_MODEL_CACHE", str(model_cache))
    return model_cache


@pytest.fixture(scope="session")
def torch_vectors():
    from kb.embeddings import load_embedder

    return load_embedder("default", threads=2, backend="torch").embed(TEXTS)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_pooling_modes():
    hidden = np.array([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    assert np.allclose(pool(hidden, mask, "mean"), [[2**-0.5, 2**-0.5]])
    assert np.allclose(pool(hidden, mask, "cls"), [[1.0, 0.0]])
    assert np.allclose(pool(hidden, mask, "max"), [[2**-0.5, 2**-0.5]])  # the padded token is ignored


def test_backend_setting(monkeypatch):
    from kb.config import Settings
    from kb.errors import ConfigError

    assert Settings.load().embed_backend == "auto"
    monkeypatch.setenv("KB_EMBED_BACKEND", "onnx-int8")
    assert Settings.load().embed_backend == "onnx-int8"
    monkeypatch.setenv("KB_EMBED_BACKEND", "gpu")
    with pytest.raises(ConfigError):
        Settings.load()


def test_unsupported_pipeline_falls_back_to_torch_in_auto_only(tmp_path):
    from kb.embeddings import SentenceTransformerEmbedder, default_embed_model_dir, load_embedder
    from kb.errors import ModelNotFound

    src = default_embed_model_dir()
    folder = tmp_path / "with-dense"
    folder.mkdir()
    for item in src.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "modules.json").unlink()
    modules = json.loads((src / "modules.json").read_text())
    modules.append({"idx": 9, "name": "9", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ExportError):
        read_pipeline(folder)
    assert isinstance(load_embedder(str(folder), backend="auto"), SentenceTransformerEmbedder)
    with pytest.raises(ModelNotFound, match="not supported"):
        load_embedder(str(folder), backend="onnx")


@pytest.mark.models
def test_export_is_cached_and_checked(cache_env):
    from kb.embeddings import default_embed_model_dir, model_fingerprint
    from kb.onnx_embed import FP32_FILE, INT8_FILE, META_FILE, ensure_export

    path = default_embed_model_dir()
    folder = ensure_export(path, model_fingerprint(path), cache_env)
    meta = json.loads((folder / META_FILE).read_text())
    stamp = (folder / FP32_FILE).stat().st_mtime_ns
    assert ensure_export(path, model_fingerprint(path), cache_env) == folder  # no second export
    assert (folder / FP32_FILE).stat().st_mtime_ns == stamp
    assert (folder / INT8_FILE).stat().st_size < (folder / FP32_FILE).stat().st_size * 0.7
    assert meta["min_cosine_to_torch"][FP32_FILE] > 0.9999
    assert meta["fused_operators"].get("Attention") == 6  # all-MiniLM-L6-v2 has 6 layers


@pytest.mark.models
def test_onnx_fp32_matches_torch(cache_env, torch_vectors):
    from kb.embeddings import load_embedder

    onnx = load_embedder("default", threads=2, backend="onnx")
    torch_embedder = load_embedder("default", backend="torch")
    vecs = onnx.embed(TEXTS, batch_size=4)  # several batches, sorted by length
    assert vecs.dtype == np.float32 and vecs.shape == torch_vectors.shape
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert cosines(vecs, torch_vectors).min() > 0.99999
    # Same vectors, same fingerprint: a knowledge base built with torch opens with onnx.
    assert onnx.fingerprint == torch_embedder.fingerprint
    assert (onnx.name, onnx.dim, onnx.max_tokens) == (torch_embedder.name, 384, 256)
    assert onnx.embed([]).shape == (0, 384)


@pytest.mark.models
def test_int8_is_close_and_has_its_own_fingerprint(cache_env, torch_vectors):
    from kb.embeddings import load_embedder

    int8 = load_embedder("default", threads=2, backend="onnx-int8")
    c = cosines(int8.embed(TEXTS), torch_vectors)
    assert c.min() > 0.97 and c.mean() > 0.985
    assert int8.fingerprint == load_embedder("default", backend="torch").fingerprint + "-int8"


@pytest.mark.models
def test_openvino_and_auto_match_torch(cache_env, torch_vectors):
    from kb.embeddings import load_embedder
    from kb.onnx_embed import AUTO_BULK

    ov = load_embedder("default", threads=2, backend="openvino")
    assert cosines(ov.embed(TEXTS), torch_vectors).min() > 0.9995  # bf16 on CPUs that have it
    auto = load_embedder("default", threads=2, backend="auto")
    assert auto.runtime_for(1) == "onnx" and auto.runtime_for(AUTO_BULK) == "openvino"
    assert cosines(auto.embed(TEXTS), torch_vectors).min() > 0.99999  # few texts: ONNX Runtime fp32
    bulk = auto.embed(TEXTS * (AUTO_BULK // len(TEXTS) + 1))
    assert cosines(bulk[: len(TEXTS)], torch_vectors).min() > 0.9995
    assert auto.fingerprint == ov.fingerprint


@pytest.mark.models
def test_query_path_does_not_import_torch(cache_env):
    code = (
        "import sys; from kb.embeddings import load_embedder; "
        "v = load_embedder('default', threads=1).embed(['annual leave']); "
        "assert v.shape == (1, 384); "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))"
    )
    env = {**os.environ, "KB_MODEL_CACHE": str(cache_env)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert out.stderr == ""  # the library prints nothing


def test_server_batches_of_queries_match_each_query_embedded_alone(cache_env):
    """The server embeds concurrent queries in one ONNX call (SharedEmbedder): padding them to the
    longest must not move any vector beyond float noise."""
    from kb.embeddings import load_embedder
    from kb.server.service import SharedEmbedder

    onnx = load_embedder("default", threads=1, backend="onnx")
    queries = [t for t in TEXTS if len(t) < 200] + ["annual leave", "Who approves expense claims over 500 euros?"]
    singles = np.stack([onnx.embed([q])[0] for q in queries])
    shared = SharedEmbedder(onnx, parallel=1)
    futures = shared.submit(queries)  # queued at once: the worker takes them as one batch
    batched = np.stack([f.result(timeout=60) for f in futures])
    assert list(shared.batches) == [len(queries)]
    assert np.abs(batched - singles).max() < 1e-5
    shared.close()
