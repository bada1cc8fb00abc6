"""Benchmark: exporting the report of a campaign of 1,000,000 finished contacts.

Seeds a throwaway redis-server through the store's own structures (contacts,
contact statuses, attempts and call results, as the dialer leaves them), then runs
`dialer report export` in a subprocess for CSV and Parquet (1M contacts) and XLSX
(100,000), printing time, rows/s and the CLI's peak RSS.

    .venv/bin/python bench/report.py [--contacts N] [--xlsx-contacts N]
"""

from __future__ import annotations

import argparse
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

from dialer.config import parse_config  # noqa: E402
from dialer.models import Contact, Outcome  # noqa: E402
from dialer.services import local_redis  # noqa: E402
from dialer.store import Keys, Store  # noqa: E402

SEED_BATCH = 10_000
OUTCOMES = [(Outcome.ANSWERED, 0.35), (Outcome.VOICEMAIL, 0.15), (Outcome.NO_ANSWER, 0.25), (Outcome.BUSY, 0.1),
            (Outcome.INVALID_NUMBER, 0.05), (Outcome.DECLINED, 0.05), (Outcome.FAILED, 0.05)]
TRANSCRIPT = [{"role": "agent", "text": "Hi, this is the clinic calling about your appointment on Monday."},
              {"role": "user", "text": "Yes, I'll be there, thanks."},
              {"role": "agent", "text": "Great, see you then. Goodbye!"}]


def seed(store: Store, contacts: int, rng: random.Random) -> str:
    config = parse_config({"name": f"report bench {contacts}", "capture_fields": {"best_time": "when to call"}})
    cid = store.new_campaign_id()
    columns = ["phone", "first_name", "city", "account_id"]
    store.begin_campaign(cid, config, columns=columns, phone_column="phone", source="bench.csv")
    now = time.time() - 86_400
    outcomes, weights = zip(*OUTCOMES, strict=True)
    for start in range(2, contacts + 2, SEED_BATCH):
        pipe = store.redis.pipeline(transaction=False)
        contact_rows, statuses, results, attempts = {}, {}, {}, {}
        for contact_id in range(start, min(start + SEED_BATCH, contacts + 2)):
            e164 = f"+1202{2000000 + contact_id:07d}"
            contact = Contact(contact_id, e164, f"(202) {contact_id:07d}", "fixed_line_or_mobile",
                              ("America/New_York",), {"first_name": rng.choice(["Ada", "Alan", "Grace"]),
                                                      "city": "Boston", "account_id": f"A{contact_id:07d}"})
            contact_rows[contact_id] = json.dumps(contact.to_json_dict())
            outcome = rng.choices(outcomes, weights)[0]
            tries = 1 if outcome not in (Outcome.NO_ANSWER, Outcome.BUSY) else 3
            first = now + rng.uniform(0, 36_000)
            status = {"state": "final", "outcome": outcome.value, "seq": tries, "attempts": tries, "dials": tries,
                      "first_attempt_at": first, "last_attempt_at": first + 900 * (tries - 1),
                      "last_attempt": f"{contact_id}:{tries}"}
            for seq in range(1, tries + 1):
                attempts[f"{contact_id}:{seq}"] = json.dumps({"state": "done", "contact": contact_id, "seq": seq,
                                                              "dial_started_at": first + 900 * (seq - 1)})
            if outcome in (Outcome.ANSWERED, Outcome.VOICEMAIL):
                member = f"{contact_id}:{tries}"
                talk = round(rng.uniform(10, 180), 1)
                status.update(answered_at=first + 5, talk_s=talk, sip_call_id=f"SCL_{contact_id}", result=member,
                              last_disposition="confirmed")
                results[member] = json.dumps({"outcome": outcome.value, "disposition": "confirmed",
                                              "captured": {"best_time": "mornings"}, "answered_at": first + 5,
                                              "ended_at": first + 5 + talk, "talk_s": talk,
                                              "transcript": TRANSCRIPT, "sip_call_id": f"SCL_{contact_id}"})
            elif outcome in (Outcome.BUSY, Outcome.INVALID_NUMBER, Outcome.DECLINED):
                status.update(last_sip_code={"busy": 486, "invalid_number": 404, "declined": 603}[outcome.value],
                              last_sip_status="Busy Here")
            statuses[contact_id] = json.dumps(status)
        pipe.hset(Keys.contacts(cid), mapping=contact_rows)
        pipe.hset(Keys.status(cid), mapping=statuses)
        pipe.hset(Keys.attempts(cid), mapping=attempts)
        if results:
            pipe.hset(Keys.results(cid), mapping=results)
        pipe.execute()
    store.publish_campaign(cid, {"rows": contacts, "accepted": contacts}, {})
    store.redis.hset(Keys.campaign(cid), "state", "completed")
    return cid


def export(redis_url: str, cid: str, fmt: str, out: Path) -> tuple[float, float]:
    env = {**os.environ, "REDIS_URL": redis_url}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "dialer", "report", "export", cid, "--format", fmt,
                                "-o", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export failed: {process.stderr.read().decode() if process.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--xlsx-contacts", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp, local_redis() as redis_url:
        store = Store.from_url(redis_url)
        started = time.perf_counter()
        big = seed(store, args.contacts, rng)
        small = seed(store, args.xlsx_contacts, rng)
        print(f"seeded {args.contacts:,} + {args.xlsx_contacts:,} finished contacts in "
              f"{time.perf_counter() - started:.1f}s")
        for cid, fmt, count in ((big, "csv", args.contacts), (big, "parquet", args.contacts),
                                (small, "xlsx", args.xlsx_contacts)):
            out = Path(tmp) / f"report.{fmt}"
            elapsed, peak = export(redis_url, cid, fmt, out)
            print(json.dumps({"format": fmt, "contacts": count, "seconds": round(elapsed, 1),
                              "rows_per_s": round(count / elapsed), "peak_rss_mib": round(peak),
                              "file_mib": round(out.stat().st_size / 2**20, 1)}), flush=True)


if __name__ == "__main__":
    main()
