"""Benchmark: dialing throughput and calls kept ringing by one worker process, beside the dial peer.

Against the sandbox (a real HTTP server) and a throwaway redis-server, in one run:
1. zero ring time: dial attempts per second of one worker process from `campaign start` to every
   contact final, its CPU seconds per attempt (the worker's process tree) and peak RSS; then the
   dial peer (``bench/dial_peer.py``: a plain asyncio loop over ``livekit-api``, 200 at a time, no
   ledger, no limits) on the same sandbox and the same numbers, and the ratio;
2. ``--ring-s`` ring time: how many calls one worker keeps ringing at once, and its RSS; the peer
   with no concurrency cap beside it.
The figures are printed as JSON and as ``FIGURE {json}`` rows of the summary table (``bench/figures.py``), also
appended to ``--json-out`` (default ``$BENCH_JSON``).

    .venv/bin/python bench/dial.py [--contacts N] [--ring-contacts N] [--ring-s S] [--pools threads,prefork]
                                   [--repeat N] [--py-spy FILE] [--json-out FILE]

The zero-ring part runs ``--repeat`` times (3), ours then the peer each time, and the table takes
the run with the median ratio.
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
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import add_json_out, emit  # noqa: E402

from dialer import control  # noqa: E402
from dialer.config import parse_config  # noqa: E402
from dialer.ingest import ingest_file  # noqa: E402
from dialer.services import free_port, local_redis, sandbox_ready, stop_process, wait_until  # noqa: E402
from dialer.settings import Settings  # noqa: E402
from dialer.store import Store  # noqa: E402

KEY, SECRET, TRUNK = "bench-key", "bench-secret-0123456789", "ST_bench"
OPEN_ALWAYS = {"start": "00:00", "end": "24:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
#: The dial peer's concurrency in the zero-ring run (the issue's "200 at a time").
PEER_CONCURRENCY = 200
#: Targets of issue #11.
TARGET_RATIO = 0.5
TARGET_RINGING = 2000
TARGET_RSS_MIB = 500


def sandbox_calls(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/sandbox/calls", timeout=30) as response:
        return list(json.loads(response.read()))


def clear_sandbox_calls(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/sandbox/calls", method="DELETE"), timeout=30).close()


def _tree(pid: int) -> list[psutil.Process]:
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def tree_rss_mib(pid: int) -> float:
    total = 0
    for process in _tree(pid):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live children."""
    total = 0.0
    for process in _tree(pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def numbers(count: int) -> list[str]:
    # Fictional-format but valid US numbers, one per contact.
    return [f"+1202{2000000 + i:07d}" for i in range(count)]


def ringing(url: str, prefix: str) -> int:
    return sum(1 for c in sandbox_calls(url) if c["call_status"] == "ringing" and c["room"].startswith(prefix))


def run_peer(url: str, env: dict[str, str], tmp: Path, count: int, concurrency: int, ring_s: float,
             poll_ringing: bool, extra: Sequence[str] = ()) -> dict[str, Any]:
    """The dial peer on the same sandbox and numbers; its CPU, RSS and (when asked) peak ringing."""
    clear_sandbox_calls(url)
    path = tmp / f"peer-numbers-{count}.txt"
    path.write_text("\n".join(numbers(count)) + "\n")
    peer = subprocess.Popen([sys.executable, str(ROOT / "bench" / "dial_peer.py"), "--url", url, "--numbers",
                             str(path), "--concurrency", str(concurrency), "--ring-timeout", str(int(ring_s) + 10),
                             *extra],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE)
    peak_rss = peak_ringing = 0.0
    cpu = 0.0
    while peer.poll() is None:
        try:
            peak_rss = max(peak_rss, tree_rss_mib(peer.pid))
            cpu = tree_cpu_s(peer.pid)
        except psutil.NoSuchProcess:
            break
        if poll_ringing:
            peak_ringing = max(peak_ringing, ringing(url, "peer-"))
        time.sleep(0.5)
    assert peer.stdout is not None
    out = json.loads(peer.stdout.read())
    attempts = max(1, out["attempts"])
    return {**out, "concurrency": concurrency, "cpu_s_per_attempt": round(cpu / attempts, 5),
            "peak_rss_mib": round(peak_rss), "peak_ringing": int(peak_ringing)}


def run(pool: str, ring_s: float, contacts: int, tmp: Path, duration_s: float, py_spy: str | None = None,
        peer: bool = True, peer_args: Sequence[str] = ()) -> dict[str, Any]:
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
        csv_path.write_text("\n".join(["phone", *numbers(contacts)]) + "\n")
        config = parse_config({"name": "bench", "calling_window": OPEN_ALWAYS, "calls_per_second": 2000,
                               "max_concurrent_calls": 5000, "ring_timeout_s": int(ring_s) + 10,
                               "max_call_duration_s": 60})
        cid = ingest_file(store, csv_path, config, max_bytes=2**30).campaign_id
        spy = None
        if py_spy:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(worker.pid),
                                    "-o", py_spy, "--format", "raw", "-r", "50", "--gil"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        # `campaign start` sends the workers a pacer task: this process's Celery producer (0.1 s to
        # build, once per process) is set up before the clock starts, as the peer's HTTP session is.
        control.pace_now(settings)
        cpu_before = tree_cpu_s(worker.pid)
        started = time.monotonic()
        control.start(store, settings, cid)
        peak_ringing = peak_rss = 0.0
        deadline = started + duration_s
        # The peer times itself to its last answer; ours is read off the campaign's progress every
        # 20 ms (a finer poll than `campaign status`, which a coarse one would add up to its period to).
        next_look = 0.0
        while time.monotonic() < deadline:
            if store.progress(cid).get("final", 0) >= contacts:
                break
            if time.monotonic() >= next_look:
                if ring_s:
                    peak_ringing = max(peak_ringing, ringing(url, "dial-"))
                peak_rss = max(peak_rss, tree_rss_mib(worker.pid))
                next_look = time.monotonic() + (0.2 if not ring_s else 0.5)
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        cpu = tree_cpu_s(worker.pid) - cpu_before
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
            spy.wait(30)
        status = control.status(store, cid)
        if status["state"] == "running":
            control.cancel(store, settings, cid)
        calls = [c for c in sandbox_calls(url) if c["room"].startswith("dial-")]
        invites = len(calls)
        # When the INVITEs went out, in seconds from `campaign start` (the sandbox's clock).
        sent = sorted(call["started_at"] - (time.time() - (time.monotonic() - started)) for call in calls)
        ours = {"pool": pool, "ring_s": ring_s, "contacts": contacts, "elapsed_s": round(elapsed, 2),
                "final": status["final"], "invites": invites, "attempts_per_s": round(status["final"] / elapsed, 1),
                "cpu_s_per_attempt": round(cpu / max(1, invites), 5), "peak_ringing": int(peak_ringing),
                "peak_worker_rss_mib": round(peak_rss), "first_invite_s": round(sent[0], 2) if sent else None,
                "last_invite_s": round(sent[-1], 2) if sent else None}
        if not peer:
            return {"ours": ours}
        if ring_s:
            # Let our ringing calls end before the peer's are counted.
            wait_until(lambda: ringing(url, "dial-") == 0, ring_s + 30, "our calls to stop ringing")
            theirs = run_peer(url, env, tmp, contacts, contacts, ring_s, poll_ringing=True, extra=peer_args)
        else:
            theirs = run_peer(url, env, tmp, contacts, PEER_CONCURRENCY, ring_s, poll_ringing=False, extra=peer_args)
        return {"ours": ours, "peer": theirs}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose ratio to its own peer is the median (the machine's load swings both sides by
    2-3x from one minute to the next, so a ratio is only fair within one run); all ratios kept."""
    if "peer" not in runs[0]:
        return runs[0]
    ranked = sorted(runs, key=lambda r: r["ours"]["attempts_per_s"] / max(r["peer"]["attempts_per_s"], 1e-9))
    chosen = dict(ranked[len(ranked) // 2])
    chosen["ratios"] = [round(r["ours"]["attempts_per_s"] / max(r["peer"]["attempts_per_s"], 1e-9), 3) for r in runs]
    return chosen


def rows(zero: dict[str, Any] | None, ring: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The summary table's rows (one JSON object each)."""
    out: list[dict[str, Any]] = []
    if zero:
        ours, peer = zero["ours"], zero.get("peer")
        ratio = ours["attempts_per_s"] / peer["attempts_per_s"] if peer else None
        out.append({"figure": "dial attempts/s, one worker process, zero ring, start to all final",
                    "ours": ours["attempts_per_s"], "peer": peer["attempts_per_s"] if peer else None,
                    "unit": "attempts/s", "target": f">= {TARGET_RATIO}x the dial peer",
                    "met": bool(ratio is not None and ratio >= TARGET_RATIO),
                    "note": (f"median of {len(zero['ratios'])} runs, ratios {zero['ratios']}"
                             if "ratios" in zero else None)})
        out.append({"figure": "dial attempts/s vs the dial peer (ratio)", "ours": round(ratio, 3) if ratio else 0,
                    "peer": 1.0, "unit": "x", "target": f">= {TARGET_RATIO}",
                    "met": bool(ratio is not None and ratio >= TARGET_RATIO)})
        out.append({"figure": "CPU seconds per dial attempt (worker process tree)",
                    "ours": ours["cpu_s_per_attempt"], "peer": peer["cpu_s_per_attempt"] if peer else None,
                    "unit": "CPU s/attempt", "target": "printed", "met": True})
    if ring:
        ours, peer = ring["ours"], ring.get("peer")
        met = ours["peak_ringing"] >= TARGET_RINGING and ours["peak_worker_rss_mib"] < TARGET_RSS_MIB
        out.append({"figure": f"calls ringing at once, one worker process ({ours['contacts']} contacts, "
                              f"{ours['ring_s']:g} s ring)",
                    "ours": ours["peak_ringing"], "peer": peer["peak_ringing"] if peer else None,
                    "unit": "calls", "target": f">= {TARGET_RINGING} with RSS < {TARGET_RSS_MIB} MiB", "met": met})
        out.append({"figure": "peak RSS while calls ring, one worker process", "ours": ours["peak_worker_rss_mib"],
                    "peer": peer["peak_rss_mib"] if peer else None, "unit": "MiB",
                    "target": f"< {TARGET_RSS_MIB}", "met": ours["peak_worker_rss_mib"] < TARGET_RSS_MIB})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=1500, help="contacts for the zero-ring run")
    parser.add_argument("--ring-contacts", type=int, default=2500, help="contacts for the ringing run")
    parser.add_argument("--ring-s", type=float, default=25.0, help="ring time of the ringing run")
    parser.add_argument("--pools", default="threads", help="threads and/or prefork (prefork: no peer, no rows)")
    parser.add_argument("--skip", default="", help="'zero' or 'ring' to leave that run out")
    parser.add_argument("--py-spy", default=None, help="record the worker with py-spy (raw format) into FILE")
    parser.add_argument("--peer-room-agents", action="store_true",
                        help="the peer dispatches its agent in CreateRoom, as the dialer does (not the issue's peer)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="zero-ring runs (each ours, then the peer); the table takes the median run")
    add_json_out(parser)
    args = parser.parse_args()
    peer_args = ["--room-agents"] if args.peer_room_agents else []
    table: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for pool in args.pools.split(","):
            main_pool = pool == "threads"
            zero = ring = None
            if args.skip != "zero":
                runs = []
                for index in range(args.repeat if main_pool else 1):
                    (Path(tmp) / f"zero-{index}").mkdir()
                    runs.append(run(pool, 0.0, args.contacts if main_pool else min(args.contacts, 300),
                                    Path(tmp) / f"zero-{index}", 300, py_spy=args.py_spy if main_pool else None,
                                    peer=main_pool, peer_args=peer_args))
                    print(json.dumps(runs[-1]), flush=True)
                zero = median_run(runs)
            if args.skip != "ring":
                ring = run(pool, args.ring_s, args.ring_contacts, Path(tmp), args.ring_s + 15, peer=main_pool,
                           peer_args=peer_args)
                print(json.dumps(ring), flush=True)
            if main_pool:
                table += rows(zero, ring)
    for row in table:
        emit(row, args.json_out)


if __name__ == "__main__":
    main()
