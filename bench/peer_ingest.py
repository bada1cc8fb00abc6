"""Ingest peer: what a competent user would write instead of `dialer campaign create`.

pandas reads the whole CSV, phonenumbers parses, validates and formats each number as
E.164 with the campaign's default region, duplicates are dropped, and the contacts go
to Redis with pipelined HSETs in batches. No reject reasons, no do-not-call list, no
time zones. ``bench/ingest.py`` runs it on the same file as ours.

    python bench/peer_ingest.py REDIS_URL FILE.csv [--region US] [--phone-column phone]
"""

from __future__ import annotations

import argparse
import json
import uuid

import pandas as pd
import phonenumbers
import redis

#: Contacts per pipelined HSET.
BATCH = 10_000


def to_e164(cell: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(cell, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("redis_url")
    parser.add_argument("csv")
    parser.add_argument("--region", default="US")
    parser.add_argument("--phone-column", default="phone")
    args = parser.parse_args()
    frame = pd.read_csv(args.csv, dtype=str, keep_default_na=False)
    frame["phone_e164"] = [to_e164(cell, args.region) for cell in frame[args.phone_column]]
    frame.index += 2  # the row number in the file, the header being row 1
    valid = frame[frame["phone_e164"].notna()]
    unique = valid.drop_duplicates("phone_e164")
    client = redis.Redis.from_url(args.redis_url)
    key = f"peer:{uuid.uuid4().hex[:12]}:contacts"
    for start in range(0, len(unique), BATCH):
        chunk = unique.iloc[start : start + BATCH]
        pipe = client.pipeline(transaction=False)
        pipe.hset(key, mapping={str(row): json.dumps(record) for row, record in
                                zip(chunk.index, chunk.to_dict("records"), strict=True)})
        pipe.execute()
    print(json.dumps({"rows": len(frame), "accepted": len(unique), "invalid": len(frame) - len(valid),
                      "duplicates": len(valid) - len(unique), "stored": client.hlen(key)}))


if __name__ == "__main__":
    main()
