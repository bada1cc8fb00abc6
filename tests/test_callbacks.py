"""Callbacks: a callee who asks to be called back at a time is re-dialed then, once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from invariants import assert_dial_invariants
from pipeline import TRUNK, create_campaign, run_to_end, sandbox, settings_for, workers

from dialer import control
from dialer.dialing import finish_call
from dialer.models import AttemptState, CallResult, CampaignState, DispatchMetadata, Outcome
from dialer.settings import Settings
from dialer.store import Store


def test_a_requested_callback_is_dialed_at_its_time_once(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.05, "talk_s": 0.1,
                "numbers": {"+12025550100": {"outcomes": ["answer"], "callback_in_s": 2}}}
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, ["202-555-0100"], max_attempts=1)
        status = run_to_end(store, settings_for(redis_url, box), cid)
        calls = sorted(box.calls(), key=lambda call: call["started_at"])
    assert status["state"] == "completed"
    assert_dial_invariants(calls, store, cid, redial_after_answer=["+12025550100"])  # the callback
    assert len(calls) == 2  # the call, then the callback; the callback's own request is over the cap
    assert calls[1]["started_at"] - calls[0]["ended_at"] >= 2.0 - 0.05
    contact = store.contact_status(cid, 2) or {}
    assert (contact["outcome"], contact["callbacks"], contact["callbacks_done"]) == ("answered", 1, 1)
    assert contact["callback_skipped"] == "max_callbacks reached"


def attempt_in_call(store: Store, tmp_path: Path, **config: object) -> tuple[str, str]:
    cid = create_campaign(store, tmp_path, ["202-555-0100", "202-555-0101"], **config)
    store.set_state(cid, [CampaignState.DRAFT], CampaignState.RUNNING, fields={"trunk": TRUNK})
    [member] = store.queue_attempts(cid, TRUNK, [2], now=time.time(), lease_s=60, max_concurrent=5,
                                    trunk_max_concurrent=0)
    store.transition(cid, member, [AttemptState.QUEUED], AttemptState.DIALING, 60, claim="t")
    contact, seq = member.split(":")
    return cid, DispatchMetadata.make_call_id(cid, int(contact), int(seq))


def ask_for_callback(store: Store, call_id: str, when: datetime) -> str:
    now = time.time()
    return finish_call(store, call_id, CallResult(outcome=Outcome.ANSWERED, disposition="callback_requested",
                                                  answered_at=now - 30, ended_at=now, callback_at=when.isoformat()))


def test_a_callback_in_the_past_or_too_far_ahead_is_recorded_not_scheduled(store: Store, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    for when, why in [(now - timedelta(hours=1), "had passed"), (now + timedelta(days=31), "more than 30 days")]:
        cid, call_id = attempt_in_call(store, tmp_path)
        assert ask_for_callback(store, call_id, when) == "final:answered"
        contact = store.contact_status(cid, 2) or {}
        assert why in contact["callback_skipped"]
        assert contact.get("callbacks", 0) == 0
        assert store.due_contacts(cid, time.time() + 40 * 86_400, 10) == [3]


def test_a_callback_waits_in_the_due_set_and_a_cancel_cancels_it(store: Store, tmp_path: Path, redis_url: str) -> None:
    cid, call_id = attempt_in_call(store, tmp_path)
    when = datetime.now(UTC) + timedelta(hours=2)
    assert ask_for_callback(store, call_id, when) == "pending"
    assert store.due_contacts(cid, time.time() + 3600, 10) == [3]  # not due yet
    assert 2 in store.due_contacts(cid, when.timestamp() + 1, 10)
    control.cancel(store, Settings(redis_url=redis_url), cid)
    assert (store.contact_status(cid, 2) or {})["outcome"] == "cancelled"


def test_no_callbacks_when_the_campaign_allows_none(store: Store, tmp_path: Path) -> None:
    cid, call_id = attempt_in_call(store, tmp_path, max_callbacks=0)
    assert ask_for_callback(store, call_id, datetime.now(UTC) + timedelta(hours=2)) == "final:answered"
    assert (store.contact_status(cid, 2) or {})["callback_skipped"] == "max_callbacks reached"
