"""Load benchmark of `kb serve` on loopback: concurrent search clients, concurrent ask clients
behind the bounded LLM queue, and one streaming client's time to the first verified sentence.

    python bench/serve_load.py                         # samples/, default models
    python bench/serve_load.py --serve-kb PATH --search-clients 32 --ask-clients 8
    python bench/serve_load.py --search-only           # the two search phases only, no LLM loaded
    python bench/serve_load.py --search-only --raw-client   # ... with a lean HTTP client instead of httpx
    python bench/run.py --only serve_load              # the same, in the shared runner's report

It ingests samples/ into a temporary knowledge base (unless --serve-kb), starts `kb serve` in its own
process on a free 127.0.0.1 port, warms it up, runs each phase with a bounded number of
requests and a time limit, stops the server, prints the figures beside their targets, and
appends one JSON line to bench/results.jsonl. Only loopback is contacted.

Targets (issue 15): warm /v1/search p95 <= 100 ms under 32 clients with 0 errors; every ask
answered or refused with 429, 0 errors; warm /v1/ask first verified sentence <= 3 s with the
default model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results.jsonl"
SAMPLES = REPO / "samples"
QUESTIONS = [
    json.loads(line)["question"] for line in (SAMPLES / "questions.jsonl").read_text().splitlines() if line.strip()
]
SEARCH_P95_TARGET_MS = 100.0
FIRST_SENTENCE_TARGET_S = 3.0


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_per_request(pid: int, before: float | None, requests: int) -> float | None:
    """Server CPU milliseconds per request since `before`: unlike latency, hardly changed by
    other programs competing for the cores, so it says what an idle machine could serve."""
    after = cpu_seconds(pid)
    if before is None or after is None or not requests:
        return None
    return round((after - before) * 1000 / requests, 2)


def _own_cpu_per_request(before: float, requests: int) -> float | None:
    """This process's CPU milliseconds per request since `before` (time.process_time): what the
    benchmark's own HTTP clients spend, on the same cores as the server."""
    if not requests:
        return None
    return round((time.process_time() - before) * 1000 / requests, 2)


def kb_command() -> list[str]:
    """How to run kb with this Python."""
    return [sys.executable, "-m", "cli"]


def start_server(home: Path, port: int, queue: int, log: Path, *, llm: bool = True) -> subprocess.Popen:
    """`kb serve` in its own process (without an LLM unless `llm`); returns once /health answers."""
    env = {**os.environ, "KB_SERVE_QUEUE": str(queue)}
    proc = subprocess.Popen(
        [*kb_command(), "serve", "--kb", str(home), "--port", str(port), *([] if llm else ["--no-llm"])],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kb serve exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"kb serve did not answer within 300 s; see {log}")


# What counts as a failed search (a connection error, a timeout, a body without hits).
SEARCH_ERRORS = (httpx.HTTPError, OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, KeyError)


class RawClient:
    """A minimal HTTP/1.1 keep-alive client for JSON POSTs (--raw-client): about 2.3 ms of CPU per
    search against httpx's 3.3-4.3 ms (2 shared cores, 2026-12-02), so that on a small machine the
    load generator takes less of the cores the server needs."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port or 80)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        """(status, body) of one POST; the connection is opened on first use and kept."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def search_phase(
    url: str, clients: int, per_client: int, limit_s: float, distinct: bool, raw: bool = False
) -> dict[str, Any]:
    """`clients` concurrent clients, each sending `per_client` searches one after the other: the
    sample questions over and over, or (`distinct`) each made unique, so none is answered from
    the server's cache of query vectors. The clients are httpx's, or with `raw` RawClient."""
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + limit_s

    async def client(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            rc = RawClient(url) if raw else None
            for j in range(per_client):
                if time.monotonic() > deadline:
                    break
                q = QUESTIONS[(i * per_client + j) % len(QUESTIONS)]
                if distinct:
                    q = f"{q} (request {i}-{j})"
                t0 = time.perf_counter()
                try:
                    if rc is not None:
                        status, body = await asyncio.wait_for(rc.post("/v1/search", {"query": q, "k": 10}), 30)
                    else:
                        r = await c.post("/v1/search", json={"query": q, "k": 10})
                        status, body = r.status_code, r.content
                    if status != 200:
                        errors.append(f"HTTP {status}")
                        continue
                    json.loads(body)["hits"]
                except (
                    httpx.HTTPError,
                    OSError,
                    TimeoutError,
                    asyncio.IncompleteReadError,
                    ValueError,
                    KeyError,
                ) as exc:
                    errors.append(type(exc).__name__)
                    if rc is not None:  # a broken connection is opened again
                        await rc.close()
                        rc = RawClient(url)
                    continue
                latencies.append(time.perf_counter() - t0)
            if rc is not None:
                await rc.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "client": "raw" if raw else "httpx",
        "distinct_queries": distinct,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "p50_ms": _ms(percentile(latencies, 50)),
        "p95_ms": _ms(percentile(latencies, 95)),
        "max_ms": _ms(max(latencies) if latencies else None),
        "per_second": round(len(latencies) / wall, 1) if wall else None,
    }


async def ask_phase(url: str, clients: int, per_client: int, limit_s: float) -> dict[str, Any]:
    """`clients` concurrent clients asking; each answer must be 200 or 429, anything else is an error."""
    answered: list[float] = []
    waits: list[float] = []
    refused: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + limit_s

    async def client(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=limit_s + 60) as c:
            for j in range(per_client):
                if time.monotonic() > deadline:
                    return
                q = QUESTIONS[(i * 7 + j) % len(QUESTIONS)]
                t0 = time.perf_counter()
                try:
                    r = await c.post("/v1/ask", json={"question": q})
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                    continue
                took = time.perf_counter() - t0
                if r.status_code == 200:
                    answered.append(took)
                    waits.append(r.json()["timings"].get("queue_wait", 0.0))
                elif r.status_code == 429 and r.headers.get("Retry-After"):
                    refused.append(took)
                    await asyncio.sleep(min(float(r.headers["Retry-After"]), 2.0))
                else:
                    errors.append(f"HTTP {r.status_code}")

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return {
        "clients": clients,
        "answered": len(answered),
        "refused_429": len(refused),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "p50_s": _s(percentile(answered, 50)),
        "p95_s": _s(percentile(answered, 95)),
        "queue_wait_p50_s": _s(percentile(waits, 50)),
        "queue_wait_p95_s": _s(percentile(waits, 95)),
        "refusal_p95_ms": _ms(percentile(refused, 95)),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def stream_phase(url: str, rounds: int) -> dict[str, Any]:
    """One client streaming /v1/chat/completions: time to the first verified sentence and to the end."""
    first: list[float] = []
    total: list[float] = []
    errors = 0
    with httpx.Client(base_url=url, timeout=300) as c:
        for i in range(rounds):
            messages = [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]
            body = {"model": "kb", "messages": messages, "stream": True}
            t0 = time.perf_counter()
            got = None
            try:
                with c.stream("POST", "/v1/chat/completions", json=body) as r:
                    if r.status_code != 200:
                        errors += 1
                        continue
                    for line in r.iter_lines():
                        if got is None and line.startswith("data: {"):
                            choices = json.loads(line[6:]).get("choices") or [{}]
                            if (choices[0].get("delta") or {}).get("content"):
                                got = time.perf_counter() - t0
            except httpx.HTTPError:
                errors += 1
                continue
            total.append(time.perf_counter() - t0)
            if got is not None:
                first.append(got)
    return {
        "rounds": rounds,
        "errors": errors,
        "first_sentence_p50_s": _s(percentile(first, 50)),
        "first_sentence_max_s": _s(max(first) if first else None),
        "complete_p50_s": _s(percentile(total, 50)),
    }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def _s(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


NAME = "serve_load"
DEFAULT = False  # minutes of LLM work: run it with --only serve_load


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This benchmark's options (also those of `python bench/serve_load.py`)."""
    p.add_argument("--serve-kb", type=Path, help="A knowledge base to serve (default: samples/ in a temp folder).")
    p.add_argument("--search-clients", type=int, default=32)
    p.add_argument("--search-requests", type=int, default=25, help="Searches per search client.")
    p.add_argument("--ask-clients", type=int, default=8)
    p.add_argument("--ask-requests", type=int, default=2, help="Questions per ask client.")
    p.add_argument("--stream-rounds", type=int, default=5)
    p.add_argument("--serve-queue", type=int, default=4, help="serve_queue of the server.")
    p.add_argument("--serve-limit", type=float, default=300.0, help="Time limit of each phase, in seconds.")
    p.add_argument(
        "--raw-client",
        action="store_true",
        help="Search with a minimal HTTP/1.1 client instead of httpx (less of the cores taken by the clients).",
    )
    p.add_argument(
        "--search-only",
        action="store_true",
        help="Run only the two search phases (no ask or stream phase, the server loads no LLM).",
    )


def measure(o: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start a server, run the phases, stop it; the figures."""
    home = o.serve_kb
    if home is None:
        home = tmp / "serve-kb"
        subprocess.run([*kb_command(), "ingest", str(SAMPLES), "--kb", str(home), "-q"], cwd=REPO, check=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    search_only = getattr(o, "search_only", False)
    proc = start_server(home, port, o.serve_queue, tmp / "serve.log", llm=not search_only)
    ready = time.perf_counter() - started
    ask: dict[str, Any] | None = None
    stream: dict[str, Any] | None = None
    try:
        with httpx.Client(base_url=url, timeout=300) as c:  # warm: the first calls pay for lazy set-up
            for q in QUESTIONS[:5]:
                c.post("/v1/search", json={"query": q})
            if not search_only:
                c.post("/v1/ask", json={"question": QUESTIONS[0]})
        limit = o.serve_limit
        cpu0, own0 = cpu_seconds(proc.pid), time.process_time()
        raw = getattr(o, "raw_client", False)
        distinct = asyncio.run(search_phase(url, o.search_clients, o.search_requests, limit, True, raw))
        distinct["server_cpu_ms_per_request"] = cpu_per_request(proc.pid, cpu0, distinct["requests"])
        distinct["client_cpu_ms_per_request"] = _own_cpu_per_request(own0, distinct["requests"])
        cpu0, own0 = cpu_seconds(proc.pid), time.process_time()
        search = asyncio.run(search_phase(url, o.search_clients, o.search_requests, limit, False, raw))
        search["server_cpu_ms_per_request"] = cpu_per_request(proc.pid, cpu0, search["requests"])
        search["client_cpu_ms_per_request"] = _own_cpu_per_request(own0, search["requests"])
        if not search_only:
            ask = asyncio.run(ask_phase(url, o.ask_clients, o.ask_requests, limit))
            stream = stream_phase(url, o.stream_rounds)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "loadavg": load,
        "server_ready_s": round(ready, 1),
        "search_distinct": distinct,
        "search": search,
    }
    if search_only:
        out["search_only"] = True
    else:
        out["ask"], out["stream"] = ask, stream
    return out


def run_section(o: argparse.Namespace, tmp: Path, res: dict[str, Any]) -> None:
    """The bench/run.py entry point."""
    res[NAME] = measure(o, tmp)


def report(res: dict[str, Any]) -> list[str]:
    """The figures beside their targets."""
    r = res[NAME]
    distinct, search = r["search_distinct"], r["search"]
    lines = [
        f"kb serve load ({r['date']}, load average {' '.join(r['loadavg'])}; server ready in {r['server_ready_s']} s)",
        f"{'':42}{'measured':>16}{'target':>12}",
    ]
    rows = [
        ("search clients", str(distinct.get("client", "httpx")), ""),
        (f"search p50 ({distinct['clients']} clients, distinct)", f"{distinct['p50_ms']} ms", ""),
        (
            f"search p95 ({distinct['clients']} clients, distinct)",
            f"{distinct['p95_ms']} ms",
            f"<= {SEARCH_P95_TARGET_MS:g} ms",
        ),
        ("search errors (distinct)", f"{distinct['errors']}/{distinct['requests']}", "0"),
        ("search throughput (distinct)", f"{distinct['per_second']}/s", ""),
        ("server CPU per search (distinct)", f"{distinct['server_cpu_ms_per_request']} ms", ""),
        ("client CPU per search (distinct)", f"{distinct.get('client_cpu_ms_per_request')} ms", ""),
        (f"search p50 ({search['clients']} clients, repeated)", f"{search['p50_ms']} ms", ""),
        (
            f"search p95 ({search['clients']} clients, repeated)",
            f"{search['p95_ms']} ms",
            f"<= {SEARCH_P95_TARGET_MS:g} ms",
        ),
        ("search errors (repeated)", f"{search['errors']}/{search['requests']}", "0"),
        ("search throughput (repeated)", f"{search['per_second']}/s", ""),
        ("server CPU per search (repeated)", f"{search['server_cpu_ms_per_request']} ms", ""),
        ("client CPU per search (repeated)", f"{search.get('client_cpu_ms_per_request')} ms", ""),
    ]
    ask, stream = r.get("ask"), r.get("stream")
    if ask is None or stream is None:  # --search-only
        return lines + [f"{name:42}{value:>16}{target:>12}" for name, value, target in rows]
    rows += [
        (f"ask answered ({ask['clients']} clients)", str(ask["answered"]), ""),
        ("ask refused with 429", str(ask["refused_429"]), ""),
        ("ask errors", str(ask["errors"]), "0"),
        ("ask p50 / p95", f"{ask['p50_s']} / {ask['p95_s']} s", ""),
        ("ask queue wait p50 / p95", f"{ask['queue_wait_p50_s']} / {ask['queue_wait_p95_s']} s", ""),
        ("stream: first verified sentence", f"{stream['first_sentence_p50_s']} s", f"<= {FIRST_SENTENCE_TARGET_S:g} s"),
        ("stream: complete answer", f"{stream['complete_p50_s']} s", ""),
    ]
    return lines + [f"{name:42}{value:>16}{target:>12}" for name, value, target in rows]


def _commit() -> str | None:
    """The checked-out commit (with +dirty for uncommitted changes), None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    """Run on its own: measure, print, append to bench/results.jsonl."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--no-save", action="store_true", help="Do not append to bench/results.jsonl.")
    o = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kb-serve-bench-") as tmp:
        res = {NAME: measure(o, Path(tmp))}
    print("\n".join(report(res)))
    if not o.no_save:
        command = " ".join(["python", "bench/serve_load.py", *(sys.argv[1:] if argv is None else argv)])
        with RESULTS.open("a") as fh:
            fh.write(json.dumps({"bench": NAME, "command": command, "commit": _commit(), **res[NAME]}) + "\n")
    r = res[NAME]
    parts = [r[name] for name in ("search_distinct", "search", "ask", "stream") if name in r]
    return 0 if all(part["errors"] == 0 for part in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
