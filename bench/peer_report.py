"""Report peer: what a competent user would write instead of `dialer report export`.

Reads the campaign's contacts, statuses and call results from the same Redis hashes
our report reads (HSCAN, 10,000 fields a page), decodes the JSON, builds one pandas
DataFrame with the same columns, and writes it with ``to_csv``, ``to_parquet`` or
``to_excel(engine="openpyxl")``. No formula neutralising, everything held in memory.

    python bench/peer_report.py REDIS_URL CAMPAIGN_ID --format csv|parquet|xlsx -o FILE
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dialer.store import Keys  # the key names only: a user would read them off our docs

PAGE = 10_000
TIME_COLUMNS = ["first_attempt_at", "last_attempt_at", "answered_at"]


def read_hash(client: redis.Redis, key: str) -> dict[str, Any]:
    return {field.decode(): json.loads(raw) for field, raw in client.hscan_iter(key, count=PAGE)}


def transcript_text(turns: list[dict[str, str]]) -> str:
    return "\n".join(f"{turn.get('role', '')}: {turn.get('text', '')}" for turn in turns)[:1000]


def load(client: redis.Redis, cid: str, *, full_transcript: bool) -> pd.DataFrame:
    campaign = {k.decode(): v.decode() for k, v in client.hgetall(Keys.campaign(cid)).items()}
    columns, phone_column = json.loads(campaign["columns"]), campaign["phone_column"]
    captured = list(json.loads(campaign["config"]).get("capture_fields") or {})
    contacts = read_hash(client, Keys.contacts(cid))
    statuses = read_hash(client, Keys.status(cid))
    results = read_hash(client, Keys.results(cid))
    rows = []
    for key, contact in contacts.items():
        status = statuses.get(key, {})
        result = results.get(status.get("result", ""), {})
        turns = result.get("transcript") or []
        row = {"contact_id": int(key)}
        for name in columns:
            row[name] = contact.get("phone_raw", "") if name == phone_column else contact["variables"].get(name, "")
        row.update({
            "phone_e164": contact["phone_e164"], "extension": contact.get("extension", ""),
            "number_type": contact.get("number_type", ""), "time_zones": " ".join(contact.get("time_zones", [])),
            "outcome": status.get("outcome") or status.get("state") or "pending",
            "attempts": status.get("attempts", 0), "dials": status.get("dials", 0),
            "caller_id": status.get("last_caller_id", ""), "last_sip_status": status.get("last_sip_code"),
            "last_sip_reason": status.get("last_sip_status") or status.get("last_reason", ""),
            "disposition": result.get("disposition", ""), "notes": result.get("notes", ""),
        })
        for name in captured:
            row[f"captured_{name}"] = str((result.get("captured") or {}).get(name, ""))
        row.update({
            "callback_at": result.get("callback_at", ""), "callbacks_scheduled": status.get("callbacks", 0),
            "callbacks_done": status.get("callbacks_done", 0), "callback_skipped": status.get("callback_skipped", ""),
            "first_attempt_at": status.get("first_attempt_at"), "last_attempt_at": status.get("last_attempt_at"),
            "answered_at": status.get("answered_at") or result.get("answered_at"),
            "talk_s": float(status.get("talk_s") or result.get("talk_s") or 0.0),
            "sip_call_id": status.get("sip_call_id") or result.get("sip_call_id", ""),
            "transcript": json.dumps(turns) if full_transcript else transcript_text(turns),
        })
        rows.append(row)
    frame = pd.DataFrame(rows).sort_values("contact_id", ignore_index=True)
    frame["last_sip_status"] = frame["last_sip_status"].astype("Int32")
    for name in TIME_COLUMNS:
        frame[name] = pd.to_datetime(frame[name], unit="s", utc=True)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("redis_url")
    parser.add_argument("campaign_id")
    parser.add_argument("--format", choices=["csv", "parquet", "xlsx"], default="csv")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    frame = load(client, args.campaign_id, full_transcript=args.format == "parquet")
    if args.format == "csv":
        frame.to_csv(args.output, index=False)
    elif args.format == "parquet":
        frame.to_parquet(args.output, index=False)
    else:
        for name in TIME_COLUMNS:  # Excel has no time zones
            frame[name] = frame[name].dt.tz_localize(None)
        frame.to_excel(args.output, index=False, sheet_name="contacts", engine="openpyxl")
    print(json.dumps({"rows": len(frame)}))


if __name__ == "__main__":
    main()
