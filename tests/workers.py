"""Real Celery worker processes for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import ROOT, cli_env


class Worker:
    """A `celery -A dialer worker` child process; its output is kept for assertions."""

    def __init__(self, redis_url: str, *args: str, env: dict[str, str] | None = None, name: str = "w") -> None:
        self.output: list[str] = []
        self._ready = threading.Event()
        command = [sys.executable, "-m", "celery", "-A", "dialer", "worker", "--loglevel", "INFO",
                   "--hostname", f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h", "--without-mingle",
                   "--without-gossip", *args]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=cli_env(redis_url, **(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if " ready." in line:
                self._ready.set()

    def wait_ready(self, timeout_s: float = 30) -> None:
        if not self._ready.wait(timeout_s):
            raise AssertionError("celery worker did not start:\n" + "".join(self.output[-40:]))

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and children), as a crash would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP the whole worker: every thread freezes mid-step, as a long GC pause or a
        swapped-out VM would, while its connections stay open."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)  # a paused worker cannot act on SIGTERM
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def log(self) -> str:
        return "".join(self.output)


@contextmanager
def running_worker(redis_url: str, *args: str, env: dict[str, str] | None = None, name: str = "w") -> Iterator[Worker]:
    worker = Worker(redis_url, *args, env=env, name=name)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


__all__ = ["Path", "Worker", "running_worker"]
