"""Soak benchmark: a large campaign through worker kills and Redis restarts, checked for I1-I3.

Against the sandbox (a real HTTP server) and a redis-server this script owns (AOF on, so it
can be killed and started again on the same port and directory):
- two `celery -A dialer worker` processes (threads pool) and `celery -A dialer beat` apart;
- every --kill-every seconds one worker's whole process group is SIGKILLed and a fresh worker
  started;
- Redis is restarted twice: once SIGKILLed (it comes back from its AOF), once shut down
  gracefully (SIGTERM), each time started again on the same port and directory after a pause;
- then, once every contact is final (or the deadline passed), the sandbox's INVITE log and
  the ledger are checked: double INVITEs in one room, numbers answered twice, contacts lost,
  peak concurrent calls and INVITEs per second against the campaign's caps.

    .venv/bin/python bench/soak.py [--contacts 10000] [--kill-every 5] [--deadline 1800]

Only 127.0.0.1 is used. Every process started here is stopped on exit (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from contextlib import ExitStack, suppress
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

import psutil
import redis
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dialer import control  # noqa: E402
from dialer.config import parse_config  # noqa: E402
from dialer.ingest import ingest_file  # noqa: E402
from dialer.services import free_port, redis_reachable, sandbox_ready, stop_process, wait_until  # noqa: E402
from dialer.settings import Settings  # noqa: E402
from dialer.store import Keys, Store  # noqa: E402

KEY, SECRET, TRUNK = "bench-key", "bench-secret-0123456789", "ST_bench"
OPEN_ALWAYS = {"start": "00:00", "end": "24:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
CALLS_PER_SECOND = 100
MAX_CONCURRENT = 200
#: Every BUSY_EVERY-th contact is busy once, then answers (a retry: a new attempt, a new room).
BUSY_EVERY = 20
#: Every CARRIER_EVERY-th contact gets a 503 first (a retry inside the attempt, same room).
CARRIER_EVERY = 97
#: A SIP failure after which a new INVITE in the same room is allowed (DESIGN.md I1).
CAPACITY_CODES = {403, 503}


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sandbox_calls(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/sandbox/calls", timeout=60) as response:
        return list(json.loads(response.read()))


def tree_rss_mib(pid: int) -> float:
    try:
        process = psutil.Process(pid)
        total = process.memory_info().rss
        children = process.children(recursive=True)
    except psutil.Error:
        return 0.0
    for child in children:
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def number_of(index: int) -> str:
    return f"+1202{2000000 + index:07d}"


def contacts_csv(path: Path, count: int) -> None:
    # Fictional-format but valid US numbers, one per contact.
    path.write_text("\n".join(["phone"] + [number_of(i) for i in range(count)]) + "\n")


def scenario(count: int) -> dict[str, Any]:
    numbers: dict[str, list[str]] = {}
    for index in range(count):
        if index % BUSY_EVERY == BUSY_EVERY - 1:
            numbers[number_of(index)] = ["busy", "answer"]
        elif index % CARRIER_EVERY == CARRIER_EVERY - 1:
            numbers[number_of(index)] = ["carrier_error", "answer"]
    return {"ring_s": 1.0, "talk_s": 0.2, "numbers": numbers, "default": ["answer"]}


def stop_group(process: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    """SIGTERM a child started in its own session, and everything in its group; SIGKILL if slow."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # leftovers of the group, if any
    if process.poll() is None:
        process.wait(timeout=10)


class RedisServer:
    """A redis-server on a fixed loopback port and AOF directory, which can be stopped and restarted."""

    def __init__(self, directory: Path, log_path: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed: run `make redis`")
        self.binary, self.directory, self.port = binary, directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log: IO[bytes] = log_path.open("ab")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "everysec", "--maxmemory-policy", "noeviction", "--dir", str(self.directory)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: redis_reachable(self.url), 60, "redis-server")

    def kill(self) -> None:
        """SIGKILL: whatever the AOF did not fsync in the last second is lost."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def shutdown(self) -> None:
        """SIGTERM: redis-server fsyncs its AOF and exits."""
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self._log.close()


class Fleet:
    """The worker processes, each in its own session so a kill takes its whole group."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.workers: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.kills = 0
        self.peak_rss_mib = 0.0

    def spawn(self) -> None:
        self.started += 1
        name = f"soak{self.started}"
        command = [sys.executable, "-m", "celery", "-A", "dialer", "worker", "--loglevel", "WARNING",
                   "--hostname", f"{name}@%h", "--without-mingle", "--without-gossip", "-Q", "dial,control"]
        self.workers.append(subprocess.Popen(command, env=self.env, cwd=ROOT,
                                             stdout=(self.logs / f"worker-{name}.log").open("wb"),
                                             stderr=subprocess.STDOUT, start_new_session=True))

    def kill_oldest(self) -> None:
        worker = self.workers.pop(0)
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            self.kills += 1
        self.spawn()

    def sample_rss(self) -> None:
        for worker in self.workers:
            self.peak_rss_mib = max(self.peak_rss_mib, tree_rss_mib(worker.pid))

    def stop(self) -> None:
        for worker in self.workers:
            stop_group(worker)


def max_in_window(times: list[float], window_s: float) -> tuple[int, float]:
    """The most of ``times`` (sorted) in any window of ``window_s``, and where that window starts."""
    best, best_at, start = 0, 0.0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window_s:
            start += 1
        if end - start + 1 > best:
            best, best_at = end - start + 1, times[start]
    return best, best_at


def admit_to_invite(cid: str, calls: list[dict[str, Any]], attempts: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Seconds from the limiter admitting an INVITE (Redis time) to the sandbox receiving it,
    for attempts with exactly one INVITE."""
    by_room = defaultdict(list)
    for call in calls:
        by_room[call["room"]].append(call)
    lags = []
    for member, attempt in attempts.items():
        contact, _, seq = member.partition(":")
        invites = by_room.get(f"dial-{cid}-{contact}-{seq}", [])
        if attempt.get("invites") == 1 and len(invites) == 1 and attempt.get("last_invite_at"):
            lags.append(invites[0]["started_at"] - attempt["last_invite_at"])
    lags.sort()
    if not lags:
        return {}
    return {"p50": round(lags[len(lags) // 2], 3), "p99": round(lags[int(len(lags) * 0.99)], 3),
            "max": round(lags[-1], 3), "min": round(lags[0], 3)}


def peak_concurrent(calls: list[dict[str, Any]], until: float) -> tuple[int, float]:
    """The most calls live at once (INVITE to end of call) and when."""
    events: list[tuple[float, int]] = []
    for call in calls:
        events.append((call["started_at"], 1))
        events.append((call.get("ended_at") or until, -1))
    events.sort(key=lambda event: (event[0], event[1]))  # an end before a start at the same instant
    live = best = 0
    best_at = 0.0
    for at, step in events:
        live += step
        if live > best:
            best, best_at = live, at
    return best, best_at


def check_invites(calls: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(double INVITEs in one room not preceded by a 5xx/capacity failure, numbers answered twice)."""
    by_room: dict[str, list[dict[str, Any]]] = defaultdict(list)
    answered: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        by_room[call["room"]].append(call)
        if call.get("answered_at"):
            answered[call["number"]].append(call)
    doubles = []
    for room, invites in by_room.items():
        invites.sort(key=lambda c: c["started_at"])
        for before, after in pairwise(invites):
            code = before.get("sip_status_code") or 0
            allowed = (before.get("answered_at") is None and (500 <= code < 600 or code in CAPACITY_CODES)
                       and before.get("ended_at") is not None and before["ended_at"] <= after["started_at"])
            if not allowed:
                doubles.append({"room": room, "number": after["number"], "first": brief(before),
                                "second": brief(after)})
    twice = [{"number": number, "invites": [brief(c) for c in found]}
             for number, found in answered.items() if len(found) > 1]
    return doubles, twice


def brief(call: dict[str, Any]) -> dict[str, Any]:
    keys = ("room", "attempt", "started_at", "answered_at", "ended_at", "outcome", "sip_status_code",
            "error_code", "end_reason")
    return {key: call.get(key) for key in keys}


def read_ledger(store: Store, cid: str) -> tuple[dict[int, dict[str, Any]], dict[str, dict[str, Any]]]:
    statuses = dict(store.iter_statuses(cid))
    attempts = {}
    for member, raw in store.redis.hscan_iter(Keys.attempts(cid), count=5000):
        attempts[member.decode() if isinstance(member, bytes) else str(member)] = json.loads(raw)
    return statuses, attempts


def progress_final(store: Store, cid: str) -> int | None:
    try:
        return int(control.status(store, cid)["final"])
    except redis.RedisError:
        return None  # Redis is down or loading its AOF


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    contacts = args.contacts
    with ExitStack() as stack:
        server = RedisServer(tmp / "redis", tmp / "redis.log")
        (tmp / "redis").mkdir()
        stack.callback(server.stop)
        server.start()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        scenario_path = tmp / "scenario.yaml"
        scenario_path.write_text(yaml.safe_dump(scenario(contacts)))
        env = {**os.environ, "REDIS_URL": server.url, "LIVEKIT_URL": url, "LIVEKIT_API_KEY": KEY,
               "LIVEKIT_API_SECRET": SECRET, "SIP_OUTBOUND_TRUNK_ID": TRUNK,
               "DIALER_WORKER_CONCURRENCY": str(args.concurrency),
               "DIALER_LEASE_MARGIN_S": str(args.lease_margin),
               "DIALER_QUEUED_LEASE_S": str(args.queued_lease),
               "DIALER_NO_CALL_SETTLE_S": "1"}
        sandbox = subprocess.Popen([sys.executable, "-m", "dialer", "sandbox", "serve", "--port", str(port),
                                    "--scenario", str(scenario_path)], env=env, cwd=ROOT,
                                   stdout=(tmp / "sandbox.log").open("wb"), stderr=subprocess.STDOUT,
                                   start_new_session=True)
        stack.callback(stop_group, sandbox)
        wait_until(lambda: sandbox_ready(url), 30, "sandbox")
        fleet = Fleet(env, tmp)
        stack.callback(fleet.stop)
        for _ in range(args.workers):
            fleet.spawn()
        beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "dialer", "beat", "--loglevel", "WARNING",
                                 "--schedule", str(tmp / "beat")], env=env, cwd=ROOT,
                                stdout=(tmp / "beat.log").open("wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        stack.callback(stop_group, beat)
        time.sleep(6)  # let the workers come up

        store = Store.from_url(server.url)
        settings = Settings(redis_url=server.url, livekit_url=url, livekit_api_key=KEY, livekit_api_secret=SECRET,
                            sip_outbound_trunk_id=TRUNK)
        csv_path = tmp / "contacts.csv"
        contacts_csv(csv_path, contacts)
        config = parse_config({"name": "soak", "calling_window": OPEN_ALWAYS, "calls_per_second": CALLS_PER_SECOND,
                               "max_concurrent_calls": MAX_CONCURRENT, "ring_timeout_s": 5,
                               "max_call_duration_s": 30,
                               "retry_delay_s": {"busy": 1, "no_answer": 1, "carrier_error": 1}})
        cid = ingest_file(store, csv_path, config, max_bytes=2**30).campaign_id
        log(f"campaign {cid}: {contacts} contacts; workers, beat and sandbox up")

        # Redis restarts when a quarter and three fifths of the contacts are final.
        restarts_at = [(contacts // 4, "kill"), (contacts * 3 // 5, "shutdown")]
        restarts: list[dict[str, Any]] = []
        started = time.monotonic()
        started_wall = time.time()
        control.start(store, settings, cid)
        deadline = started + args.deadline
        next_kill = started + args.kill_every
        final = 0
        last_log = started
        milestones: dict[str, float] = {}
        while time.monotonic() < deadline:
            now = time.monotonic()
            value = progress_final(store, cid)
            final = value if value is not None else final
            for share in (50, 90, 99, 100):
                if final * 100 >= share * contacts and f"{share}%" not in milestones:
                    milestones[f"{share}%"] = round(time.monotonic() - started, 1)
            if final >= contacts:
                break
            if now >= next_kill:
                fleet.kill_oldest()
                next_kill = now + args.kill_every
            if restarts_at and final >= restarts_at[0][0]:
                _, how = restarts_at.pop(0)
                log(f"redis {how} at {final} final")
                down_at = time.time()
                server.kill() if how == "kill" else server.shutdown()
                time.sleep(args.redis_down)
                server.start()
                restarts.append({"how": how, "final_before": final, "down_at": round(down_at - started_wall, 1),
                                 "down_s": round(time.time() - down_at, 1)})
                store = Store.from_url(server.url)
            fleet.sample_rss()
            if now - last_log >= 15:
                log(f"{final}/{contacts} final, {fleet.kills} worker kills, {len(restarts)} redis restarts")
                last_log = now
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        ended_wall = time.time()
        reached = final >= contacts
        log(f"{'all final' if reached else 'DEADLINE passed'} after {elapsed:.0f}s; reading the logs")
        beat_alive = beat.poll() is None
        status = control.status(store, cid)
        time.sleep(2)  # let calls that end with the campaign reach the INVITE log
        calls = sandbox_calls(url)
        statuses, attempts = read_ledger(store, cid)
        if args.keep:
            (tmp / "calls.json").write_text(json.dumps(calls))
            (tmp / "attempts.json").write_text(json.dumps(attempts))

    # -- the figures ----------------------------------------------------------------------
    doubles, answered_twice = check_invites(calls)
    outcomes = Counter(s.get("outcome", s.get("state", "?")) for s in statuses.values() if s.get("state") == "final")
    not_final = sorted(i for i, s in statuses.items() if s.get("state") != "final")
    attempt_states = Counter(a.get("state", "?") for a in attempts.values())
    dialed = {c["number"] for c in calls}
    answered_numbers = {c["number"] for c in calls if c.get("answered_at")}
    never_dialed = contacts - len(dialed)
    peak, peak_at = peak_concurrent(calls, ended_wall)
    starts = sorted(c["started_at"] for c in calls)
    per_second, window_at = max_in_window(starts, 1.0)
    # The limiter's own view: the Redis time each attempt's (last) INVITE was admitted at.
    admitted = sorted(a["last_invite_at"] for a in attempts.values() if a.get("last_invite_at"))
    admitted_per_second, admitted_at = max_in_window(admitted, 1.0)
    lag = admit_to_invite(cid, calls, attempts)
    reasons = Counter(a.get("reason", "") for a in attempts.values() if not a.get("counted"))
    still_live = sum(1 for c in calls if not c.get("ended_at"))
    return {
        "contacts": contacts,
        "elapsed_s": round(elapsed, 1),
        "all_final": reached,
        "final": len(statuses) - len(not_final),
        "campaign_state": status["state"],
        "pause_reason": status["pause_reason"],
        "outcomes": dict(sorted(outcomes.items())),
        "not_final": len(not_final),
        "not_final_sample": not_final[:10],
        "attempts": len(attempts),
        "attempt_states": dict(attempt_states),
        "uncounted_attempt_reasons": dict(reasons.most_common(8)),
        "final_share_at_s": milestones,
        "invites": len(calls),
        "invites_per_s": round(len(calls) / elapsed, 1) if elapsed else 0,
        "numbers_never_dialed": never_dialed,
        "numbers_answered": len(answered_numbers),
        "double_invites_in_room": len(doubles),
        "numbers_answered_twice": len(answered_twice),
        "peak_concurrent_calls": peak,
        "peak_concurrent_at_s": round(peak_at - started_wall, 1),
        "max_concurrent_calls": MAX_CONCURRENT,
        "max_invites_in_1s": per_second,
        "max_invites_in_1s_at_s": round(window_at - started_wall, 1),
        "max_admitted_in_1s": admitted_per_second,
        "max_admitted_in_1s_at_s": round(admitted_at - started_wall, 1),
        "admit_to_invite_s": lag,
        "calls_per_second": CALLS_PER_SECOND,
        "calls_still_live": still_live,
        "worker_kills": fleet.kills,
        "workers_started": fleet.started,
        "redis_restarts": len(restarts),
        "redis_restart_detail": restarts,
        "beat_alive_at_end": beat_alive,
        "peak_worker_rss_mib": round(fleet.peak_rss_mib),
        "violations": {"double_invites": doubles[:20], "answered_twice": answered_twice[:20]},
    }


def summary(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['final']:,}/{figures['contacts']:,} contacts final in {figures['elapsed_s']} s "
        f"({'all' if figures['all_final'] else 'DEADLINE PASSED'}; campaign {figures['campaign_state']})",
        f"outcomes: {figures['outcomes']}",
        f"attempts {figures['attempts']:,} ({figures['attempt_states']}), INVITEs {figures['invites']:,} "
        f"({figures['invites_per_s']}/s), numbers never dialed {figures['numbers_never_dialed']}",
        f"I1: double INVITEs in one room {figures['double_invites_in_room']}, "
        f"numbers answered twice {figures['numbers_answered_twice']}",
        f"I3: peak concurrent calls {figures['peak_concurrent_calls']} (cap {figures['max_concurrent_calls']}), "
        f"max INVITEs in 1 s {figures['max_invites_in_1s']} at the sandbox (at {figures['max_invites_in_1s_at_s']} s), "
        f"{figures['max_admitted_in_1s']} by the limiter's clock (cap {figures['calls_per_second']}); "
        f"admission to INVITE {figures['admit_to_invite_s']} s",
        f"progress (s from start): {figures['final_share_at_s']}; uncounted attempts: "
        f"{figures['uncounted_attempt_reasons']}",
        f"faults: {figures['worker_kills']} worker kills, {figures['redis_restarts']} redis restarts "
        f"{figures['redis_restart_detail']}, beat alive at end: {figures['beat_alive_at_end']}",
        f"peak worker RSS {figures['peak_worker_rss_mib']} MiB",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=300, help="threads per worker")
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between worker kills")
    parser.add_argument("--redis-down", type=float, default=2.0, help="seconds Redis stays down")
    parser.add_argument("--lease-margin", type=float, default=5.0, help="DIALER_LEASE_MARGIN_S")
    parser.add_argument("--queued-lease", type=float, default=20.0, help="DIALER_QUEUED_LEASE_S")
    parser.add_argument("--deadline", type=float, default=1800.0, help="give up after this many seconds")
    parser.add_argument("--keep", help="keep logs (worker, beat, sandbox, redis) in this directory")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the processes started here are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.keep:
        directory = Path(args.keep)
        directory.mkdir(parents=True, exist_ok=True)
        figures = run(args, Path(tempfile.mkdtemp(dir=directory, prefix="soak-")))
    else:
        with tempfile.TemporaryDirectory(prefix="dialer-soak-") as tmp:
            figures = run(args, Path(tmp))
    print(json.dumps(figures), flush=True)
    print(summary(figures), flush=True)


if __name__ == "__main__":
    main()
