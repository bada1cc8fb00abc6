"""Benchmark: `dialer campaign create` on a generated 1,000,000-row campaign, against a pandas peer.

Mixed national and international formats for US, GB and DE numbers, ~2% invalid,
~1% duplicates, three variable columns. In one run, the real CLI and the peer
(``bench/peer_ingest.py``: pandas, phonenumbers and pipelined HSETs) each ingest the
same file in a subprocess against the same throwaway redis-server; prints rows/s,
peak RSS and our time as a ratio of the peer's.

    .venv/bin/python bench/ingest.py [--rows N] [--keep FILE] [--no-peer] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import Measured, add_json_out, emit, ratio, run_measured  # noqa: E402

from dialer.services import local_redis  # noqa: E402

US_AREAS = ["202", "212", "213", "312", "415", "617", "646", "702", "713", "786", "917", "971"]
FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken"]
CITIES = ["Boston", "London", "Berlin", "Austin", "Denver", "Leeds", "Hamburg", "Seattle"]


def us(rng: random.Random) -> str:
    area, exchange, line = rng.choice(US_AREAS), rng.randint(201, 989), rng.randint(0, 9999)
    style = rng.randrange(5)
    if style == 0:
        return f"({area}) {exchange}-{line:04d}"
    if style == 1:
        return f"{area}-{exchange}-{line:04d}"
    if style == 2:
        return f"+1 {area} {exchange} {line:04d}"
    if style == 3:
        return f"1{area}{exchange}{line:04d}"
    return f"{area}.{exchange}.{line:04d}"


def gb(rng: random.Random) -> str:
    if rng.random() < 0.5:
        number = f"20 {rng.choice('378')}{rng.randint(0, 999):03d} {rng.randint(0, 9999):04d}"
    else:
        # Mobile ranges 074xx-075xx and 077xx-079xx (076xx are pagers, not mobiles).
        number = f"7{rng.choice((rng.randint(400, 599), rng.randint(700, 999)))} {rng.randint(0, 999999):06d}"
    return rng.choice(["+44 ", "0044 ", "+44 (0)"]) + number


def de(rng: random.Random) -> str:
    if rng.random() < 0.5:
        number = f"30 {rng.randint(1000000, 99999999)}"
    else:
        number = f"{rng.choice(['151', '160', '170', '176'])} {rng.randint(1000000, 9999999)}{rng.randint(0, 9)}"
    return rng.choice(["+49 ", "0049 ", "+49-"]) + number


def invalid(rng: random.Random) -> str:
    return rng.choice([str(rng.randint(100, 99999)), "n/a", "+1 202 555", "call me", "4.4207946E+11", ""])


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    previous: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "first_name", "city", "account_id"])
        for index in range(rows):
            roll = rng.random()
            if roll < 0.02:
                phone = invalid(rng)
            elif roll < 0.03 and previous:
                phone = rng.choice(previous)
            else:
                phone = rng.choice((us, us, gb, de))(rng)
                if len(previous) < 10_000:
                    previous.append(phone)
                else:
                    previous[rng.randrange(10_000)] = phone
            writer.writerow([phone, rng.choice(FIRST), rng.choice(CITIES), f"A{index:07d}"])


CONFIG = """\
name: Benchmark
default_region: US
calling_window: {start: "00:00", end: "24:00", days: [mon, tue, wed, thu, fri, sat, sun]}
"""


PEER = Path(__file__).resolve().parent / "peer_ingest.py"
#: Targets of issue 11: at most half the peer's time, and peak RSS under this.
MAX_RATIO, RSS_TARGET_MIB = 0.5, 400


def run_ours(csv_path: Path, config: Path, env: dict[str, str], out: Path) -> tuple[Measured, dict[str, Any]]:
    with out.open("w") as stdout:
        ours = run_measured([sys.executable, "-m", "dialer", "campaign", "create", str(csv_path), "--config",
                             str(config), "--json"], env=env, stdout=stdout)
    if ours.returncode != 0:
        raise SystemExit(f"campaign create failed:\n{ours.stderr}")
    summary = json.loads(out.read_text())
    print(f"ours: campaign create {ours.seconds:.1f}s ({ours.cpu_s:.1f}s CPU), "
          f"{summary['rows'] / ours.seconds:,.0f} rows/s, peak RSS {ours.peak_rss_mib:,.0f} MiB", flush=True)
    return ours, summary


def run_peer(csv_path: Path, redis_url: str, out: Path, rows: int) -> Measured:
    with out.open("w") as stdout:
        peer = run_measured([sys.executable, str(PEER), redis_url, str(csv_path), "--region", "US"], stdout=stdout)
    if peer.returncode != 0:
        raise SystemExit(f"the ingest peer failed:\n{peer.stderr}")
    print(f"peer: {out.read_text().strip()}")
    print(f"peer: {peer.seconds:.1f}s ({peer.cpu_s:.1f}s CPU), {rows / peer.seconds:,.0f} rows/s, "
          f"peak RSS {peer.peak_rss_mib:,.0f} MiB", flush=True)
    return peer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="also keep the generated CSV here")
    parser.add_argument("--no-peer", action="store_true", help="time ours alone")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run ours and the peer this many times, alternating; the figure is each one's median")
    add_json_out(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, local_redis() as redis_url:
        csv_path = args.keep or Path(tmp) / "campaign.csv"
        started = time.perf_counter()
        generate(csv_path, args.rows)
        print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 2**20:.0f} MiB) "
              f"in {time.perf_counter() - started:.1f}s", flush=True)
        config = Path(tmp) / "bench.yaml"
        config.write_text(CONFIG)
        env = {**os.environ, "REDIS_URL": redis_url, "DIALER_MAX_UPLOAD_MB": "4096"}
        ours_runs: list[Measured] = []
        peer_runs: list[Measured] = []
        for _ in range(args.repeat):
            ours, summary = run_ours(csv_path, config, env, Path(tmp) / "out.json")
            ours_runs.append(ours)
            if not args.no_peer:
                peer_runs.append(run_peer(csv_path, redis_url, Path(tmp) / "peer.json", args.rows))
        print(json.dumps({k: summary[k] for k in ("rows", "accepted", "rejected", "duplicates",
                                                  "suppressed", "reject_reasons")}))
    ours_s = statistics.median(run.seconds for run in ours_runs)
    peer_s = statistics.median(run.seconds for run in peer_runs) if peer_runs else None
    ours_rss = max(run.peak_rss_mib for run in ours_runs)
    share = ratio(ours_s, peer_s)
    note = f"{summary['accepted']:,} accepted"
    if args.repeat > 1:
        note += (f"; median of {args.repeat} alternating runs, ours "
                 + "/".join(f"{run.seconds:.1f}" for run in ours_runs) + " s, peer "
                 + "/".join(f"{run.seconds:.1f}" for run in peer_runs) + " s")
    emit({"figure": f"ingest, {args.rows:,} rows end to end", "unit": "s", "ours": round(ours_s, 1),
          "peer": round(peer_s, 1) if peer_s else None, "ratio": share,
          "target": f"<= {MAX_RATIO}x peer, peak RSS < {RSS_TARGET_MIB} MiB",
          "met": share is not None and share <= MAX_RATIO and ours_rss < RSS_TARGET_MIB,
          "ours_rss_mib": round(ours_rss), "peer_rss_mib": round(max(r.peak_rss_mib for r in peer_runs))
          if peer_runs else None, "ours_cpu_s": round(statistics.median(r.cpu_s for r in ours_runs), 1),
          "peer_cpu_s": round(statistics.median(r.cpu_s for r in peer_runs), 1) if peer_runs else None,
          "note": note}, args.json_out)


if __name__ == "__main__":
    main()
