"""Benchmark: dialing throughput and calls kept ringing by one worker process.

Against the sandbox (a real HTTP server) and a throwaway redis-server:
1. zero ring time: sustained dial attempts per second with one worker;
2. 20 s ring time: how many calls one worker keeps ringing at once, and its RSS.
Each is run with the default worker (threads pool) and with a plain prefork
worker at its default concurrency (one process per CPU), dialing the same way.

    .venv/bin/python bench/dial.py [--contacts N] [--ring-contacts N] [--pools threads,prefork]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dialer import control  # noqa: E402
from dialer.config import parse_config  # noqa: E402
from dialer.ingest import ingest_file  # noqa: E402
from dialer.services import free_port, local_redis, sandbox_ready, stop_process, wait_until  # noqa: E402
from dialer.settings import Settings  # noqa: E402
from dialer.store import Store  # noqa: E402

KEY, SECRET, TRUNK = "bench-key", "bench-secret-0123456789", "ST_bench"
OPEN_ALWAYS = {"start": "00:00", "end": "24:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def sandbox_calls(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/sandbox/calls", timeout=30) as response:
        return list(json.loads(response.read()))


def tree_rss_mib(pid: int) -> float:
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def contacts_csv(path: Path, count: int) -> None:
    # Fictional-format but valid US numbers, one per contact.
    lines = ["phone"] + [f"+1202{2000000 + i:07d}" for i in range(count)]
    path.write_text("\n".join(lines) + "\n")


def run(pool: str, ring_s: float, contacts: int, tmp: Path, duration_s: float | None) -> dict[str, Any]:
    with ExitStack() as stack, local_redis() as redis_url:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        scenario = tmp / f"scenario-{pool}-{ring_s}.yaml"
        scenario.write_text(yaml.safe_dump({"ring_s": ring_s, "talk_s": 0.05, "default": ["answer"]}))
        env = {**os.environ, "REDIS_URL": redis_url, "LIVEKIT_URL": url, "LIVEKIT_API_KEY": KEY,
               "LIVEKIT_API_SECRET": SECRET, "SIP_OUTBOUND_TRUNK_ID": TRUNK}
        logs = tmp / f"{pool}-{ring_s}"
        logs.mkdir()
        sandbox = subprocess.Popen([sys.executable, "-m", "dialer", "sandbox", "serve", "--port", str(port),
                                    "--scenario", str(scenario)], env=env, cwd=ROOT,
                                   stdout=(logs / "sandbox.log").open("wb"), stderr=subprocess.STDOUT)
        stack.callback(stop_process, sandbox)
        wait_until(lambda: sandbox_ready(url), 20, "sandbox")
        worker_args = [sys.executable, "-m", "celery", "-A", "dialer", "worker", "--loglevel", "WARNING",
                       "--without-mingle", "--without-gossip", "-Q", "dial,control"]
        if pool == "prefork":
            worker_args += ["--pool", "prefork", "--concurrency", str(os.cpu_count() or 1)]
        worker = subprocess.Popen(worker_args, env=env, cwd=ROOT, stdout=(logs / "worker.log").open("wb"),
                                  stderr=subprocess.STDOUT)
        stack.callback(stop_process, worker)
        beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "dialer", "beat", "--loglevel", "WARNING",
                                 "--schedule", str(logs / "beat")], env=env, cwd=ROOT,
                                stdout=(logs / "beat.log").open("wb"), stderr=subprocess.STDOUT)
        stack.callback(stop_process, beat)
        time.sleep(4)  # let the worker come up

        store = Store.from_url(redis_url)
        settings = Settings(redis_url=redis_url, livekit_url=url, livekit_api_key=KEY, livekit_api_secret=SECRET,
                            sip_outbound_trunk_id=TRUNK)
        csv_path = tmp / f"contacts-{pool}-{ring_s}.csv"
        contacts_csv(csv_path, contacts)
        config = parse_config({"name": "bench", "calling_window": OPEN_ALWAYS, "calls_per_second": 2000,
                               "max_concurrent_calls": 5000, "ring_timeout_s": int(ring_s) + 10,
                               "max_call_duration_s": 60})
        cid = ingest_file(store, csv_path, config, max_bytes=2**30).campaign_id
        started = time.monotonic()
        control.start(store, settings, cid)
        peak_ringing = peak_rss = 0.0
        deadline = started + (duration_s or 600)
        while time.monotonic() < deadline:
            status = control.status(store, cid)
            if status["final"] >= contacts:
                break
            if ring_s:
                calls = sandbox_calls(url)
                peak_ringing = max(peak_ringing, sum(1 for c in calls if c["call_status"] == "ringing"))
            peak_rss = max(peak_rss, tree_rss_mib(worker.pid))
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        status = control.status(store, cid)
        if status["state"] == "running":
            control.cancel(store, settings, cid)
        calls = sandbox_calls(url)
        return {"pool": pool, "ring_s": ring_s, "contacts": contacts, "elapsed_s": round(elapsed, 1),
                "final": status["final"], "invites": len(calls),
                "invites_per_s": round(len(calls) / elapsed, 1), "peak_ringing": int(peak_ringing),
                "peak_worker_rss_mib": round(peak_rss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=3000, help="contacts for the zero-ring run")
    parser.add_argument("--ring-contacts", type=int, default=700, help="contacts for the 20 s ring run")
    parser.add_argument("--pools", default="threads,prefork")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for pool in args.pools.split(","):
            zero = run(pool, 0.0, args.contacts if pool == "threads" else min(args.contacts, 300), Path(tmp), 300)
            print(json.dumps(zero), flush=True)
            ringing = run(pool, 20.0, args.ring_contacts, Path(tmp), 30)
            print(json.dumps(ringing), flush=True)


if __name__ == "__main__":
    main()
