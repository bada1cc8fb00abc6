"""Fixtures for end-to-end runs: the sandbox as a real server process, real Celery workers."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from conftest import ROOT, cli_env, free_port, wait_for
from workers import Worker

from dialer import control
from dialer.config import parse_config
from dialer.ingest import ingest_file
from dialer.services import sandbox_ready
from dialer.settings import Settings
from dialer.store import Store

API_KEY = "test-key"
API_SECRET = "test-secret-0123456789"
TRUNK = "ST_test"

#: A campaign that may call at any time, with short delays, for tests.
FAST = {
    "calling_window": {"start": "00:00", "end": "24:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
    "retry_delay_s": {"busy": 0.5, "no_answer": 0.5, "carrier_error": 0.5},
    "ring_timeout_s": 2,
    "max_call_duration_s": 30,
    "calls_per_second": 50,
    "max_concurrent_calls": 20,
}


class Sandbox:
    """`dialer sandbox serve` in a child process."""

    def __init__(self, redis_url: str, scenario: dict[str, Any] | None, tmp: Path) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "dialer", "sandbox", "serve", "--port", str(self.port)]
        if scenario is not None:
            path = tmp / f"scenario-{self.port}.yaml"
            path.write_text(yaml.safe_dump(scenario))
            args += ["--scenario", str(path)]
        self.log_path = tmp / f"sandbox-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(args, cwd=ROOT, env=cli_env(redis_url, **self.env), stdout=self._log,
                                        stderr=subprocess.STDOUT)
        wait_for(self._healthy, timeout_s=20, what="the sandbox to serve")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"LIVEKIT_URL": self.url, "LIVEKIT_API_KEY": API_KEY, "LIVEKIT_API_SECRET": API_SECRET,
                "SIP_OUTBOUND_TRUNK_ID": TRUNK}

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError("sandbox exited:\n" + self.log_path.read_text())
        return sandbox_ready(self.url)

    def calls(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/sandbox/calls", timeout=5) as response:
            return list(json.loads(response.read()))

    def set_faults(self, **faults: Any) -> None:
        """Replace the fault knobs (``latency_s``, ``api_error_rate``, ...); none given: no faults."""
        request = urllib.request.Request(f"{self.url}/sandbox/faults", data=json.dumps(faults).encode(),
                                         method="PUT", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self._log.close()


@contextmanager
def sandbox(redis_url: str, tmp: Path, scenario: dict[str, Any] | None = None) -> Iterator[Sandbox]:
    server = Sandbox(redis_url, scenario, tmp)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def workers(redis_url: str, box: Sandbox, tmp: Path, count: int = 1, *, beat_on: int = 0,
            args_of: Mapping[int, Sequence[str]] | None = None, env_of: Mapping[int, Mapping[str, str]] | None = None,
            **env: str) -> Iterator[list[Worker]]:
    """`count` worker processes; worker ``beat_on`` also runs beat (the pacer and reconciler).

    ``args_of`` and ``env_of`` add command-line arguments (``-Q control``) and environment
    (``DIALER_CLOCK_OFFSET_S``) to single workers, by index.
    """
    started: list[Worker] = []
    base = {**box.env, "DIALER_WORKER_CONCURRENCY": "50", "DIALER_LEASE_MARGIN_S": "3",
            "DIALER_NO_CALL_SETTLE_S": "1", **env}
    try:
        for index in range(count):
            extra = ["-B", "--schedule", str(tmp / f"beat-{index}")] if index == beat_on else []
            extra += list((args_of or {}).get(index, ()))
            started.append(Worker(redis_url, *extra, env={**base, **(env_of or {}).get(index, {})},
                                  name=f"w{index}"))
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.stop()


def settings_for(redis_url: str, box: Sandbox) -> Settings:
    return Settings(redis_url=redis_url, livekit_url=box.url, livekit_api_key=API_KEY,
                    livekit_api_secret=API_SECRET, sip_outbound_trunk_id=TRUNK)


def create_campaign(store: Store, tmp: Path, rows: list[str] | str, **config: Any) -> str:
    path = tmp / f"contacts-{len(list(tmp.glob('contacts-*')))}.csv"
    if isinstance(rows, str):
        path.write_text(Path(rows).read_text())
    else:
        path.write_text("phone,first_name\n" + "".join(f"{row},Test\n" for row in rows))
    summary = ingest_file(store, path, parse_config({"name": "e2e", **{**FAST, **config}}), max_bytes=2**24)
    return summary.campaign_id


def run_to_end(store: Store, settings: Settings, cid: str, timeout_s: float = 60) -> dict[str, Any]:
    control.start(store, settings, cid)
    return wait_for(lambda: _done(store, cid), timeout_s=timeout_s, interval_s=0.1, what="the campaign to end")


def _done(store: Store, cid: str) -> dict[str, Any] | None:
    status = control.status(store, cid)
    return status if status["state"] in ("completed", "paused", "cancelled") else None


def outcomes_by_number(store: Store, cid: str) -> dict[str, tuple[str, int]]:
    """E.164 -> (final outcome, attempts charged)."""
    statuses = dict(store.iter_statuses(cid))
    ids = sorted(statuses)
    return {
        contact["phone_e164"]: (statuses[i].get("outcome", statuses[i]["state"]), statuses[i].get("attempts", 0))
        for i, contact in zip(ids, store.contacts(cid, ids), strict=True)
        if contact
    }


def invites_by_number(calls: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in calls:
        counts[call["number"]] = counts.get(call["number"], 0) + 1
    return counts
