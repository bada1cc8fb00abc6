"""`dialer campaign preview`: who can be called now, who waits for a window, and how long it takes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from conftest import ROOT, run_cli
from pipeline import create_campaign

from dialer.preview import preview
from dialer.store import Store

EXAMPLE = str(ROOT / "campaigns" / "example.csv")  # 15 numbers in Washington DC, 3 in London
WINDOW = {"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
#: 10:00 in London, 05:00 in Washington.
MORNING_IN_LONDON = datetime(2027, 1, 15, 10, 0, tzinfo=UTC).timestamp()


def test_london_is_callable_now_and_washington_waits_until_its_window_opens(store: Store, tmp_path: Path) -> None:
    cid = create_campaign(store, tmp_path, EXAMPLE, calling_window=WINDOW, calls_per_second=2,
                          max_concurrent_calls=10)
    result = preview(store, cid, MORNING_IN_LONDON, avg_call_s=60)
    assert (result.contacts, result.waiting, result.callable_now, result.waiting_for_window, result.blocked) == \
        (18, 18, 3, 15, 0)
    opens = {group.time_zones: group.opens_at for group in result.groups}
    assert opens["Europe/London"] is None
    assert opens["America/New_York"] == "2027-01-15T14:00:00+00:00"  # 09:00 in Washington
    assert result.estimated_duration_s == 18 / (10 / 60)  # bound by concurrency, not by 2 calls/s


def test_preview_from_the_cli_as_json(redis_url: str, store: Store, tmp_path: Path) -> None:
    cid = create_campaign(store, tmp_path, EXAMPLE)
    result = run_cli(redis_url, "campaign", "preview", cid, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["waiting"] == 18
    assert data["callable_now"] + data["waiting_for_window"] + data["blocked"] == 18
    assert run_cli(redis_url, "campaign", "preview", "nope").returncode == 3
