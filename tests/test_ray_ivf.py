"""Large indexes on Ray (kb/shards.py, kb/distributed.py): one IVF index trained once, its shards
added on workers and merged in order, is the index a single process builds; `kb ingest --engine
ray` past the IVF threshold builds it so and records the layout; and a driver killed mid-ingest
leaves a knowledge base that answers, which a re-run completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.ray_ivf import clustered
from kb.indexer import ingest
from kb.knowledge import KnowledgeBase, read_index_layout
from kb.retrieval import Retriever
from kb.shards import Merger, add_shard, deserialize, pieces, serialize, trained
from kb.vectors import VectorIndex, add_in_batches, build_ivf, default_nprobe, ivf_lists, with_direct_map
from tests.kbproc import kb_cmd, kb_env, run_kb, stored_documents, wait_for
from tests.test_distributed import QUESTIONS, _assert_same, _ray_workers, _snapshot, _write

DIM = 32


def _lists(index) -> list[list[int]]:
    """Each IVF list's ids, in stored order."""
    import faiss

    inv = index.invlists
    return [faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i)).tolist() for i in range(inv.nlist)]


def _top(index, queries: np.ndarray, nprobe: int) -> list[list[int]]:
    index.nprobe = nprobe
    return index.search(queries, 10)[1].tolist()


def _data(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.vstack([clustered(7, c, 1000, DIM, 40) for c in range(-(-n // 1000))])[:n]
    ids = np.arange(n, dtype=np.int64) * 3 + 11  # not row numbers: ids must travel with their vectors
    return x, ids, clustered(7, 0, 50, DIM, 40, stream=2)


def test_shards_merged_in_order_are_the_single_process_index():
    x, ids, queries = _data(3000)
    empty = trained(DIM, x[:1500], nlist=30)
    whole = with_direct_map(deserialize(serialize(empty)))
    add_in_batches(whole, ids, x)
    blob = serialize(empty)
    merged = Merger(deserialize(blob)).add_all(add_shard(blob, ids[a:b], x[a:b]) for a, b in pieces(3000, 700))
    index = merged.result()
    assert merged.shards == 5 and index.ntotal == 3000
    assert _lists(index) == _lists(whole)
    assert _top(index, queries, 4) == _top(whole, queries, 4)
    # Sync removes vectors: the merged index can, and then still answers like the other.
    gone = ids[::7]
    assert index.remove_ids(gone) == whole.remove_ids(gone) == len(gone)
    assert not set(gone.tolist()) & {i for row in _top(index, queries, 30) for i in row}
    assert _top(index, queries, 4) == _top(whole, queries, 4)
    np.testing.assert_array_equal(index.reconstruct(int(ids[1])), x[1])


def test_fp16_codec_keeps_the_ranking():
    x, _, queries = _data(3000)
    exact = np.argsort(-(queries @ x.T), axis=1)[:, :10]
    index = trained(DIM, x, nlist=30, codec="fp16")
    add_in_batches(index, np.arange(3000), x)
    found = _top(index, queries, 30)
    assert np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact.tolist(), strict=True)]) >= 0.98
    with pytest.raises(ValueError, match="codec must be one of"):
        trained(DIM, x, nlist=30, codec="pq")


def test_ivf_shards_on_ray_equal_the_local_build(ray_cluster):
    from kb.distributed import build_ivf_on_ray

    x, ids, queries = _data(4000)
    local = build_ivf(DIM, x, ids)
    remote, layout = build_ivf_on_ray(ray_cluster, DIM, x, ids, workers=2, piece=900)
    nlist = ivf_lists(4000)
    assert layout == {
        "kind": "ivf",
        "lists": nlist,
        "vectors_at_build": 4000,
        "trained_on": 3150,  # 50 per list, of 63 lists
        "shards": 5,
        "built_on": "ray (2 workers)",
    }
    np.testing.assert_array_equal(remote.quantizer.reconstruct_n(0, nlist), local.quantizer.reconstruct_n(0, nlist))
    assert _lists(remote) == _lists(local)
    nprobe = default_nprobe(nlist)
    assert _top(remote, queries, nprobe) == _top(local, queries, nprobe)
    assert remote.remove_ids(ids[:100]) == 100  # it has the direct map sync needs


def test_a_failed_cluster_builds_the_same_index_on_the_driver(ray_cluster, monkeypatch):
    import kb.distributed
    from kb.distributed import RayEngine

    def lost(*args, **kwargs):
        raise RuntimeError("the cluster went away")

    monkeypatch.setattr(kb.distributed, "build_ivf_on_ray", lost)
    x, ids, _ = _data(2000)
    index, layout = RayEngine(workers=2).build_ivf(DIM, x, ids)
    assert _lists(index) == _lists(build_ivf(DIM, x, ids))
    assert layout["built_on"] == "driver (Ray failed: RuntimeError: the cluster went away)"
    assert layout["shards"] == 1


# --- kb ingest --engine ray past the IVF threshold -----------------------------------------------

IVF_ENV = {"KB_EXACT_SEARCH_MAX": "400"}  # IVF from 400 chunks, not 200,000


def _corpus(folder: Path, files: int) -> Path:
    for i in range(files):
        # Words of its own in every passage: no two passages tie in score, so rankings compare exactly.
        words = " ".join(f"memo{i}x{j // 10} topic{i % 9} item{j % 23} leave{j % 7} policy{j % 11}" for j in range(150))
        _write(folder / f"part{i % 3}" / f"memo-{i:02d}.md", f"# Memo {i}\n\n{words}.\n")
    return folder


def _assert_same_kb(a: dict, b: dict) -> None:
    """Two knowledge bases hold the same (tests/test_distributed.py) and rank the same, up to the order of
    passages whose scores tie exactly (the hashing fake embedder makes many: their order follows ids)."""
    _assert_same({**a, "searches": []}, {**b, "searches": []})
    for hits_a, hits_b in zip(a["searches"], b["searches"], strict=True):
        assert [h[-1] for h in hits_a] == [h[-1] for h in hits_b]  # the same scores, rank by rank
        # The same passages above the lowest score shown; a tie at that score may be cut at k differently.
        lowest = hits_a[-1][-1] if hits_a else None
        assert {h for h in hits_a if h[-1] != lowest} == {h for h in hits_b if h[-1] != lowest}


def _kb_settings(settings, home: Path, **extra):
    return settings.with_overrides(home=home, embed_model="fake:", exact_search_max=400, **extra)


def _env(tmp_path: Path, home: Path) -> dict[str, str]:
    # No network beyond loopback (tests/netguard), which the Ray cluster is on.
    return kb_env(tmp_path, KB_HOME=str(home), KB_CHUNK_TOKENS="40", KB_CHUNK_OVERLAP="8", **IVF_ENV)


def _ray_args(ray) -> list[str]:
    return ["--engine", "ray", "--ray-address", str(ray.get_runtime_context().gcs_address), "--ray-workers", "2"]


def test_kb_ingest_on_ray_builds_the_ivf_index_in_shards(ray_cluster, tmp_path, settings):
    """The real command: past the threshold the index is IVF, built on the workers and recorded in the
    manifest; it is the index a local build makes from the same stored vectors; the knowledge base
    searches like a local build's; and sync's removals and additions keep it so."""
    docs = _corpus(tmp_path / "docs", 24)
    home = tmp_path / "ray-kb"
    out = run_kb(_env(tmp_path, home), "ingest", docs, *_ray_args(ray_cluster), timeout=300)
    assert out.returncode == 0, out.stderr
    layout = read_index_layout(home)
    assert layout is not None and layout["kind"] == "ivf" and layout["built_on"] == "ray (2 workers)"
    assert layout["vectors_at_build"] > 400 and layout["shards"] >= 1
    assert json.loads((home / "vectors.json").read_text())["layout"] == layout
    # Every IVF list probed: search is exact, so two builds compare whatever order their chunks got ids in.
    exhaustive = {"ivf_nprobe": 10**6}

    with KnowledgeBase(_kb_settings(settings, home), write=True) as kb:
        assert kb.vectors.kind == "ivf"
        # The same stored vectors, in the same order, built in one process: the same index.
        local = VectorIndex.rebuild(kb.store, kb.manifest.dim, kb.vectors.policy)
        assert _lists(kb.vectors.index) == _lists(local.index)
        queries = kb.embedder.embed(QUESTIONS)
        assert kb.vectors.search(queries, 10) == local.search(queries, 10)

    def both() -> None:
        with KnowledgeBase(_kb_settings(settings, tmp_path / "local-kb"), write=True) as kb:
            ingest(kb, [docs])
        with KnowledgeBase(_kb_settings(settings, tmp_path / "local-kb", **exhaustive)) as kb:
            local = _snapshot(kb)
        with KnowledgeBase(_kb_settings(settings, home, **exhaustive)) as kb:
            assert kb.vectors.kind == "ivf"
            _assert_same_kb(local, _snapshot(kb))

    both()
    (docs / "part0" / "memo-00.md").unlink()
    _write(docs / "part1" / "memo-01.md", "# Memo 1\n\n" + "rewritten about travel and expenses " * 40)
    _write(docs / "part2" / "memo-new.md", "# New\n\n" + "a new memo about parking badges " * 40)
    again = run_kb(_env(tmp_path, home), "ingest", docs, *_ray_args(ray_cluster), timeout=300)
    assert again.returncode == 0, again.stderr
    both()


# --- the driver killed mid-ingest --------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL and /proc")
def test_a_killed_ray_driver_leaves_a_working_kb_and_a_rerun_completes(ray_cluster, tmp_path, settings):
    """SIGKILL `kb ingest --engine ray` once some files are stored: the knowledge base opens and
    `kb search` answers, and the same command again gives the knowledge base a clean build gives."""
    files = 30
    docs = _corpus(tmp_path / "docs", files)
    home = tmp_path / "killed-kb"
    env = {**_env(tmp_path, home), "KB_EMBED_MODEL": "fake:delay=0.01"}  # slow enough to be caught mid-run
    driver = subprocess.Popen(
        kb_cmd("ingest", docs, *_ray_args(ray_cluster), "--quiet"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: stored_documents(home) >= 3 or driver.poll() is not None, timeout=180, step=0.01)
        workers = _ray_workers()
        os.kill(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == -signal.SIGKILL
    stored = stored_documents(home)
    assert 3 <= stored < files, f"{stored} of {files} files stored: the kill did not land mid-run"
    assert workers, "no Ray worker of the driver was found"
    assert wait_for(lambda: not set(workers) & set(_ray_workers()), timeout=60), "the dead driver's workers run on"

    search = run_kb(env, "search", "leave policy", "--json")
    assert search.returncode == 0, search.stderr
    assert json.loads(search.stdout)["hits"], "the knowledge base left behind does not answer"

    rerun = run_kb(env, "ingest", docs, *_ray_args(ray_cluster), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with KnowledgeBase(_kb_settings(settings, tmp_path / "clean", ivf_nprobe=10**6), write=True) as kb:
        ingest(kb, [docs])
        clean = _snapshot(kb)
    with KnowledgeBase(_kb_settings(settings, home, ivf_nprobe=10**6)) as kb:
        _assert_same_kb(clean, _snapshot(kb))
        assert Retriever(kb).search("leave policy", k=3)
