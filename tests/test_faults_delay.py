"""End to end under delay, not only under crashes (issue #13): I1 and I3 from the sandbox's log.

Real Redis, real Celery workers and the sandbox as a real LiveKit API server. Every test ends
with ``assert_dial_invariants`` (tests/invariants.py), the issue's acceptance properties.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from celery import Celery
from conftest import RedisServer, wait_for
from invariants import assert_dial_invariants
from pipeline import create_campaign, invites_by_number, run_to_end, sandbox, settings_for, workers

from dialer import control
from dialer.models import AttemptState, CampaignState
from dialer.pacer import pace
from dialer.store import Keys, Store


def numbers(first: int, count: int) -> list[str]:
    """Fictional North American numbers 202-555-0100 and up, as the CSV holds them."""
    return [f"202-555-{n:04d}" for n in range(first, first + count)]


def e164(rows: list[str]) -> list[str]:
    return ["+1" + row.replace("-", "") for row in rows]


def completed(store: Store, *cids: str) -> bool:
    return all(store.get_campaign(cid).state is CampaignState.COMPLETED for cid in cids)


def test_a_trunk_slower_than_its_campaign_calls_nobody_twice(redis_url: str, tmp_path: Path) -> None:
    """The operator's run from the issue, no fault at all: 2 calls/s on the trunk, 20 on the campaign."""
    store = Store.from_url(redis_url)
    rows = numbers(100, 40)
    scenario = {"ring_s": 0.3, "talk_s": 1.0, "default": ["answer"]}
    with sandbox(redis_url, tmp_path, scenario) as box, workers(
        redis_url, box, tmp_path, DIALER_TRUNK_CALLS_PER_SECOND="2", DIALER_LEASE_MARGIN_S="3"
    ):
        cid = create_campaign(store, tmp_path, rows, calls_per_second=20, max_concurrent_calls=20)
        status = run_to_end(store, settings_for(redis_url, box), cid, timeout_s=90)
        calls = box.calls()
    assert status["state"] == "completed"
    assert status["outcomes"]["answered"] == 40
    assert invites_by_number(calls) == {number: 1 for number in e164(rows)}
    assert_dial_invariants(calls, store, cid, trunk_calls_per_second=2)


def _claimed_before_invite(store: Store, cid: str) -> list[str]:
    """Attempts a dial task has claimed and not yet sent an INVITE for."""
    attempts = ((member.decode(), json.loads(raw)) for member, raw in store.redis.hscan_iter(Keys.attempts(cid)))
    return [member for member, attempt in attempts
            if attempt["state"] == AttemptState.DIALING and not attempt.get("invites")]


def _ended(store: Store, cid: str, members: list[str]) -> bool:
    return all((store.attempt(cid, member) or {}).get("state") == AttemptState.DONE for member in members)


def test_a_worker_paused_past_its_lease_makes_no_second_invite_when_it_resumes(
    redis_url: str, tmp_path: Path
) -> None:
    store = Store.from_url(redis_url)
    rows = numbers(100, 6)
    scenario = {"ring_s": 1.0, "talk_s": 0.5, "default": ["answer"]}
    # Worker 0 dials; worker 1 runs beat, the pacer and the reconciler, and keeps running.
    with sandbox(redis_url, tmp_path, scenario) as box, workers(
        redis_url, box, tmp_path, count=2, beat_on=1, args_of={0: ["-Q", "dial"], 1: ["-Q", "control"]},
        DIALER_LEASE_MARGIN_S="1",
    ) as [dialing, _]:
        cid = create_campaign(store, tmp_path, rows, ring_timeout_s=2, calls_per_second=2, max_concurrent_calls=3)
        box.set_faults(latency_s=1.0)  # each LiveKit call takes a second: a claim is seconds from its INVITE
        control.start(store, settings_for(redis_url, box), cid)
        held = wait_for(lambda: _claimed_before_invite(store, cid), timeout_s=30, what="a claimed attempt")
        dialing.pause()
        try:
            box.set_faults()
            wait_for(lambda: _ended(store, cid, held), timeout_s=60,
                     what="the reconciler to take back the paused worker's attempts")
        finally:
            dialing.resume()
        wait_for(lambda: completed(store, cid), timeout_s=60, what="the campaign to end")
        calls = box.calls()
    # The resumed task came back to its attempt, was refused, and dialed nothing.
    assert all((store.attempt(cid, member) or {}).get("late_tasks_refused") for member in held), held
    assert not {f"dial-{cid}-{member.replace(':', '-')}" for member in held} & {call["room"] for call in calls}
    assert invites_by_number(calls) == {number: 1 for number in e164(rows)}
    assert_dial_invariants(calls, store, cid)


def test_two_campaigns_on_a_trunk_slower_than_their_sum_keep_its_rate_and_share_it(
    redis_url: str, tmp_path: Path
) -> None:
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.2, "talk_s": 0.5, "default": ["answer"]}
    with sandbox(redis_url, tmp_path, scenario) as box, workers(
        redis_url, box, tmp_path, DIALER_TRUNK_CALLS_PER_SECOND="3", DIALER_TRUNK_MAX_CONCURRENT_CALLS="3"
    ):
        first = create_campaign(store, tmp_path, numbers(100, 15), calls_per_second=5)
        second = create_campaign(store, tmp_path, numbers(115, 15), calls_per_second=5)
        for cid in (first, second):
            control.start(store, settings_for(redis_url, box), cid)
        wait_for(lambda: completed(store, first, second), timeout_s=90, what="both campaigns to end")
        calls = box.calls()
    assert_dial_invariants(calls, store, [first, second], trunk_calls_per_second=3, trunk_max_concurrent_calls=3)
    # Fair share: while both had contacts left, neither took much more than half of the trunk.
    early = sorted(calls, key=lambda call: call["started_at"])[: len(calls) // 2]
    share = sum(call["room"].startswith(f"dial-{first}-") for call in early) / len(early)
    assert 0.3 <= share <= 0.7, share


def test_a_worker_whose_clock_is_a_second_ahead_keeps_the_calls_per_second(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    rows = numbers(100, 24)
    scenario = {"ring_s": 0.2, "talk_s": 0.5, "default": ["answer"]}
    with sandbox(redis_url, tmp_path, scenario) as box, workers(
        redis_url, box, tmp_path, count=2, env_of={1: {"DIALER_CLOCK_OFFSET_S": "1"}}
    ) as pair:
        cid = create_campaign(store, tmp_path, rows, calls_per_second=3)
        status = run_to_end(store, settings_for(redis_url, box), cid, timeout_s=90)
        calls = box.calls()
    assert status["state"] == "completed"
    assert all("INVITE" in worker.log for worker in pair), "both workers dial"
    assert invites_by_number(calls) == {number: 1 for number in e164(rows)}
    assert_dial_invariants(calls, store, cid)



def test_redis_killed_while_a_call_rings_and_restored_without_the_claim_calls_nobody_twice(tmp_path: Path) -> None:
    """Redis SIGKILLed while the callee's phone rings, its AOF cut back to before the dial task
    claimed the attempt (the task is back in the queue), Redis and the workers restarted: the
    redelivered task finds the live call in the attempt's room and does not dial (I1), and the
    contact still ends by a deadline (I2)."""
    server = RedisServer(tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    store = Store.from_url(server.url)
    scenario = {"ring_s": 6.0, "talk_s": 6.0, "default": ["answer"]}
    try:
        with sandbox(server.url, tmp_path, scenario) as box:
            settings = settings_for(server.url, box)
            cid = create_campaign(store, tmp_path, numbers(190, 1), ring_timeout_s=15)
            control.start(store, settings, cid)
            # Pace by hand, with no worker running yet, so the AOF can be taken between the
            # attempt's release and its claim.
            producer = Celery(broker=server.url)
            queued = pace(store, settings, lambda c, attempts: [producer.send_task(
                "dialer.tasks.dial", args=[c, contact, seq], queue="dial") for contact, seq in attempts], token="test")
            assert queued == 1
            before_claim = tmp_path / "aof-before-claim"

            def copied_with_the_attempt() -> bool:
                # appendfsync everysec may hold the write back while an fsync is slow (a busy disk).
                shutil.rmtree(before_claim, ignore_errors=True)
                shutil.copytree(server.directory / "appendonlydir", before_claim)
                return any(b'"state":"queued"' in part.read_bytes() for part in before_claim.iterdir())

            wait_for(copied_with_the_attempt, timeout_s=10, interval_s=0.2, what="the AOF to hold the queued attempt")
            with workers(server.url, box, tmp_path) as [first]:
                wait_for(lambda: [c for c in box.calls() if c["call_status"] == "ringing"], timeout_s=30,
                         what="the callee's phone to ring")
                server.stop(sig_kill=True)
                first.kill()
            shutil.rmtree(server.directory / "appendonlydir")
            shutil.copytree(before_claim, server.directory / "appendonlydir")
            server.start()
            assert (store.attempt(cid, "2:1") or {}).get("state") == AttemptState.QUEUED
            with workers(server.url, box, tmp_path) as [second]:
                wait_for(lambda: completed(store, cid), timeout_s=60, what="the contact to end")
                calls = box.calls()
        assert "callee already in room" in second.log
        assert len(calls) == 1
        assert_dial_invariants(calls, store, cid)
    finally:
        store.redis.close()
        server.stop()
