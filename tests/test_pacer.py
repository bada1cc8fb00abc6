"""The pacer's run over many campaigns: every campaign served in one run, closed windows skipped."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import free_port
from pipeline import TRUNK, create_campaign

from dialer import control
from dialer.pacer import pace
from dialer.settings import Settings
from dialer.store import Keys, Store

#: 16:00 in New York, 21:00 in London: inside a 09:00-20:00 window for one, outside for the other.
MOMENT = datetime(2026, 11, 30, 21, 0, tzinfo=UTC).timestamp()
WINDOW = {"start": "09:00", "end": "20:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def settings_at(redis_url: str, moment: float | None = None) -> Settings:
    offset = (moment - time.time()) if moment else 0.0
    return Settings(redis_url=redis_url, livekit_url="http://127.0.0.1:1", livekit_api_key="k",
                    livekit_api_secret="s", sip_outbound_trunk_id=TRUNK, dialer_clock_offset_s=offset)


def test_one_run_releases_each_running_campaigns_share(store: Store, tmp_path: Path, redis_url: str) -> None:
    settings = settings_at(redis_url)
    cids = [create_campaign(store, tmp_path, [f"202-555-{n:04d}" for n in range(100, 130)], calls_per_second=5,
                            max_concurrent_calls=100) for _ in range(3)]
    for cid in cids:
        control.start(store, settings, cid)
    queued: list[str] = []
    assert pace(store, settings, lambda cid, attempts: queued.extend([cid] * len(attempts)), token="t") == 15
    assert sorted(queued) == sorted(cid for cid in cids for _ in range(5))
    assert [store.in_flight(cid) for cid in cids] == [5, 5, 5]


def test_closed_windows_at_the_head_of_the_due_set_do_not_stall_the_run(
    store: Store, tmp_path: Path, redis_url: str
) -> None:
    settings = settings_at(redis_url, MOMENT)
    london = [f"+44 20 7946 {n:04d}" for n in range(20)]
    new_york = [f"202-555-{n:04d}" for n in range(100, 110)]
    cid = create_campaign(store, tmp_path, london + new_york, calls_per_second=5, max_concurrent_calls=100,
                          calling_window=WINDOW)
    control.start(store, settings, cid)
    queued: list[int] = []
    assert pace(store, settings, lambda _cid, attempts: queued.extend(c for c, _ in attempts), token="t") == 5
    contacts = store.contacts(cid, queued)
    assert all(c is not None and c["phone_e164"].startswith("+1202") for c in contacts)
    # The London contacts wait for their window's next opening (09:00 London, 12 h later).
    due = {int(i): score for i, score in store.redis.zrange(Keys.due(cid), 0, -1, withscores=True)}
    waiting = dict(zip(due, store.contacts(cid, list(due)), strict=True))
    london_due = [due[i] for i, c in waiting.items() if c and c["phone_e164"].startswith("+44")]
    assert len(london_due) == 20
    assert all(score >= MOMENT + 11 * 3600 for score in london_due)



def test_starting_a_campaign_asks_for_a_pacer_run_now(store: Store, tmp_path: Path, redis_url: str) -> None:
    cid = create_campaign(store, tmp_path, ["202-555-0100"])
    control.start(store, settings_at(redis_url), cid)
    # One pace message in the control queue of the campaign's Redis, not beat's next tick away.
    [message] = [json.loads(raw) for raw in store.redis.lrange("control", 0, -1)]
    assert message["headers"]["task"] == "dialer.tasks.pace"


def test_a_campaign_starts_even_when_the_pacer_cannot_be_asked(store: Store, tmp_path: Path, redis_url: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    cid = create_campaign(store, tmp_path, ["202-555-0100"])
    settings = settings_at(redis_url)
    control.start(store, settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}), cid)
    assert store.get_campaign(cid).state.value == "running"
    assert "could not ask for a pacer run now" in caplog.text
