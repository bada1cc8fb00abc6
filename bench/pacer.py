"""Benchmark: one pacer run over 100 running campaigns of 10,000 contacts each (issue #11).

A throwaway redis-server (AOF on, as in production), the campaigns stored through the store's
own ingest script (quicker than CSV files, same keys), started on one trunk; then the pacer
(``dialer.pacer.pace``) runs once a period as beat would drive it, with an enqueue that only
counts. Prints the run times (p50/p99/max) as JSON and a ``FIGURE`` row (``bench/figures.py``); the target is
p99 under 200 ms. The attempts it queues are never dialed, so each campaign's concurrency cap
(``--max-concurrent``) bounds how many runs still release work; the defaults keep every run
releasing ``--cps`` attempts per campaign.

    .venv/bin/python bench/pacer.py [--campaigns 100] [--contacts 10000] [--runs 60] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import add_json_out, emit  # noqa: E402

from dialer import control  # noqa: E402
from dialer.config import parse_config  # noqa: E402
from dialer.pacer import PACER_PERIOD_S, pace  # noqa: E402
from dialer.services import local_redis  # noqa: E402
from dialer.settings import Settings  # noqa: E402
from dialer.store import Store  # noqa: E402

OPEN_ALWAYS = {"start": "00:00", "end": "24:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
TARGET_P99_MS = 200.0


def seed(store: Store, settings: Settings, campaigns: int, contacts: int, cps: float, max_concurrent: int) -> None:
    config = parse_config({"name": "pacer-bench", "calling_window": OPEN_ALWAYS, "calls_per_second": cps,
                           "max_concurrent_calls": max_concurrent})
    for n in range(campaigns):
        cid = store.new_campaign_id()
        store.begin_campaign(cid, config, columns=["phone"], phone_column="phone", source="bench")
        rows = []
        for i in range(1, contacts + 1):
            e164 = f"+1202{(n * contacts + i) % 10_000_000:07d}"
            contact = {"id": i, "phone_e164": e164, "phone_raw": e164, "number_type": "fixed_line_or_mobile",
                       "time_zones": ["America/New_York"], "variables": {"first_name": f"C{i}"}}
            rows.append((i, e164, json.dumps(contact)))
        letters = store.store_contacts(cid, rows)
        store.publish_campaign(cid, {"rows": contacts, "accepted": letters.count("A")}, {})
        control.start(store, settings, cid)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--cps", type=float, default=10.0, help="each campaign's calls per second")
    parser.add_argument("--max-concurrent", type=int, default=5_000)
    parser.add_argument("--profile", default=None, help="write a cProfile of the pacer runs to FILE")
    add_json_out(parser)
    args = parser.parse_args()
    with local_redis() as redis_url:
        store = Store.from_url(redis_url)
        settings = Settings(redis_url=redis_url, livekit_url="http://127.0.0.1:1", livekit_api_key="k",
                            livekit_api_secret="s", sip_outbound_trunk_id="ST_bench")
        started = time.monotonic()
        seed(store, settings, args.campaigns, args.contacts, args.cps, args.max_concurrent)
        seeded_s = time.monotonic() - started
        queued = 0

        def count(cid: str, attempts: list[tuple[int, int]]) -> None:
            nonlocal queued
            queued += len(attempts)

        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
        times_ms: list[float] = []
        for _ in range(args.runs):
            began = time.perf_counter()
            if profiler:
                profiler.enable()
            pace(store, settings, count, "bench-pacer")
            if profiler:
                profiler.disable()
            elapsed = time.perf_counter() - began
            times_ms.append(elapsed * 1000)
            time.sleep(max(0.0, PACER_PERIOD_S - elapsed))
        if profiler and args.profile:
            profiler.dump_stats(args.profile)
    result: dict[str, Any] = {
        "campaigns": args.campaigns, "contacts_each": args.contacts, "seed_s": round(seeded_s, 1),
        "runs": args.runs, "queued": queued, "queued_per_run": round(queued / args.runs, 1),
        "p50_ms": round(statistics.median(times_ms), 1), "p99_ms": round(percentile(times_ms, 0.99), 1),
        "max_ms": round(max(times_ms), 1),
    }
    print(json.dumps(result), flush=True)
    row = {"figure": f"pacer run, {args.campaigns} running campaigns of {args.contacts:,} contacts (p99)",
           "ours": result["p99_ms"], "peer": None, "unit": "ms", "target": f"p99 < {TARGET_P99_MS:g} ms",
           "met": result["p99_ms"] < TARGET_P99_MS}
    emit(row, args.json_out)


if __name__ == "__main__":
    main()
