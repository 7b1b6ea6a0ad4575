"""Running the app with uvicorn: in the foreground (`kb serve`) or in a thread (tests, benchmarks)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address

from kb.errors import ConfigError
from kb.server.discovery import DISCOVERY_FILE
from kb.server.service import Service


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address or name (only those may serve without tokens)."""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, tokens: tuple) -> None:
    """ConfigError when the server would answer beyond this machine without tokens."""
    if not is_loopback(host) and not tokens:
        raise ConfigError(
            f"--host {host}: serving beyond loopback needs API tokens (they map callers to groups); "
            "create one with `kb token create NAME --group GROUP`, or serve on 127.0.0.1"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _config(service: Service, host: str, port: int, log_level: str):
    import uvicorn

    from kb.server.app import create_app

    # One worker process: the models are loaded once, in this process. Threads serve requests.
    return uvicorn.Config(
        create_app(service), host=host, port=port, log_level=log_level, lifespan="off", timeout_graceful_shutdown=5
    )


def serve_forever(service: Service, host: str, port: int, *, log_level: str = "warning") -> None:
    """Serve until interrupted, announcing the server in the knowledge-base folder meanwhile."""
    import uvicorn

    check_binding(host, service.settings.tokens)
    server = uvicorn.Server(_config(service, host, port, log_level))
    with announced(service, host, port):
        server.run()


@contextmanager
def announced(service: Service, host: str, port: int) -> Iterator[None]:
    """Write serve.json (url, pid, kb id) into the knowledge-base folder for the duration."""
    path = service.folder / DISCOVERY_FILE
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid(), "kb_id": service.id, "started": time.time()}))
    os.replace(tmp, path)
    try:
        yield
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


class ThreadedServer:
    """A server on a loopback port in a background thread; `url` once started, `stop()` to end it."""

    def __init__(self, service: Service, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(_config(service, host, self.port, "warning"))
        self.thread = threading.Thread(target=self.server.run, name="kb-serve", daemon=True)

    @property
    def url(self) -> str:
        """Where it answers."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ThreadedServer:
        """Start and wait until it accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Ask it to finish and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
