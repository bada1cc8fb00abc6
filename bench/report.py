"""Benchmark: exporting the report of a campaign of 1,000,000 finished contacts, ours against a pandas peer.

Seeds a throwaway redis-server through the store's own structures (contacts,
contact statuses, attempts and call results, as the dialer leaves them), then, in one
run, runs `dialer report export` and the peer (``bench/peer_report.py``: pandas
reading the same hashes, ``to_csv`` / ``to_parquet`` / ``to_excel(engine="openpyxl")``),
each in a subprocess, for CSV and Parquet (1M contacts) and XLSX (100,000, and ours alone
at the full size), printing time, rows/s, peak RSS and our time as a ratio of the peer's.

    .venv/bin/python bench/report.py [--contacts N] [--xlsx-contacts N] [--xlsx-big-contacts N]
                                     [--peer-xlsx-big] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import Measured, add_json_out, emit, ratio, run_measured  # noqa: E402

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


PEER = Path(__file__).resolve().parent / "peer_report.py"
MILLION = 1_000_000
#: Targets of issue 11 at 1M contacts (XLSX: 8 s at 100,000, 90 s at 1M); smaller runs scale them.
CSV_TARGET_S, PARQUET_TARGET_S, XLSX_TARGET_S, XLSX_BIG_TARGET_S = 8.0, 6.0, 8.0, 90.0
#: "Bounded memory" for the large XLSX: under the report's general memory target.
MEMORY_TARGET_MIB = 1536
#: The openpyxl peer holds the whole workbook; at 1M contacts it is stopped after this long.
PEER_CAP_S = 900.0


def export(redis_url: str, cid: str, fmt: str, out: Path) -> Measured:
    env = {**os.environ, "REDIS_URL": redis_url}
    measured = run_measured([sys.executable, "-m", "dialer", "report", "export", cid, "--format", fmt,
                             "-o", str(out)], env=env)
    if measured.returncode != 0:
        raise SystemExit(f"export failed: {measured.stderr}")
    return measured


def peer_export(redis_url: str, cid: str, fmt: str, out: Path, cap_s: float | None = None) -> Measured | None:
    measured = run_measured([sys.executable, str(PEER), redis_url, cid, "--format", fmt, "-o", str(out)],
                            timeout_s=cap_s)
    if measured.capped:
        return None
    if measured.returncode != 0:
        raise SystemExit(f"peer export failed: {measured.stderr}")
    return measured


def describe(label: str, count: int, measured: Measured, out: Path) -> str:
    return (f"{label}: {measured.seconds:.1f}s ({measured.cpu_s:.1f}s CPU), {count / measured.seconds:,.0f} rows/s, "
            "peak RSS "
            f"{measured.peak_rss_mib:,.0f} MiB largest process / {measured.tree_rss_mib:,.0f} MiB all processes, "
            f"file {out.stat().st_size / 2**20:,.1f} MiB")


def figure(name: str, count: int, ours: Measured, peer: Measured | None, *, target_s: float, per: int,
           max_ratio: float | None, note: str = "") -> dict[str, object]:
    """One row: our time against the peer's and the target (scaled from ``per`` contacts to ``count``).

    With ``max_ratio`` the target is the ratio and ``target_s`` only an aim (issue 11: "in
    absolute terms aim for"), said in the note; without, ``target_s`` is the target.
    """
    scaled = target_s * count / per
    limit = f"{target_s:g} s at {per:,}" + (f" ({scaled:.1f} s here)" if count != per else "")
    share = ratio(ours.seconds, peer.seconds if peer else None)
    if max_ratio is not None:
        target = f"<= {max_ratio}x peer (aim: <= {limit})"
        met = share is not None and share <= max_ratio
        aim = f"aim {'reached' if ours.seconds <= scaled else 'not reached'}"
        note = f"{aim}; {note}" if note else aim
    else:
        target = f"<= {limit}, RSS < {MEMORY_TARGET_MIB} MiB"
        met = ours.seconds <= scaled and ours.tree_rss_mib < MEMORY_TARGET_MIB
    return {"figure": f"{name}, {count:,} contacts", "unit": "s", "ours": round(ours.seconds, 1),
            "peer": round(peer.seconds, 1) if peer else None, "ratio": share, "target": target,
            "met": met, "ours_rss_mib": round(ours.tree_rss_mib), "peer_rss_mib": round(peer.tree_rss_mib) if peer
            else None, "ours_cpu_s": round(ours.cpu_s, 1), "peer_cpu_s": round(peer.cpu_s, 1) if peer else None,
            "note": note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=MILLION)
    parser.add_argument("--xlsx-contacts", type=int, default=100_000)
    parser.add_argument("--xlsx-big-contacts", type=int, default=None,
                        help="ours alone, XLSX of the big campaign (default: --contacts; 0 skips it)")
    parser.add_argument("--peer-xlsx-big", action="store_true",
                        help=f"run the openpyxl peer on the big XLSX too (stopped after {PEER_CAP_S:.0f}s)")
    add_json_out(parser)
    args = parser.parse_args()
    big_xlsx = args.contacts if args.xlsx_big_contacts is None else args.xlsx_big_contacts
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp, local_redis() as redis_url:
        store = Store.from_url(redis_url)
        started = time.perf_counter()
        big = seed(store, args.contacts, rng)
        small = seed(store, args.xlsx_contacts, rng)
        huge = big if big_xlsx in (0, args.contacts) else seed(store, big_xlsx, rng)
        print(f"seeded {args.contacts:,} + {args.xlsx_contacts:,} finished contacts in "
              f"{time.perf_counter() - started:.1f}s", flush=True)
        runs: list[tuple[str, str, int, float, int, float | None, bool]] = [
            (big, "csv", args.contacts, CSV_TARGET_S, MILLION, 0.5, True),
            (big, "parquet", args.contacts, PARQUET_TARGET_S, MILLION, 0.5, True),
            (small, "xlsx", args.xlsx_contacts, XLSX_TARGET_S, 100_000, None, True),
        ]
        if big_xlsx:
            runs.append((huge, "xlsx", big_xlsx, XLSX_BIG_TARGET_S, MILLION, None, args.peer_xlsx_big))
        for cid, fmt, count, target_s, per, max_ratio, with_peer in runs:
            out, peer_out = Path(tmp) / f"report.{fmt}", Path(tmp) / f"peer.{fmt}"
            ours = export(redis_url, cid, fmt, out)
            print(describe(f"ours {fmt}", count, ours, out), flush=True)
            note = ""
            peer = None
            if with_peer:
                peer = peer_export(redis_url, cid, fmt, peer_out, cap_s=PEER_CAP_S if count > 100_000 else None)
                if peer is None:
                    note = f"peer stopped after {PEER_CAP_S:.0f} s"
                else:
                    print(describe(f"peer {fmt}", count, peer, peer_out), flush=True)
            else:
                note = "peer not run at this size (openpyxl holds the whole workbook in memory)"
            sheets = -(-count // 1_048_575)
            if fmt == "xlsx" and sheets > 1:
                note = f"{note}; {sheets} sheets".lstrip("; ")
            name = {"csv": "report CSV", "parquet": "report Parquet", "xlsx": "report XLSX"}[fmt]
            emit(figure(name, count, ours, peer, target_s=target_s, per=per, max_ratio=max_ratio, note=note),
                 args.json_out)
            out.unlink()
            peer_out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
