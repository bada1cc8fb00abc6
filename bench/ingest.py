"""Benchmark: `dialer campaign create` on a generated 1,000,000-row campaign.

Mixed national and international formats for US, GB and DE numbers, ~2% invalid,
~1% duplicates, three variable columns. Runs the real CLI in a subprocess against
a throwaway redis-server and prints rows/s and the CLI's peak RSS.

    .venv/bin/python bench/ingest.py [--rows N] [--keep FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="also keep the generated CSV here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, local_redis() as redis_url:
        csv_path = args.keep or Path(tmp) / "campaign.csv"
        started = time.perf_counter()
        generate(csv_path, args.rows)
        print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 2**20:.0f} MiB) "
              f"in {time.perf_counter() - started:.1f}s")
        config = Path(tmp) / "bench.yaml"
        config.write_text(CONFIG)
        env = {**os.environ, "REDIS_URL": redis_url, "DIALER_MAX_UPLOAD_MB": "4096"}
        out, err = Path(tmp) / "out.json", Path(tmp) / "err.txt"
        started = time.perf_counter()
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "dialer", "campaign", "create", str(csv_path), "--config",
                 str(config), "--json"],
                stdout=stdout, stderr=stderr, env=env,
            )
            _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"campaign create failed:\n{err.read_text()}")
        peak_mib = usage.ru_maxrss / 1024  # the CLI process alone (KiB on Linux)
        summary = json.loads(out.read_text())
        print(json.dumps({k: summary[k] for k in ("rows", "accepted", "rejected", "duplicates",
                                                  "suppressed", "reject_reasons")}))
        print(f"campaign create: {elapsed:.1f}s, {summary['rows'] / elapsed:,.0f} rows/s, "
              f"peak RSS {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
