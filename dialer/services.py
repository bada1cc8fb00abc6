"""Starting the local services a demo needs, and stopping exactly what was started."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import redis

from .errors import UserError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise UserError(f"{what} did not come up within {timeout_s:.0f}s")
        time.sleep(0.05)


def redis_reachable(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    """A throwaway redis-server (AOF on) in a temporary directory; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise UserError("no Redis is reachable and redis-server is not installed: run `make redis` "
                        "or set REDIS_URL to a running Redis")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dialer-redis-") as directory:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "everysec", "--maxmemory-policy", "noeviction", "--dir", directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            wait_until(lambda: redis_reachable(url), 10, "redis-server")
            yield url
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def answers(url: str) -> bool:
    """True when a GET of ``url`` (a health check) answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def sandbox_ready(url: str) -> bool:
    """True when a sandbox answers its health check at ``url``."""
    return answers(f"{url}/sandbox/health")


def project_file(*parts: str) -> Path:
    """A file of the source checkout (the demo's campaign files live in ``campaigns/``)."""
    return Path(__file__).resolve().parent.parent.joinpath(*parts)
