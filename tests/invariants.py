"""The acceptance properties of issue #13, read from the sandbox's INVITE log and the ledger.

``assert_dial_invariants`` is the one check every pipeline and fault test runs:

(a) no INVITE starts after its attempt has ended in the ledger;
(b) within a room (one attempt), every INVITE before the last failed with a SIP 5xx or a
    capacity refusal;
(c) no number is called again after one of its INVITEs was answered (unless the test says a
    new attempt was due by policy);
(d) no two INVITEs to one number overlap in time;
(e) the numbers with an answered INVITE are the contacts (any of their numbers) whose outcome is
    answered, voicemail or opted_out (opted_out without a call: the DNC gate stopped the dial);
(f) at every instant the live calls stay within each campaign's ``max_concurrent_calls`` and the
    trunk's cap, and every window of the calls-per-second limits (1 s for whole rates) holds no
    more INVITEs than the campaign's and the trunk's rates allow;
(g) every contact is final (the test's wait for the campaign to end is the deadline).

Times in the sandbox's log and in the ledger come from different processes on one host;
``jitter_s`` absorbs the milliseconds between them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dialer.models import contact_numbers
from dialer.store import RateLimit, Store

#: Sandbox outcomes that are a final SIP 5xx from the carrier or a capacity refusal: the only
#: INVITEs another INVITE may follow within one attempt (DESIGN.md I1, section 5).
RETRYABLE_FAILURES = frozenset({"carrier_error", "server_error", "bad_gateway", "gateway_timeout",
                                "capacity", "channel_limit"})
#: Contact outcomes that mean someone (or a machine) picked up.
ANSWERED_OUTCOMES = frozenset({"answered", "voicemail", "opted_out"})
#: The reason the dialer gives an attempt the DNC gate stopped before its INVITE (dialing.py).
DNC_STOP_REASON = "on the do-not-call list"
#: Timestamp jitter between the sandbox, the workers and Redis on one host.
JITTER_S = 0.02

_ROOM = re.compile(r"^dial-(?P<cid>[^-]+)-(?P<contact>\d+)-(?P<seq>\d+)$")


@dataclass(frozen=True)
class Invite:
    """One INVITE of the sandbox's log, with the attempt its room names."""

    number: str
    room: str
    trunk: str
    outcome: str
    started_at: float
    ended_at: float  #: +inf while the call is still live
    answered_at: float | None
    sip_status_code: int | None
    cid: str | None
    member: str | None  #: "contact:seq"

    @classmethod
    def of(cls, call: dict[str, Any]) -> Invite:
        match = _ROOM.match(call["room"])
        ended = call.get("ended_at")
        return cls(
            number=call["number"], room=call["room"], trunk=call.get("trunk_id", ""), outcome=call["outcome"],
            started_at=float(call["started_at"]), ended_at=float("inf") if ended is None else float(ended),
            answered_at=call.get("answered_at"), sip_status_code=call.get("sip_status_code"),
            cid=match["cid"] if match else None,
            member=f"{match['contact']}:{match['seq']}" if match else None,
        )


def assert_dial_invariants(
    calls: Sequence[dict[str, Any]],
    store: Store,
    cids: str | Sequence[str],
    *,
    trunk_calls_per_second: float = 0.0,
    trunk_max_concurrent_calls: int = 0,
    redial_after_answer: Collection[str] = (),
    all_final: bool = True,
    jitter_s: float = JITTER_S,
) -> None:
    """Fail with every violated property at once.

    ``calls`` is the sandbox's INVITE log (``Sandbox.calls()``); ``cids`` the campaigns it dialed
    (their own limits are read from the ledger); the trunk limits are the workers'
    ``DIALER_TRUNK_*`` settings (0 = none). ``redial_after_answer`` lists numbers a new attempt
    was due for by policy after an answer. ``all_final=False`` is for a test that leaves its
    campaign paused or its contacts waiting on purpose.
    """
    campaigns = [cids] if isinstance(cids, str) else list(cids)
    invites = sorted((Invite.of(call) for call in calls), key=lambda i: i.started_at)
    problems = [
        *_no_invite_after_its_attempt_ended(invites, store, campaigns, jitter_s),
        *_only_retryable_failures_before_the_last_invite_of_a_room(invites),
        *_no_call_after_an_answer(invites, redial_after_answer, jitter_s),
        *_no_overlapping_calls_to_one_number(invites, jitter_s),
        *_answered_invites_match_answered_outcomes(invites, store, campaigns),
        *_limits_hold(invites, store, campaigns, trunk_calls_per_second, trunk_max_concurrent_calls, jitter_s),
        *(_every_contact_final(store, campaigns) if all_final else []),
    ]
    assert not problems, f"{len(problems)} dial invariant(s) violated:\n" + "\n".join(problems[:40])


# -- the properties, each a list of what violates it ------------------------------------------


def _no_invite_after_its_attempt_ended(invites: Iterable[Invite], store: Store, campaigns: list[str],
                                       jitter_s: float) -> list[str]:
    """(a)"""
    problems = []
    for invite in invites:
        if invite.cid not in campaigns or invite.member is None:
            continue
        attempt = store.attempt(invite.cid, invite.member)
        if attempt is None:
            problems.append(f"(a) INVITE into {invite.room} has no attempt in the ledger")
        elif attempt.get("ended_at") is not None and invite.started_at > float(attempt["ended_at"]) + jitter_s:
            problems.append(f"(a) INVITE into {invite.room} at {invite.started_at:.3f} after its attempt "
                            f"ended at {float(attempt['ended_at']):.3f}")
    return problems


def _only_retryable_failures_before_the_last_invite_of_a_room(invites: Iterable[Invite]) -> list[str]:
    """(b)"""
    by_room: dict[str, list[Invite]] = defaultdict(list)
    for invite in invites:
        by_room[invite.room].append(invite)
    problems = []
    for room, in_room in by_room.items():
        for earlier in in_room[:-1]:
            if not (earlier.outcome in RETRYABLE_FAILURES and earlier.sip_status_code is not None
                    and earlier.answered_at is None):
                problems.append(f"(b) room {room}: another INVITE followed one that ended "
                                f"{earlier.outcome!r} (SIP {earlier.sip_status_code})")
    return problems


def _no_call_after_an_answer(invites: Iterable[Invite], allowed: Collection[str], jitter_s: float) -> list[str]:
    """(c)"""
    answered_at: dict[str, float] = {}
    problems = []
    for invite in invites:
        first = answered_at.get(invite.number)
        if first is not None and invite.started_at > first + jitter_s and invite.number not in allowed:
            problems.append(f"(c) {invite.number} called again at {invite.started_at:.3f} ({invite.room}) "
                            f"after an answer at {first:.3f}")
        if invite.answered_at is not None and first is None:
            answered_at[invite.number] = float(invite.answered_at)
    return problems


def _no_overlapping_calls_to_one_number(invites: Iterable[Invite], jitter_s: float) -> list[str]:
    """(d)"""
    busy_until: dict[str, tuple[float, str]] = {}
    problems = []
    for invite in invites:
        previous = busy_until.get(invite.number)
        if previous is not None and invite.started_at < previous[0] - jitter_s:
            problems.append(f"(d) {invite.number}: INVITE into {invite.room} at {invite.started_at:.3f} while "
                            f"the call in {previous[1]} was live until {previous[0]:.3f}")
        if previous is None or invite.ended_at > previous[0]:
            busy_until[invite.number] = (invite.ended_at, invite.room)
    return problems


def _answered_invites_match_answered_outcomes(invites: Iterable[Invite], store: Store,
                                              campaigns: list[str]) -> list[str]:
    """(e)"""
    answered = {invite.number for invite in invites if invite.answered_at is not None and invite.cid in campaigns}
    problems = []
    for cid in campaigns:
        # A contact with several numbers picked up when any of them was answered.
        for number, (outcome, numbers, last_reason) in _outcomes(store, cid).items():
            picked_up = outcome in ANSWERED_OUTCOMES
            # opted_out without a call: the dial-time gate found the number on the DNC list.
            listed = outcome == "opted_out" and last_reason == DNC_STOP_REASON
            if picked_up and not listed and not answered & numbers:
                problems.append(f"(e) {number} has outcome {outcome} but none of its INVITEs was answered")
            if not picked_up and answered & numbers:
                problems.append(f"(e) {number} was answered but its outcome is {outcome}")
    return problems


def _limits_hold(invites: Sequence[Invite], store: Store, campaigns: list[str], trunk_cps: float,
                 trunk_max: int, jitter_s: float) -> list[str]:
    """(f)"""
    problems = []
    for cid in campaigns:
        config = store.get_campaign(cid).config
        mine = [invite for invite in invites if invite.cid == cid]
        problems += _concurrency(mine, config.max_concurrent_calls, f"campaign {cid}", jitter_s)
        problems += _rate(mine, RateLimit.per_second(cid, config.calls_per_second), f"campaign {cid}", jitter_s)
    by_trunk: dict[str, list[Invite]] = defaultdict(list)
    for invite in invites:
        by_trunk[invite.trunk].append(invite)
    for trunk, on_trunk in by_trunk.items():
        if trunk_max > 0:
            problems += _concurrency(on_trunk, trunk_max, f"trunk {trunk}", jitter_s)
        problems += _rate(on_trunk, RateLimit.per_second(trunk, trunk_cps), f"trunk {trunk}", jitter_s)
    return problems


def _concurrency(invites: Sequence[Invite], limit: int, scope: str, jitter_s: float) -> list[str]:
    # A call that ends within the jitter of another's start is counted as gone first.
    events = sorted([(i.started_at, 1) for i in invites] + [(i.ended_at - jitter_s, -1) for i in invites])
    live = 0
    for at, delta in events:
        live += delta
        if live > limit:
            return [f"(f) {scope}: {live} calls live at {at:.3f}, limit {limit}"]
    return []


def _rate(invites: Sequence[Invite], limit: RateLimit, scope: str, jitter_s: float) -> list[str]:
    if limit.events <= 0:
        return []
    starts = sorted(invite.started_at for invite in invites)
    for first, last in zip(starts, starts[limit.events:], strict=False):
        if last - first < limit.window_s - jitter_s:
            return [f"(f) {scope}: {limit.events + 1} INVITEs within {last - first:.3f} s from {first:.3f}, "
                    f"limit {limit.events} per {limit.window_s:g} s"]
    return []


def _every_contact_final(store: Store, campaigns: list[str]) -> list[str]:
    """(g)"""
    problems = []
    for cid in campaigns:
        statuses = dict(store.iter_statuses(cid))
        for contact_id in store.contact_ids(cid):
            state = (statuses.get(contact_id) or {}).get("state", "never dialed")
            if state != "final":
                problems.append(f"(g) campaign {cid} contact {contact_id} is {state}, not final")
    return problems


def _outcomes(store: Store, cid: str) -> dict[str, tuple[str, set[str], str]]:
    """First E.164 -> (outcome, or state when not final; every number of the contact; the last
    attempt's reason) of every contact with a status."""
    statuses = dict(store.iter_statuses(cid))
    ids = sorted(statuses)
    return {contact["phone_e164"]: (statuses[i].get("outcome", statuses[i]["state"]),
                                    {e164 for e164, _ in contact_numbers(contact)},
                                    statuses[i].get("last_reason") or "")
            for i, contact in zip(ids, store.contacts(cid, ids), strict=True) if contact}
