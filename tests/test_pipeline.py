"""End to end: real Redis, real Celery workers, the sandbox as a real LiveKit API server.

The sandbox's own INVITE log is the witness for invariants I1 (one dial per
attempt), I3 (limits) and I4 (calling window).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from celery import Celery
from conftest import ROOT, wait_for
from invariants import assert_dial_invariants
from pipeline import (
    create_campaign,
    invites_by_number,
    outcomes_by_number,
    run_to_end,
    sandbox,
    settings_for,
    workers,
)

from dialer import control
from dialer.models import CampaignState
from dialer.store import Store

EXAMPLE = str(ROOT / "campaigns" / "example.csv")

#: What the built-in scenario does to each example contact: (outcome, attempts charged, INVITEs).
EXPECTED = {
    "+12025550100": ("answered", 1, 1),
    "+12025550101": ("answered", 1, 1),
    "+12025550102": ("voicemail", 1, 1),
    "+12025550103": ("answered", 3, 3),  # busy, busy, answer
    "+12025550104": ("busy", 3, 3),
    "+12025550105": ("no_answer", 3, 3),
    "+12025550106": ("answered", 2, 2),  # no answer, then answer
    "+12025550107": ("answered", 2, 2),  # 480 unavailable, then answer
    "+12025550108": ("declined", 1, 1),
    "+12025550109": ("invalid_number", 1, 1),
    "+12025550110": ("answered", 1, 2),  # 503 retried inside the task, then answer
    "+12025550111": ("carrier_error", 3, 9),  # 3 attempts x 3 tries
    "+12025550112": ("answered", 1, 1),  # hung up early
    "+12025550113": ("opted_out", 1, 1),
    "+12025550114": ("failed", 1, 1),  # 488
    "+442079460000": ("answered", 1, 1),
    "+442079460001": ("voicemail", 1, 1),
    "+442079460002": ("answered", 2, 2),  # busy, then answer
}

def test_example_campaign_ends_with_the_expected_outcome_per_contact(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    with sandbox(redis_url, tmp_path) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, EXAMPLE, max_attempts=3)
        status = run_to_end(store, settings_for(redis_url, box), cid, timeout_s=90)
        calls = box.calls()
    assert status["state"] == "completed"
    assert outcomes_by_number(store, cid) == {n: (o, a) for n, (o, a, _) in EXPECTED.items()}
    assert invites_by_number(calls) == {n: i for n, (_, _, i) in EXPECTED.items()}
    assert_dial_invariants(calls, store, cid)
    assert status["final"] == status["contacts"] == 18
    assert status["outcomes"]["answered"] == 9
    assert store.dnc_contains("+12025550113")  # the opt-out landed on the DNC list at once


def test_retries_wait_for_their_delay(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.05, "talk_s": 0.1, "numbers": {"+12025550140": ["busy", "no_answer", "answer"]},
                "default": ["answer"]}
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, ["202-555-0140"], retry_delay_s={"busy": 2, "no_answer": 3})
        run_to_end(store, settings_for(redis_url, box), cid)
        calls = box.calls()
    starts = sorted(call["started_at"] for call in calls)
    assert len(starts) == 3
    assert starts[1] - starts[0] >= 2.0
    assert starts[2] - starts[1] >= 3.0
    assert_dial_invariants(calls, store, cid)


def test_invalid_and_declined_numbers_are_never_retried(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    scenario = {"numbers": {"+12025550141": ["not_found"], "+12025550142": ["decline"]}, "default": ["answer"]}
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, ["202-555-0141", "202-555-0142"], max_attempts=5)
        run_to_end(store, settings_for(redis_url, box), cid)
        calls = box.calls()
    assert invites_by_number(calls) == {"+12025550141": 1, "+12025550142": 1}
    assert outcomes_by_number(store, cid) == {"+12025550141": ("invalid_number", 1), "+12025550142": ("declined", 1)}
    assert_dial_invariants(calls, store, cid)


def test_trunk_auth_failure_pauses_the_campaign_without_charging_the_contact(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    scenario = {"numbers": {"+12025550143": ["forbidden"]}, "default": ["answer"]}
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, ["202-555-0143"] + [f"202-555-{n:04d}" for n in range(150, 160)],
                              max_concurrent_calls=1, calls_per_second=2)
        status = run_to_end(store, settings_for(redis_url, box), cid)
        calls = box.calls()
    dialed_at_pause = len(calls)
    assert status["state"] == "paused"
    assert "403" in status["pause_reason"]
    assert "trunk" in status["pause_reason"]
    assert (store.contact_status(cid, 2) or {})["attempts"] == 0
    assert dialed_at_pause == 1
    assert status["final"] == 0
    assert_dial_invariants(calls, store, cid, all_final=False)  # paused on purpose


def test_wrong_livekit_credentials_pause_the_campaign(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    with sandbox(redis_url, tmp_path) as box, workers(
        redis_url, box, tmp_path, LIVEKIT_API_SECRET="not-the-sandbox-secret"
    ):
        cid = create_campaign(store, tmp_path, ["202-555-0100", "202-555-0101"])
        status = run_to_end(store, settings_for(redis_url, box), cid)
        calls = box.calls()
    assert status["state"] == "paused"
    assert "LIVEKIT_API_SECRET" in status["pause_reason"]
    assert calls == []
    assert status["final"] == 0
    assert_dial_invariants(calls, store, cid, all_final=False)  # paused on purpose


def test_limits_hold_across_two_workers(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.1, "talk_s": 1.2, "default": ["answer"]}
    numbers = [f"202-555-{n:04d}" for n in range(100, 124)]
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path, count=2):
        cid = create_campaign(store, tmp_path, numbers, max_concurrent_calls=3, calls_per_second=4)
        run_to_end(store, settings_for(redis_url, box), cid, timeout_s=90)
        calls = box.calls()
    assert len(calls) == 24
    # I3 concurrency: never more than 3 calls between INVITE and hang-up at once.
    events = sorted([(c["started_at"], 1) for c in calls] + [(c["ended_at"], -1) for c in calls])
    concurrent = list(itertools.accumulate(delta for _, delta in events))
    assert max(concurrent) <= 3
    # I3 rate: never more than 4 INVITEs within any one second.
    starts = sorted(c["started_at"] for c in calls)
    assert all(starts[i + 4] - starts[i] >= 1.0 - 0.02 for i in range(len(starts) - 4))
    assert_dial_invariants(calls, store, cid)


def test_no_invite_outside_the_calling_window(redis_url: str, tmp_path: Path) -> None:
    """The dialer's clock is set to 19:59:50 in New York; the window closes at 20:00."""
    store = Store.from_url(redis_url)
    local = datetime.now(ZoneInfo("America/New_York"))
    close = local.replace(hour=20, minute=0, second=0, microsecond=0)
    offset = (close - timedelta(seconds=10) - local).total_seconds()
    scenario = {"ring_s": 0.1, "talk_s": 0.2, "default": ["answer"]}
    numbers = [f"202-555-{n:04d}" for n in range(100, 130)]
    window = {"start": "09:00", "end": "20:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
    with sandbox(redis_url, tmp_path, scenario) as box, workers(
        redis_url, box, tmp_path, DIALER_CLOCK_OFFSET_S=str(offset)
    ):
        cid = create_campaign(store, tmp_path, numbers, calling_window=window, calls_per_second=2,
                              max_concurrent_calls=2)
        control.start(store, settings_for(redis_url, box), cid)
        wait_for(lambda: datetime.now(UTC).timestamp() + offset > close.timestamp() + 2, timeout_s=30,
                 what="the window to close")
        wait_for(lambda: store.in_flight(cid) == 0, timeout_s=30, what="calls in progress to end")
        calls = box.calls()
    closing = close.timestamp()
    assert 0 < len(calls) < 30
    assert all(call["started_at"] + offset < closing for call in calls)
    next_due = store.next_due_at(cid)
    assert next_due is not None and next_due >= (close + timedelta(hours=13)).timestamp()  # 09:00 next day
    assert_dial_invariants(calls, store, cid, all_final=False)  # the rest wait for tomorrow's window


def test_a_task_delivered_twice_dials_once(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.3, "talk_s": 0.3, "default": ["answer"]}
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, ["202-555-0160"])
        store.set_trunk(cid, "ST_test")
        store.set_state(cid, [CampaignState.DRAFT], CampaignState.RUNNING)
        # Queue the attempt by hand (as the pacer would) and deliver its task twice at once.
        [member] = store.queue_attempts(cid, "ST_test", [2], now=datetime.now(UTC).timestamp(), lease_s=300,
                                        max_concurrent=5, trunk_max_concurrent=0)
        producer = Celery(broker=redis_url)
        for _ in range(2):
            producer.send_task("dialer.tasks.dial", args=[cid, 2, int(member.split(":")[1])], queue="dial")
        wait_for(lambda: store.get_campaign(cid).state is CampaignState.COMPLETED, timeout_s=30)
        calls = box.calls()
    assert len(calls) == 1
    assert_dial_invariants(calls, store, cid)


def test_a_worker_killed_mid_dial_never_causes_a_second_invite_for_the_attempt(
    redis_url: str, tmp_path: Path
) -> None:
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.1, "talk_s": 0.3, "default": ["answer"],
                "numbers": {"+12025550170": {"outcomes": ["answer"], "ring_s": 2.5}}}
    with sandbox(redis_url, tmp_path, scenario) as box:
        cid = create_campaign(store, tmp_path, ["202-555-0170"], ring_timeout_s=5)
        with workers(redis_url, box, tmp_path) as [first]:
            control.start(store, settings_for(redis_url, box), cid)
            wait_for(lambda: len(box.calls()) == 1, timeout_s=20, what="the INVITE")
            first.kill()  # SIGKILL while the callee's phone rings
        assert store.get_campaign(cid).state is CampaignState.RUNNING
        with workers(redis_url, box, tmp_path):
            wait_for(lambda: store.get_campaign(cid).state is CampaignState.COMPLETED, timeout_s=60,
                     what="the reconciler to settle the attempt")
            calls = box.calls()
    assert_dial_invariants(calls, store, cid)
    attempts = {call["room"] for call in calls}
    assert len(calls) == len(attempts)
    assert outcomes_by_number(store, cid)["+12025550170"][0] == "answered"


def test_a_failing_livekit_api_never_causes_a_second_invite_for_an_attempt(redis_url: str, tmp_path: Path) -> None:
    """503s before the work is done (safe to retry) and after it is done (ambiguous: read the room)."""
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.1, "talk_s": 0.2, "default": ["answer"],
                "faults": {"api_error_rate": 0.2, "error_after_rate": 0.2, "seed": 7}}
    numbers = [f"202-555-{n:04d}" for n in range(100, 130)]
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path):
        # A third of LiveKit calls failing is what the circuit breaker exists for; here the subject
        # is what each attempt does about it, so the breaker stays out of the way.
        cid = create_campaign(store, tmp_path, numbers, max_attempts=3, circuit_breaker={"enabled": False})
        status = run_to_end(store, settings_for(redis_url, box), cid, timeout_s=90)
        calls = box.calls()
    assert status["state"] == "completed", status["pause_reason"]
    assert status["final"] == 30
    assert_dial_invariants(calls, store, cid)
    assert len({call["room"] for call in calls}) == len(calls)
    # With 30 calls at 20% the ambiguous case misses every INVITE with odds of about 1 in 800.
    assert any(call.get("api_error_after") for call in calls)
    assert status["outcomes"]["answered"] >= 25
