"""The attempt ledger's atomic transitions, on a real Redis."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dialer.config import parse_config
from dialer.errors import StateError
from dialer.ingest import ingest_file
from dialer.models import AttemptState, CampaignState, Outcome
from dialer.store import Store

NOW = 1_800_000_000.0


def make_campaign(store: Store, tmp_path: Path, count: int = 3, **config: object) -> str:
    path = tmp_path / f"c{len(list(tmp_path.iterdir()))}.csv"
    path.write_text("phone\n" + "".join(f"202-555-{100 + i:04d}\n" for i in range(count)))
    summary = ingest_file(store, path, parse_config({"name": "t", **config}), max_bytes=2**20)
    store.set_trunk(summary.campaign_id, "ST_test")
    store.set_state(summary.campaign_id, [CampaignState.DRAFT], CampaignState.RUNNING)
    return summary.campaign_id


def queue(store: Store, cid: str, ids: list[int], max_concurrent: int = 10, trunk_max: int = 0) -> list[str]:
    return store.queue_attempts(cid, "ST_test", ids, now=NOW, lease_s=60, max_concurrent=max_concurrent,
                                trunk_max_concurrent=trunk_max)


def finalise(store: Store, cid: str, member: str, **kwargs: object) -> str:
    args: dict[str, object] = {"now": NOW, "verdict": "final", "outcome": Outcome.ANSWERED, "counts": True,
                               "max_attempts": 3}
    args.update(kwargs)
    expected = args.pop("expected", [AttemptState.DIALING, AttemptState.IN_CALL])
    return store.finalise(cid, member, expected, **args)  # type: ignore[arg-type]


def claim(store: Store, cid: str, member: str, token: str = "task-1") -> str:
    return store.transition(cid, member, [AttemptState.QUEUED], AttemptState.DIALING, 60, claim=token)


def test_pacing_respects_the_concurrency_limit(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path, count=5)
    assert queue(store, cid, [2, 3, 4, 5, 6], max_concurrent=2) == ["2:1", "3:1"]
    assert queue(store, cid, [4, 5, 6], max_concurrent=2) == []
    assert store.in_flight(cid) == 2


def test_trunk_limit_applies_across_campaigns(store: Store, tmp_path: Path) -> None:
    first = make_campaign(store, tmp_path)
    second = make_campaign(store, tmp_path)
    assert queue(store, first, [2, 3], trunk_max=3) == ["2:1", "3:1"]
    assert queue(store, second, [2, 3], trunk_max=3) == ["2:1"]


def test_a_paused_campaign_queues_nothing(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path)
    store.set_state(cid, [CampaignState.RUNNING], CampaignState.PAUSED)
    assert queue(store, cid, [2]) == []


def test_a_contact_is_queued_once_even_when_paced_concurrently(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path, count=50)
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(queue(store, cid, list(range(2, 52)), 100)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    members = [m for batch in results for m in batch]
    assert sorted(members) == sorted(f"{i}:1" for i in range(2, 52))


def test_claim_is_compare_and_set(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path)
    [member] = queue(store, cid, [2])
    assert claim(store, cid, member, token="task-1") == "ok"
    assert claim(store, cid, member, token="task-2") == "dialing"  # a duplicate delivery is refused


def test_a_claim_rerun_by_the_client_after_a_lost_reply_still_holds(store: Store, tmp_path: Path) -> None:
    """redis-py re-sends a script after a timeout: the task must not think it lost its claim."""
    cid = make_campaign(store, tmp_path)
    [member] = queue(store, cid, [2])
    assert claim(store, cid, member, token="task-1") == "ok"
    assert claim(store, cid, member, token="task-1") == "ok"
    assert (store.attempt(cid, member) or {})["claim"] == "task-1"


def test_finalise_happens_exactly_once(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path)
    [member] = queue(store, cid, [2])
    claim(store, cid, member)
    assert finalise(store, cid, member) == "final:answered"
    assert finalise(store, cid, member, outcome=Outcome.FAILED) == "done"
    assert store.progress(cid)["final"] == 1
    assert store.progress(cid)["outcome:answered"] == 1
    assert store.in_flight(cid) == 0
    assert store.expired_leases(NOW + 1000) == []


def test_retry_reschedules_until_attempts_run_out(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path, max_attempts=2)
    [first] = queue(store, cid, [2])
    claim(store, cid, first)
    assert finalise(store, cid, first, verdict="retry", outcome=Outcome.BUSY, due_at=NOW + 900,
                    max_attempts=2) == "pending"
    assert store.due_contacts(cid, NOW + 899, 10) == [3, 4]
    assert 2 in store.due_contacts(cid, NOW + 900, 10)
    store.redis.zadd("dialer:campaign:" + cid + ":due", {"2": NOW})
    [second] = queue(store, cid, [2])
    assert second == "2:2"
    claim(store, cid, second)
    assert finalise(store, cid, second, verdict="retry", outcome=Outcome.BUSY, due_at=NOW + 900,
                    max_attempts=2) == "final:busy"
    assert (store.contact_status(cid, 2) or {})["attempts"] == 2


def test_requeue_does_not_use_up_an_attempt(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path, max_attempts=1)
    [member] = queue(store, cid, [2])
    claim(store, cid, member)
    assert finalise(store, cid, member, verdict="requeue", outcome=Outcome.FAILED, counts=False,
                    due_at=NOW) == "pending"
    assert (store.contact_status(cid, 2) or {})["attempts"] == 0


def test_pause_verdict_pauses_the_campaign_with_its_reason(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path)
    [member] = queue(store, cid, [2])
    claim(store, cid, member)
    assert finalise(store, cid, member, verdict="pause", outcome=Outcome.FAILED, counts=False,
                    due_at=NOW, pause_reason="SIP 403 Forbidden") == "pending"
    record = store.get_campaign(cid)
    assert (record.state, record.pause_reason) == (CampaignState.PAUSED, "SIP 403 Forbidden")
    assert store.running_campaigns() == []


def test_last_final_outcome_completes_the_campaign(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path, count=2)
    members = queue(store, cid, [2, 3])
    for member in members:
        claim(store, cid, member)
        finalise(store, cid, member)
    assert store.get_campaign(cid).state is CampaignState.COMPLETED


def test_cancel_finalises_waiting_contacts_and_in_flight_ones_when_they_end(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path, count=3)
    [member] = queue(store, cid, [2])
    claim(store, cid, member)
    store.set_state(cid, [CampaignState.RUNNING], CampaignState.CANCELLED)
    assert store.cancel_waiting(cid, NOW) == 2
    assert finalise(store, cid, member, verdict="retry", outcome=Outcome.BUSY, due_at=NOW) == "final:cancelled"
    assert store.progress(cid)["outcome:cancelled"] == 3


def test_state_changes_are_checked(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path)
    with pytest.raises(StateError, match="is running; cannot make it running"):
        store.set_state(cid, [CampaignState.DRAFT, CampaignState.PAUSED], CampaignState.RUNNING)


def test_expired_leases_are_read_in_the_redis_servers_clock(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path)
    [member] = queue(store, cid, [2])  # a 60 s lease from the server's now, whatever NOW says
    server_now = store.server_time()
    assert store.expired_leases() == []
    assert store.expired_leases(server_now + 59) == []
    assert store.expired_leases(server_now + 61) == [(cid, member)]


def test_contacts_are_due_in_file_order(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path, count=12)
    assert store.due_contacts(cid, NOW, 20) == list(range(2, 14))


def test_a_running_campaign_is_snapshotted_and_an_ended_one_read_in_place(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path, count=1)
    [member] = queue(store, cid, [2])
    claim(store, cid, member)
    with store.snapshot(cid) as running:
        finalise(store, cid, member)  # a change after the snapshot was taken
        assert running.statuses([2])[0]["state"] == "in_flight"
        assert running.keys["status"] != "dialer:campaign:" + cid + ":status"
    assert store.redis.keys("dialer:snapshot:*") == []
    assert store.get_campaign(cid).state is CampaignState.COMPLETED
    with store.snapshot(cid) as ended:
        assert ended.keys["status"] == "dialer:campaign:" + cid + ":status"
        assert ended.statuses([2])[0]["outcome"] == "answered"


def test_the_reconciler_removes_an_ingest_that_died_part_way(store: Store) -> None:
    from dialer.reconcile import reconcile
    from dialer.settings import Settings
    from dialer.store import INGEST_STALE_S, Keys

    config = parse_config({"name": "killed"})
    store.begin_campaign("deadbeef0001", config, columns=["phone"], phone_column="phone", source="x.csv")
    store.store_contacts("deadbeef0001", [(2, "+12025550100", '{"id": 2}')])
    store.begin_campaign("alive0000001", config, columns=["phone"], phone_column="phone", source="y.csv")
    store.redis.zadd(Keys.ingesting, {"deadbeef0001": time.time() - INGEST_STALE_S - 1})
    # No lease has expired, so the reconciler needs nothing from LiveKit.
    assert reconcile(store, None, Settings(), token="t") == 0  # type: ignore[arg-type]
    assert store.redis.keys("dialer:campaign:deadbeef0001*") == []
    assert store.redis.exists(Keys.campaign("alive0000001"))


def next_attempt(store: Store, cid: str, contact: int) -> str:
    """Make ``contact`` due now and queue and claim its next attempt."""
    store.redis.zadd(f"dialer:campaign:{cid}:due", {str(contact): NOW}, xx=True)
    [member] = queue(store, cid, [contact])
    claim(store, cid, member)
    return member


def test_a_number_that_ends_for_good_moves_the_contact_to_its_next_one_due_at_once(
    store: Store, tmp_path: Path
) -> None:
    cid = make_campaign(store, tmp_path, max_attempts=2)
    member = next_attempt(store, cid, 2)
    assert finalise(store, cid, member, outcome=Outcome.INVALID_NUMBER, numbers=2, max_attempts=2) == "pending"
    assert 2 in store.due_contacts(cid, NOW, 10)  # due at once, through the due set
    status = store.contact_status(cid, 2) or {}
    assert (status["number_index"], status["number_outcomes"]) == (1, ["invalid_number"])
    # A fresh count on the second number: two busy attempts there before the contact is final.
    member = next_attempt(store, cid, 2)
    assert finalise(store, cid, member, verdict="retry", outcome=Outcome.BUSY, due_at=NOW, numbers=2,
                    max_attempts=2) == "pending"
    member = next_attempt(store, cid, 2)
    assert finalise(store, cid, member, verdict="retry", outcome=Outcome.BUSY, due_at=NOW, numbers=2,
                    max_attempts=2) == "final:busy"  # the best of invalid_number and busy
    assert (store.contact_status(cid, 2) or {})["attempts"] == 3


def test_the_last_number_ending_worse_keeps_the_best_outcome_across_numbers(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path)
    member = next_attempt(store, cid, 2)
    assert finalise(store, cid, member, outcome=Outcome.DECLINED, numbers=2) == "pending"
    member = next_attempt(store, cid, 2)
    assert finalise(store, cid, member, outcome=Outcome.INVALID_NUMBER, numbers=2) == "final:declined"
    assert store.progress(cid)["outcome:declined"] == 1


def test_an_answer_or_a_single_number_never_moves_on(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path)
    member = next_attempt(store, cid, 2)
    assert finalise(store, cid, member, outcome=Outcome.VOICEMAIL, numbers=2) == "final:voicemail"
    member = next_attempt(store, cid, 3)
    assert finalise(store, cid, member, outcome=Outcome.INVALID_NUMBER) == "final:invalid_number"


def test_a_cancelled_campaign_does_not_move_to_the_next_number(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path, count=1)
    member = next_attempt(store, cid, 2)
    store.set_state(cid, [CampaignState.RUNNING], CampaignState.CANCELLED)
    assert finalise(store, cid, member, outcome=Outcome.INVALID_NUMBER, numbers=2) == "final:invalid_number"
    assert store.due_count(cid) == 0
