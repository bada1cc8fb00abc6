"""The circuit breaker: a campaign whose attempts mostly fail for one reason of ours pauses itself."""

from __future__ import annotations

from pathlib import Path

from invariants import assert_dial_invariants
from pipeline import TRUNK, create_campaign, run_to_end, sandbox, settings_for, workers

from dialer import control
from dialer.dialing import BREAKER_REASONS
from dialer.models import CampaignState
from dialer.store import Ending, Store

TEMPLATE = "circuit breaker: {failed} of the last {total} attempts failed with carrier_error"


def running_campaign(store: Store, tmp_path: Path) -> str:
    cid = create_campaign(store, tmp_path, ["202-555-0100"])
    store.set_state(cid, [CampaignState.DRAFT], CampaignState.RUNNING, fields={"trunk": TRUNK})
    return cid


def record(store: Store, cid: str, reason: str, *, window_s: float = 120.0, min_attempts: int = 10,
           failure_ratio: float = 0.5) -> str:
    return store.count_ending(cid, Ending(reason, window_s, min_attempts, failure_ratio, TEMPLATE))


def test_it_trips_when_half_of_ten_recent_attempts_failed_for_one_reason(store: Store, tmp_path: Path) -> None:
    cid = running_campaign(store, tmp_path)
    for _ in range(4):
        assert record(store, cid, "") == ""
    tripped = [record(store, cid, "carrier_error") for _ in range(6)]
    assert tripped[:5] == [""] * 5  # fewer than 10 attempts seen: never trips
    assert tripped[5] == "circuit breaker: 6 of the last 10 attempts failed with carrier_error"
    record_ = store.get_campaign(cid)
    assert (record_.state, record_.pause_reason) == (CampaignState.PAUSED, tripped[5])
    assert store.running_campaigns() == []


def test_failures_for_different_reasons_do_not_add_up(store: Store, tmp_path: Path) -> None:
    cid = running_campaign(store, tmp_path)
    for reason in ["carrier_error", "capacity", "unknown_outcome"] * 3 + [""]:
        assert record(store, cid, reason) == ""
    assert store.get_campaign(cid).state is CampaignState.RUNNING


def test_resume_starts_the_count_afresh(store: Store, tmp_path: Path) -> None:
    cid = running_campaign(store, tmp_path)
    for _ in range(10):
        record(store, cid, "carrier_error")
    assert store.get_campaign(cid).state is CampaignState.PAUSED
    control.resume(store, cid)
    assert record(store, cid, "carrier_error") == ""  # one failure after the fix is not a trend
    assert store.get_campaign(cid).state is CampaignState.RUNNING
    assert set(BREAKER_REASONS) >= {"carrier_error", "capacity"}


def test_a_failing_carrier_pauses_the_campaign_instead_of_burning_the_list(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.05, "default": ["carrier_error"]}
    numbers = [f"202-555-{n:04d}" for n in range(100, 140)]
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, numbers, calls_per_second=4, max_concurrent_calls=2,
                              circuit_breaker={"min_attempts": 4, "failure_ratio": 0.5, "window_s": 60})
        status = run_to_end(store, settings_for(redis_url, box), cid, timeout_s=60)
        calls = box.calls()
        dialed = {call["number"] for call in calls}
    assert_dial_invariants(calls, store, cid, all_final=False)  # paused on purpose
    assert status["state"] == "paused"
    assert status["pause_reason"].startswith("circuit breaker: ")
    assert "carrier_error (last: SIP 503 Service Unavailable)" in status["pause_reason"]
    assert len(dialed) < 10  # not the whole list of 40


def test_a_campaign_can_turn_the_breaker_off(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.05, "default": ["carrier_error"]}
    numbers = [f"202-555-{n:04d}" for n in range(100, 106)]
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, numbers, max_attempts=1,
                              circuit_breaker={"enabled": False, "min_attempts": 2})
        status = run_to_end(store, settings_for(redis_url, box), cid, timeout_s=60)
        calls = box.calls()
    assert_dial_invariants(calls, store, cid)
    assert status["state"] == "completed"
    assert status["outcomes"]["carrier_error"] == 6
