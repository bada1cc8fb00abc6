"""Benchmark: the HTTP API under an upload of a 1,000,000-row CSV, and under 50 live dashboards.

1. Upload: a real `dialer api serve` process against a throwaway redis-server; the generated
   campaign of ``bench/ingest.py`` (1M rows, ~45 MiB) is POSTed as multipart. Prints the time
   to the 202 and the API process's peak RSS (sampled every 20 ms): it must stay under 200 MiB,
   because the upload streams to disk.
2. Events: the sandbox, a Celery worker, beat and the API; a campaign dialing at a steady pace;
   50 clients hold /v1/campaigns/{id}/events open. Prints the API's CPU over the same window
   with no stream and with 50.

    .venv/bin/python bench/api_upload.py [--rows N] [--streams N] [--window S]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import CONFIG, generate  # noqa: E402

from dialer import auth, control  # noqa: E402
from dialer.config import parse_config  # noqa: E402
from dialer.ingest import ingest_file  # noqa: E402
from dialer.services import free_port, local_redis, sandbox_ready, stop_process, wait_until  # noqa: E402
from dialer.settings import Settings  # noqa: E402
from dialer.store import Store  # noqa: E402

KEY, SECRET, TRUNK = "bench-key", "bench-secret-0123456789", "ST_bench"
OPEN_ALWAYS = {"start": "00:00", "end": "24:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def start_api(env: dict[str, str], logs: Path, stack: ExitStack) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "dialer", "api", "serve", "--port", str(port)], env=env,
                               cwd=ROOT, stdout=(logs / f"api-{port}.log").open("wb"), stderr=subprocess.STDOUT)
    stack.callback(stop_process, process)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(url), 30, "the API")
    return process, url


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)


def bench_upload(rows: int, tmp: Path) -> None:
    with ExitStack() as stack, local_redis() as redis_url:
        csv_path = tmp / "campaign.csv"
        generate(csv_path, rows)
        size_mib = csv_path.stat().st_size / 2**20
        env = {**os.environ, "REDIS_URL": redis_url, "DIALER_MAX_UPLOAD_MB": "4096",
               "DIALER_UPLOAD_DIR": str(tmp / "uploads")}
        api, url = start_api(env, tmp, stack)
        secret = auth.create_key(Store.from_url(redis_url), "bench")[1]
        sampler = PeakRss(api.pid)
        sampler.start()
        idle_mib = psutil.Process(api.pid).memory_info().rss / 2**20
        started = time.perf_counter()
        with csv_path.open("rb") as handle:
            response = httpx.post(f"{url}/v1/campaigns", headers={"Authorization": f"Bearer {secret}"},
                                  files={"file": ("campaign.csv", handle, "text/csv")}, data={"config": CONFIG},
                                  timeout=600)
        elapsed = time.perf_counter() - started
        time.sleep(0.2)
        sampler.running = False
        assert response.status_code == 202, response.text
        stored = sum(f.stat().st_size for f in (tmp / "uploads").rglob("*") if f.is_file())
        assert stored == csv_path.stat().st_size, (stored, csv_path.stat().st_size)
        print(f"upload of {rows:,} rows ({size_mib:.0f} MiB): 202 after {elapsed:.1f}s "
              f"({size_mib / elapsed:.0f} MiB/s); API RSS idle {idle_mib:.0f} MiB, peak {sampler.peak / 2**20:.0f} MiB")


def bench_events(streams: int, window_s: float, tmp: Path) -> None:
    with ExitStack() as stack, local_redis() as redis_url:
        port = free_port()
        livekit = f"http://127.0.0.1:{port}"
        scenario = tmp / "scenario.yaml"
        scenario.write_text(yaml.safe_dump({"ring_s": 0.5, "talk_s": 0.2, "default": ["answer"]}))
        env = {**os.environ, "REDIS_URL": redis_url, "LIVEKIT_URL": livekit, "LIVEKIT_API_KEY": KEY,
               "LIVEKIT_API_SECRET": SECRET, "SIP_OUTBOUND_TRUNK_ID": TRUNK, "DIALER_WORKER_CONCURRENCY": "100"}
        for args, log in [
            (["dialer", "sandbox", "serve", "--port", str(port), "--scenario", str(scenario)], "sandbox"),
            (["celery", "-A", "dialer", "worker", "-B", "--loglevel", "WARNING", "--without-mingle",
              "--without-gossip", "--schedule", str(tmp / "beat")], "worker"),
        ]:
            process = subprocess.Popen([sys.executable, "-m", *args], env=env, cwd=ROOT,
                                       stdout=(tmp / f"{log}.log").open("wb"), stderr=subprocess.STDOUT)
            stack.callback(stop_process, process)
        wait_until(lambda: sandbox_ready(livekit), 20, "sandbox")
        api, url = start_api(env, tmp, stack)
        store = Store.from_url(redis_url)
        csv_path = tmp / "contacts.csv"
        contacts = int(20 * (window_s * 2 + 10))
        csv_path.write_text("phone\n" + "".join(f"+1202{2000000 + i:07d}\n" for i in range(contacts)))
        config = parse_config({"name": "bench", "calling_window": OPEN_ALWAYS, "calls_per_second": 20,
                               "max_concurrent_calls": 50, "ring_timeout_s": 10, "max_call_duration_s": 60})
        cid = ingest_file(store, csv_path, config, max_bytes=2**30).campaign_id
        settings = Settings(redis_url=redis_url, livekit_url=livekit, livekit_api_key=KEY,
                            livekit_api_secret=SECRET, sip_outbound_trunk_id=TRUNK)
        control.start(store, settings, cid)
        wait_until(lambda: control.status(store, cid)["final"] > 0, 30, "the first finished call")
        secret = auth.create_key(store, "bench")[1]
        api_process = psutil.Process(api.pid)

        def cpu_over_window() -> float:
            before = api_process.cpu_times()
            time.sleep(window_s)
            after = api_process.cpu_times()
            return 100 * ((after.user - before.user) + (after.system - before.system)) / window_s

        idle = cpu_over_window()
        events = [0] * streams
        stop = threading.Event()

        def listen(index: int) -> None:
            try:
                with httpx.stream("GET", f"{url}/v1/campaigns/{cid}/events", timeout=None,
                                  headers={"Authorization": f"Bearer {secret}"}) as response:
                    for line in response.iter_lines():
                        if line.startswith("event: status"):
                            events[index] += 1
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                return  # the API stopped at the end of the run

        threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(streams)]
        for thread in threads:
            thread.start()
        wait_until(lambda: all(events), 30, "every stream's first event")
        first = sum(events)
        busy = cpu_over_window()
        received = sum(events) - first
        stop.set()
        status = control.status(store, cid)
        print(f"events: campaign at {status['final']:,}/{status['contacts']:,} final; API CPU over {window_s:.0f}s: "
              f"{idle:.1f}% with no stream, {busy:.1f}% with {streams} streams "
              f"({received / window_s / streams:.1f} events/s per stream)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--only", choices=("upload", "events"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "events":
            (Path(tmp) / "upload").mkdir()
            bench_upload(args.rows, Path(tmp) / "upload")
        if args.only != "upload":
            (Path(tmp) / "events").mkdir()
            bench_events(args.streams, args.window, Path(tmp) / "events")


if __name__ == "__main__":
    main()
