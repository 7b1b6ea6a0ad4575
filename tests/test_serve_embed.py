"""The server's shared query embedder (kb/server/service.py SharedEmbedder): queries of concurrent
requests are embedded together in batches, each exact text once, and remembered; bulk calls go
straight to the model. The model here is the hashing stand-in, slowed so that batches form."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from kb.server.service import SharedEmbedder
from tests.fakes import FakeEmbedder


class SlowEmbedder(FakeEmbedder):
    """The hashing embedder, taking `delay` seconds a call and recording the texts of each call."""

    def __init__(self, dim: int = 64, delay: float = 0.05, fail_on: str = "") -> None:
        super().__init__(dim)
        self.delay = delay
        self.fail_on = fail_on
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        with self.lock:
            self.batches.append(list(texts))
        time.sleep(self.delay)
        if self.fail_on and self.fail_on in texts:
            raise RuntimeError(f"cannot embed {self.fail_on!r}")
        return super().embed(texts, batch_size=batch_size)


def alone(text: str, dim: int = 64) -> np.ndarray:
    return FakeEmbedder(dim).embed([text])[0]


def run_threads(n: int, work) -> list:
    barrier = threading.Barrier(n)
    out: list = [None] * n

    def one(i: int) -> None:
        barrier.wait()
        out[i] = work(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_concurrent_queries_are_batched_and_each_gets_its_own_vector():
    inner = SlowEmbedder()
    shared = SharedEmbedder(inner, parallel=1)
    texts = [f"question number {i} about annual leave" for i in range(24)]
    got = run_threads(24, lambda i: shared.embed([texts[i]]))
    for text, vec in zip(texts, got, strict=True):
        assert vec.shape == (1, 64) and vec.dtype == np.float32
        assert np.array_equal(vec[0], alone(text))
    embedded = [t for batch in inner.batches for t in batch]
    assert sorted(embedded) == sorted(texts), "each text embedded exactly once"
    assert len(inner.batches) < len(texts) and max(map(len, inner.batches)) > 1, inner.batches
    assert max(map(len, inner.batches)) <= SharedEmbedder.MAX_BATCH
    assert sum(shared.batches) == len(texts)
    shared.close()


def test_a_text_asked_by_many_at_once_is_embedded_once_then_remembered():
    inner = SlowEmbedder()
    shared = SharedEmbedder(inner, parallel=2)
    got = run_threads(12, lambda i: shared.embed(["same question"]))
    assert all(np.array_equal(v[0], alone("same question")) for v in got)
    assert [t for b in inner.batches for t in b] == ["same question"]
    calls = len(inner.batches)
    again = shared.embed(["same question", "same question"])
    assert len(inner.batches) == calls, "remembered: no model call"
    assert np.array_equal(again[0], again[1]) and np.array_equal(again[0], alone("same question"))
    shared.close()


def test_callers_get_copies_and_the_cache_is_per_model():
    a = SharedEmbedder(FakeEmbedder(64))
    b = SharedEmbedder(FakeEmbedder(32))
    first = a.embed(["annual leave"])
    first[:] = 0.0  # a caller scribbling on its result must not change what others get
    assert np.array_equal(a.embed(["annual leave"])[0], alone("annual leave"))
    other = b.embed(["annual leave"])
    assert other.shape == (1, 32) and np.array_equal(other[0], alone("annual leave", 32))
    a.close()
    b.close()


def test_the_cache_forgets_the_least_recently_used(monkeypatch):
    monkeypatch.setattr(SharedEmbedder, "CACHE_SIZE", 3)
    inner = SlowEmbedder(delay=0.0)
    shared = SharedEmbedder(inner)
    for t in ("a", "b", "c"):
        shared.embed([t])
    shared.embed(["a"])  # a is now the most recent
    shared.embed(["d"])  # b goes
    calls = len(inner.batches)
    shared.embed(["a"])
    shared.embed(["c"])
    assert len(inner.batches) == calls
    shared.embed(["b"])
    assert inner.batches[-1] == ["b"]
    shared.close()


def test_a_failing_batch_fails_its_callers_and_the_next_batch_works():
    inner = SlowEmbedder(fail_on="broken")
    shared = SharedEmbedder(inner, parallel=1)
    with pytest.raises(RuntimeError, match="cannot embed 'broken'"):
        shared.embed(["broken"])
    assert np.array_equal(shared.embed(["fine"])[0], alone("fine"))
    shared.inner.fail_on = ""
    assert np.array_equal(shared.embed(["broken"])[0], alone("broken")), "a failure is not remembered"
    shared.close()


def test_bulk_calls_go_straight_to_the_model_and_are_not_remembered():
    inner = SlowEmbedder(delay=0.0)
    shared = SharedEmbedder(inner)
    texts = [f"sentence {i}" for i in range(SharedEmbedder.SHORT + 1)]
    vecs = shared.embed(texts)
    assert inner.batches == [texts] and all(np.array_equal(v, alone(t)) for v, t in zip(vecs, texts, strict=True))
    shared.embed([texts[0]])
    assert inner.batches[-1] == [texts[0]]
    assert shared.embed([]).shape == (0, 64)
    shared.close()


def test_awaited_queries_batch_together_without_blocking_the_event_loop():
    inner = SlowEmbedder(delay=0.1)
    shared = SharedEmbedder(inner, parallel=1)
    texts = [f"async question {i}" for i in range(10)]

    async def main() -> tuple[list[np.ndarray], int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        got = await asyncio.gather(*(shared.embed_async([t]) for t in texts))
        ticker.cancel()
        return got, ticks

    got, ticks = asyncio.run(main())
    assert all(np.array_equal(v[0], alone(t)) for v, t in zip(got, texts, strict=True))
    assert len(inner.batches) <= 2, inner.batches  # the first text alone at most, then the rest
    assert ticks >= 5, "the loop ran while the model worked"
    shared.close()


def test_idle_workers_end_and_a_later_query_starts_one(monkeypatch):
    monkeypatch.setattr(SharedEmbedder, "IDLE_SECONDS", 0.05)
    shared = SharedEmbedder(FakeEmbedder(), parallel=2)
    shared.embed(["one"])
    deadline = time.monotonic() + 5
    while shared._workers and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not shared._workers
    assert np.array_equal(shared.embed(["two"])[0], alone("two"))
    shared.close()
