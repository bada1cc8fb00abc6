"""The acceptance-property helper itself: it passes what the dialer may do and names what it may not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from invariants import assert_dial_invariants
from pipeline import create_campaign

from dialer.store import Store

A, B = "+12025550100", "+12025550101"


def invite(number: str, room: str, start: float, end: float, outcome: str = "answer", sip: int | None = None,
           trunk: str = "ST_test") -> dict[str, Any]:
    """One INVITE as the sandbox logs it; rooms of another campaign keep the ledger out of it."""
    answered = outcome == "answer"
    return {"number": number, "room": room, "trunk_id": trunk, "outcome": outcome, "started_at": start,
            "ended_at": end, "answered_at": start + 0.1 if answered else None, "sip_status_code": sip}


@pytest.fixture
def cid(store: Store, tmp_path: Path) -> str:
    return create_campaign(store, tmp_path, ["202-555-0100"])


def violations(calls: list[dict[str, Any]], store: Store, cid: str, **limits: Any) -> str:
    try:
        assert_dial_invariants(calls, store, cid, **{"all_final": False, **limits})
    except AssertionError as exc:
        return str(exc)
    return ""


def test_a_retry_into_a_room_after_a_carrier_503_passes(store: Store, cid: str) -> None:
    calls = [invite(A, "dial-other-1-1", 0.0, 0.1, "carrier_error", sip=503), invite(A, "dial-other-1-1", 0.5, 2.0)]
    assert violations(calls, store, cid) == ""


def test_a_second_invite_into_a_room_after_a_busy_is_reported(store: Store, cid: str) -> None:
    calls = [invite(A, "dial-other-1-1", 0.0, 0.1, "busy", sip=486), invite(A, "dial-other-1-1", 0.5, 2.0)]
    assert "(b)" in violations(calls, store, cid)


def test_a_call_after_an_answer_is_reported_unless_policy_allowed_it(store: Store, cid: str) -> None:
    calls = [invite(A, "dial-other-1-1", 0.0, 1.0), invite(A, "dial-other-1-2", 5.0, 6.0)]
    assert "(c)" in violations(calls, store, cid)
    assert violations(calls, store, cid, redial_after_answer={A}) == ""


def test_overlapping_calls_to_one_number_are_reported(store: Store, cid: str) -> None:
    calls = [invite(A, "dial-other-1-1", 0.0, 3.0, "no_answer"), invite(A, "dial-other-1-2", 1.0, 2.0, "no_answer")]
    assert "(d)" in violations(calls, store, cid)


def test_more_invites_in_one_second_than_the_trunk_allows_are_reported(store: Store, cid: str) -> None:
    calls = [invite(A, "dial-other-1-1", 0.0, 0.2), invite(B, "dial-other-2-1", 0.5, 0.7),
             invite("+12025550102", "dial-other-3-1", 0.9, 1.0)]
    assert "(f) trunk ST_test" in violations(calls, store, cid, trunk_calls_per_second=2)
    assert violations(calls, store, cid, trunk_calls_per_second=3) == ""


def test_more_live_calls_than_the_trunk_cap_are_reported(store: Store, cid: str) -> None:
    calls = [invite(A, "dial-other-1-1", 0.0, 2.0), invite(B, "dial-other-2-1", 1.0, 3.0)]
    assert "(f) trunk ST_test: 2 calls live" in violations(calls, store, cid, trunk_max_concurrent_calls=1)


def test_a_contact_never_dialed_is_not_final(store: Store, cid: str) -> None:
    assert "(g)" in violations([], store, cid, all_final=True)
