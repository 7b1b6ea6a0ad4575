"""One LLM, many callers: a bounded queue in front of it.

llama.cpp runs one generation at a time, so requests that need the LLM take turns. At most
`waiting` of them may wait while one runs; one more is refused at once (HTTP 429 with a
Retry-After estimated from recent job times), so a burst never turns into a hang. A caller
whose client went away sets its cancel event: a waiting job leaves the queue, and a running one
stops at its next generated token, freeing the LLM for the next caller.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kb.errors import KBError


class QueueFull(KBError):
    """Every place in the LLM queue is taken."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the LLM queue is full; retry in about {retry_after} s")
        self.retry_after = retry_after


class Cancelled(Exception):
    """The caller went away; the job stops (not an error worth reporting)."""


@dataclass
class QueueStats:
    """What /v1/status reports of the queue."""

    capacity: int
    running: int
    waiting: int
    served: int
    refused: int
    cancelled: int
    mean_job_seconds: float | None

    def to_json(self) -> dict:
        """The documented JSON form."""
        return {
            "capacity": self.capacity,
            "running": self.running,
            "waiting": self.waiting,
            "served": self.served,
            "refused": self.refused,
            "cancelled": self.cancelled,
            "mean_job_seconds": None if self.mean_job_seconds is None else round(self.mean_job_seconds, 3),
        }


class Ticket:
    """A place in the queue, taken by `LLMQueue.admit`; `run` waits for the LLM, `release` gives the place back."""

    def __init__(self, queue: LLMQueue) -> None:
        self._queue = queue
        self._released = False
        self.queued_at = time.monotonic()
        self.wait_seconds = 0.0

    @contextmanager
    def run(self, cancel: threading.Event | None = None) -> Iterator[None]:
        """Hold the LLM for the body; raises Cancelled if `cancel` is set while waiting."""
        q = self._queue
        try:
            while not q._llm.acquire(timeout=0.05):
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
            self.wait_seconds = time.monotonic() - self.queued_at
            started = time.monotonic()
            try:
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                yield
            finally:
                q._llm.release()
                q._record(time.monotonic() - started)
        except Cancelled:
            q._count("cancelled")
            raise
        finally:
            self.release()

    def release(self) -> None:
        """Give the place back (idempotent)."""
        if not self._released:
            self._released = True
            self._queue._leave()


class LLMQueue:
    """Admission and turn-taking for the one LLM."""

    def __init__(self, waiting: int) -> None:
        self.capacity = waiting + 1  # the running job and those waiting behind it
        self._lock = threading.Lock()
        self._llm = threading.Lock()
        self._inside = 0
        self._served = self._refused = self._cancelled = 0
        self._mean: float | None = None

    def admit(self) -> Ticket:
        """A place in the queue, or QueueFull at once."""
        with self._lock:
            if self._inside >= self.capacity:
                self._refused += 1
                raise QueueFull(self._retry_after())
            self._inside += 1
        return Ticket(self)

    def _retry_after(self) -> int:
        # A place frees when the running job ends: about one job's time from now.
        return max(1, math.ceil(self._mean if self._mean is not None else 5.0))

    def _leave(self) -> None:
        with self._lock:
            self._inside -= 1

    def _record(self, seconds: float) -> None:
        with self._lock:
            self._served += 1
            self._mean = seconds if self._mean is None else 0.8 * self._mean + 0.2 * seconds

    def _count(self, what: str) -> None:
        with self._lock:
            if what == "cancelled":
                self._cancelled += 1

    def stats(self) -> QueueStats:
        """A snapshot of the queue."""
        with self._lock:
            running = 1 if self._llm.locked() else 0
            return QueueStats(
                self.capacity,
                running,
                max(0, self._inside - running),
                self._served,
                self._refused,
                self._cancelled,
                self._mean,
            )
