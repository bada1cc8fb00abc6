"""The HTTP API as a real `dialer api serve` process on a free port."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from conftest import ROOT, cli_env, free_port, wait_for

from dialer import auth
from dialer.store import Store


class ApiServer:
    def __init__(self, redis_url: str, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.upload_dir = tmp / f"uploads-{self.port}"
        self.log_path = tmp / f"api-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dialer", "api", "serve", "--port", str(self.port)],
            cwd=ROOT, env=cli_env(redis_url, DIALER_UPLOAD_DIR=str(self.upload_dir), **env),
            stdout=self._log, stderr=subprocess.STDOUT)
        wait_for(self._healthy, timeout_s=30, interval_s=0.1, what="the API to serve")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError("the API exited:\n" + self.log)
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self, key: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


@contextmanager
def api_server(redis_url: str, tmp: Path, **env: str) -> Iterator[ApiServer]:
    server = ApiServer(redis_url, tmp, **env)
    try:
        yield server
    finally:
        server.stop()


def new_key(redis_url: str, read_only: bool = False) -> str:
    store = Store.from_url(redis_url)
    try:
        return auth.create_key(store, "read-only test" if read_only else "test", read_only)[1]
    finally:
        store.redis.close()
