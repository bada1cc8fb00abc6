"""The dial path under delay, not only under crashes (invariants I1 and I3).

Each test drives one real ``Dialer`` against a real Redis (the project's own Lua scripts) and
the sandbox as a real LiveKit API server, and slows the task down deterministically through
the Dialer's ``sleep`` hook instead of sleeping in the test. Where a fault cannot be made on
the wire (a reply lost after LiveKit did the work, a process killed mid-cleanup), a subclass of
the real gateway injects exactly that fault and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from livekit import api
from pipeline import API_KEY, API_SECRET, TRUNK, Sandbox, create_campaign, sandbox, settings_for

from dialer import control
from dialer.dialing import Dialer, dial_lease_s, room_name
from dialer.errors import StateError
from dialer.livekit import LiveKitGateway
from dialer.models import AttemptState, CampaignState
from dialer.pacer import pace
from dialer.reconcile import reconcile, reconcile_attempt
from dialer.settings import Settings
from dialer.store import Keys, RateLimit, Store

A, B = "+12025550180", "+12025550181"
SLOW = "+12025550182"  #: rings 3 s before answering
SCENARIO = {"ring_s": 0.05, "talk_s": 0.2, "default": ["answer"],
            "numbers": {SLOW: {"outcomes": ["answer"], "ring_s": 3.0},
                        "+12025550183": ["decline"]}}


@pytest.fixture
def box(redis_url: str, tmp_path: Path) -> Iterator[Sandbox]:
    with sandbox(redis_url, tmp_path, SCENARIO) as server:
        yield server


@pytest.fixture
def gateways() -> Iterator[list[LiveKitGateway]]:
    made: list[LiveKitGateway] = []
    yield made
    for gateway in made:
        gateway.close()


def settings(redis_url: str, box: Sandbox, **overrides: Any) -> Settings:
    base = settings_for(redis_url, box).model_dump()
    return Settings(**{**base, "dialer_lease_margin_s": 3.0, "dialer_no_call_settle_s": 0.0, **overrides})


def dialer(store: Store, config: Settings, gateways: list[LiveKitGateway], gateway_class: type = LiveKitGateway,
           sleep: Callable[[float], None] | None = None) -> Dialer:
    gateway = gateway_class(config.livekit_url, API_KEY, API_SECRET)
    gateways.append(gateway)
    return Dialer(store, gateway, config, sleep=sleep)


def start(store: Store, config: Settings, tmp_path: Path, numbers: list[str], **campaign: Any) -> str:
    cid = create_campaign(store, tmp_path, [n[2:] for n in numbers], **campaign)
    control.start(store, config, cid)
    return cid


def queue(store: Store, cid: str, contact_ids: list[int]) -> list[tuple[int, int]]:
    """Queue attempts as the pacer does; (contact id, seq) each."""
    members = store.queue_attempts(cid, TRUNK, contact_ids, now=time.time() + 3600, lease_s=60,
                                   max_concurrent=100, trunk_max_concurrent=0)
    return [(int(m.split(":")[0]), int(m.split(":")[1])) for m in members]


def queued_attempt(store: Store, config: Settings, tmp_path: Path, number: str = A,
                   **campaign: Any) -> tuple[str, int, int]:
    """A campaign of one contact, started, with its attempt queued: (campaign id, contact id, seq)."""
    cid = start(store, config, tmp_path, [number], **campaign)
    [(contact, seq)] = queue(store, cid, [2])
    return cid, contact, seq


def ringing_attempt(store: Store, config: Settings, tmp_path: Path) -> tuple[str, int, int]:
    """A queued attempt to a callee who rings 3 s: (campaign id, contact id, seq)."""
    return queued_attempt(store, config, tmp_path, SLOW, ring_timeout_s=5)


def invites_to(box: Sandbox, number: str) -> list[dict[str, Any]]:
    return [call for call in box.calls() if call["number"] == number]


def set_faults(box: Sandbox, **faults: Any) -> None:
    request = urllib.request.Request(f"{box.url}/sandbox/faults", data=json.dumps(faults).encode(), method="PUT",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()


def place_callee(box: Sandbox, room: str, identity: str, number: str) -> None:
    """Have LiveKit place the callee into ``room`` (as a request it got but answered too late)."""

    async def _place() -> None:
        async with api.LiveKitAPI(box.url, API_KEY, API_SECRET) as client:
            request = api.CreateSIPParticipantRequest(sip_trunk_id=TRUNK, sip_call_to=number, room_name=room,
                                                      participant_identity=identity)
            await client.sip.create_sip_participant(request)

    asyncio.run(_place())


# -- the step right before each INVITE, on its own (real Lua, real Redis) ----------------------


def claimed_attempts(store: Store, tmp_path: Path, count: int = 1, claim: str = "t") -> tuple[str, list[str]]:
    """A running campaign with ``count`` attempts claimed by ``claim``: (campaign id, members)."""
    cid = create_campaign(store, tmp_path, [f"202-555-{n:04d}" for n in range(180, 180 + count)])
    store.set_state(cid, [CampaignState.DRAFT], CampaignState.RUNNING, fields={"trunk": TRUNK})
    members = [f"{contact}:{seq}" for contact, seq in queue(store, cid, list(range(2, 2 + count)))]
    for member in members:
        assert store.transition(cid, member, [AttemptState.QUEUED], AttemptState.DIALING, 30, claim=claim) == "ok"
    return cid, members


def test_a_task_whose_attempt_was_taken_is_refused_and_the_ledger_says_so(store: Store, tmp_path: Path) -> None:
    cid, [member] = claimed_attempts(store, tmp_path, claim="first")
    admission = store.admit(cid, member, claim="second", lease_s=30, number=A, mode="invite")
    assert (admission.verdict, admission.detail) == ("lost", "dialing")
    assert (store.attempt(cid, member) or {})["late_tasks_refused"] == 1


def test_campaign_and_trunk_slots_are_taken_together_or_not_at_all(store: Store, tmp_path: Path) -> None:
    cid, [member] = claimed_attempts(store, tmp_path)
    campaign, trunk = RateLimit.per_second(f"campaign:{cid}", 5), RateLimit.per_second(f"trunk:{TRUNK}", 1)
    store.redis.zadd(Keys.rate(trunk.scope), {"someone-else": store.server_time()})  # the trunk's slot is used
    admission = store.admit(cid, member, claim="t", lease_s=30, number=A, mode="invite", limits=[campaign, trunk],
                            nonce="n1")
    assert admission.verdict == "wait"
    assert 0 < admission.wait_s <= 1.0
    # One slot is reserved in both scopes at the same moment, the first the trunk allows.
    [(_, at_campaign)] = store.redis.zrange(Keys.rate(campaign.scope), 0, -1, withscores=True)
    assert store.redis.zscore(Keys.rate(trunk.scope), "n1") == at_campaign


def test_invites_are_spaced_evenly_not_admitted_in_a_burst(store: Store, tmp_path: Path) -> None:
    cid, members = claimed_attempts(store, tmp_path, count=5)
    limit = RateLimit.per_second(f"campaign:{cid}", 5)
    waits = [store.admit(cid, member, claim="t", lease_s=30, number=A, mode="invite", limits=[limit],
                         nonce=f"n-{member}").wait_s for member in members]
    # Five at once at 5/s: one now, then one every 0.2 s, each with its slot reserved.
    assert waits == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8], abs=0.02)


def test_a_waiter_woken_late_takes_a_new_slot_instead_of_going_out_bunched(store: Store, tmp_path: Path) -> None:
    cid, members = claimed_attempts(store, tmp_path, count=3)
    limit = RateLimit.per_second(f"campaign:{cid}", 5)

    def admit(member: str) -> float:
        return store.admit(cid, member, claim="t", lease_s=30, number=A, mode="invite", limits=[limit],
                           nonce=f"n-{member}").wait_s

    first, late, on_time = members
    assert [admit(first), admit(late), admit(on_time)] == pytest.approx([0.0, 0.2, 0.4], abs=0.02)
    time.sleep(0.45)  # the clock the slots live in is Redis's: let it pass the third slot
    assert admit(on_time) == 0.0
    assert admit(late) == pytest.approx(0.15, abs=0.05)  # its 0.2 s slot is spent: the next is at 0.6 s


def test_an_invite_step_rerun_after_a_lost_reply_counts_once(store: Store, tmp_path: Path) -> None:
    cid, [member] = claimed_attempts(store, tmp_path)
    limit = RateLimit.per_second(f"campaign:{cid}", 1)
    for _ in range(2):
        assert store.admit(cid, member, claim="t", lease_s=30, number=A, mode="invite", limits=[limit],
                           nonce="same").ok
    assert (store.attempt(cid, member) or {})["invites"] == 1
    assert store.redis.zcard(Keys.rate(limit.scope)) == 1


def test_a_second_start_of_a_running_campaign_does_not_move_it_to_another_trunk(
    store: Store, tmp_path: Path, redis_url: str
) -> None:
    cid = create_campaign(store, tmp_path, ["202-555-0180"])
    first = Settings(redis_url=redis_url, livekit_url="http://127.0.0.1:1", livekit_api_key="k",
                     livekit_api_secret="s", sip_outbound_trunk_id="ST_first")
    control.start(store, first, cid)
    with pytest.raises(StateError):
        control.start(store, first.model_copy(update={"sip_outbound_trunk_id": "ST_second"}), cid)
    assert store.trunk_of(cid) == "ST_first"


# -- the pacer's budgets -----------------------------------------------------------------------


def test_a_fractional_rate_releases_one_attempt_per_period_of_the_rate(store: Store, tmp_path: Path,
                                                                       redis_url: str) -> None:
    config = Settings(redis_url=redis_url, livekit_url="http://127.0.0.1:1", livekit_api_key="k",
                      livekit_api_secret="s", sip_outbound_trunk_id=TRUNK)
    start(store, config, tmp_path, [f"+1202555{n:04d}" for n in range(100, 105)], calls_per_second=0.5)
    queued: list[float] = []

    def run() -> int:
        return pace(store, config, lambda _cid, attempts: queued.extend([time.monotonic()] * len(attempts)),
                    token="t") or 0

    assert run() == 1
    assert run() == 0  # the old pacer queued max(1, ceil(0.5)) = 1 every run
    wait_for(lambda: run() == 1, timeout_s=5, interval_s=0.1, what="the next token")
    assert queued[1] - queued[0] >= 1.9


def test_campaigns_on_one_trunk_share_the_trunks_rate(store: Store, tmp_path: Path, redis_url: str) -> None:
    config = Settings(redis_url=redis_url, livekit_url="http://127.0.0.1:1", livekit_api_key="k",
                      livekit_api_secret="s", sip_outbound_trunk_id=TRUNK, dialer_trunk_calls_per_second=2)
    numbers = [f"+1202555{n:04d}" for n in range(100, 120)]
    first = start(store, config, tmp_path, numbers, calls_per_second=20)
    second = start(store, config, tmp_path, numbers, calls_per_second=20)
    queued: list[str] = []
    pace(store, config, lambda cid, attempts: queued.extend([cid] * len(attempts)), token="t")
    assert sorted(queued) == sorted([first, second])  # 2 per second on the trunk, one each


# -- a slow task never dials an attempt it no longer holds -------------------------------------


def test_a_task_slowed_past_its_lease_never_dials(store: Store, box: Sandbox, tmp_path: Path, redis_url: str,
                                                  gateways: list[LiveKitGateway]) -> None:
    config = settings(redis_url, box, dialer_trunk_calls_per_second=1)
    cid = start(store, config, tmp_path, [A, B])
    plain = dialer(store, config, gateways)
    [(a, a_seq), (b, b_seq)] = queue(store, cid, [2, 3])
    assert plain.dial(cid, a, a_seq) == "answered"  # A takes the trunk's one slot of this second

    def stall(seconds: float) -> None:
        # B's task stalls while it waits for its slot; meanwhile its lease runs out and the
        # reconciler ends the attempt, and the pacer queues the contact again.
        if store.attempt(cid, f"{b}:{b_seq}")["state"] == AttemptState.DIALING:  # type: ignore[index]
            for _ in range(2):
                reconcile_attempt(store, plain.gateway, config, cid, f"{b}:{b_seq}")
        time.sleep(seconds)

    late = dialer(store, config, gateways, sleep=stall)
    assert late.dial(cid, b, b_seq) == "lost_claim:done"
    assert invites_to(box, B) == []
    assert store.attempt(cid, f"{b}:{b_seq}")["late_tasks_refused"] >= 1  # type: ignore[index]
    [(_, again)] = queue(store, cid, [b])
    assert plain.dial(cid, b, again) == "answered"
    assert [call["room"] for call in invites_to(box, B)] == [room_name(cid, b, again)]


def test_the_lease_is_renewed_while_a_task_waits_for_a_rate_slot(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    config = settings(redis_url, box, dialer_lease_margin_s=0.5)
    cid = start(store, config, tmp_path, [A, B], calls_per_second=0.4, ring_timeout_s=1)
    plain = dialer(store, config, gateways)
    [(a, a_seq), (b, b_seq)] = queue(store, cid, [2, 3])
    plain.dial(cid, a, a_seq)
    seen: list[float] = []

    def watch(seconds: float) -> None:
        seen.append(store.attempt(cid, f"{b}:{b_seq}")["lease_until"] - store.server_time())  # type: ignore[index]
        assert store.expired_leases() == []
        time.sleep(seconds)

    assert dialer(store, config, gateways, sleep=watch).dial(cid, b, b_seq) == "answered"
    # A 2.5 s wait for the slot, with a 1.5 s lease: renewed on every wake-up.
    assert len(seen) >= 2
    assert all(left > dial_lease_s(config, store.get_campaign(cid).config) - 1.1 for left in seen)


@pytest.mark.parametrize(("operation", "label", "state"), [("pause", "requeued:paused", "pending"),
                                                           ("cancel", "cancelled", "final")])
def test_a_pause_or_cancel_while_a_task_waits_lets_no_invite_out(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway],
    operation: str, label: str, state: str,
) -> None:
    config = settings(redis_url, box)
    cid = start(store, config, tmp_path, [A, B], calls_per_second=1)
    plain = dialer(store, config, gateways)
    [(a, a_seq), (b, b_seq)] = queue(store, cid, [2, 3])
    plain.dial(cid, a, a_seq)

    def operator(seconds: float) -> None:
        if store.get_campaign(cid).state is CampaignState.RUNNING:
            getattr(control, operation)(store, *([config] if operation == "cancel" else []), cid)
        time.sleep(seconds)

    assert dialer(store, config, gateways, sleep=operator).dial(cid, b, b_seq) == label
    assert invites_to(box, B) == []
    status = store.contact_status(cid, b) or {}
    assert status["state"] == state
    assert status.get("attempts", 0) == 0


def test_the_rate_slot_is_taken_after_the_room_is_set_up(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    config = settings(redis_url, box)
    cid, a, seq = queued_attempt(store, config, tmp_path)
    set_faults(box, latency_s=0.4)  # every LiveKit request takes 0.4 s: room (with its agent), INVITE
    assert dialer(store, config, gateways).dial(cid, a, seq) == "answered"
    attempt = store.attempt(cid, f"{a}:{seq}") or {}
    [call] = invites_to(box, A)
    assert attempt["last_invite_at"] - attempt["dial_started_at"] >= 0.4 - 0.01  # the set-up came first
    assert call["started_at"] - attempt["last_invite_at"] < 0.4 + 0.3  # then the slot, then the INVITE


def test_the_rate_limit_holds_between_workers_whose_clocks_differ(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    exact = settings(redis_url, box)
    fast = settings(redis_url, box, dialer_clock_offset_s=0.6)
    cid = start(store, exact, tmp_path, [A, B], calls_per_second=1)
    [(a, a_seq), (b, b_seq)] = queue(store, cid, [2, 3])
    dialer(store, exact, gateways).dial(cid, a, a_seq)
    dialer(store, fast, gateways).dial(cid, b, b_seq)
    first, second = sorted(call["started_at"] for call in box.calls())
    assert second - first >= 1.0 - 0.02


# -- an unknown outcome is settled on evidence only ---------------------------------------------


class _LostReply(LiveKitGateway):
    """The INVITE request dies on the way (connection reset): LiveKit may or may not have it."""

    dialed = False

    def dial(self, request: api.CreateSIPParticipantRequest) -> api.SIPParticipantInfo:
        self.dialed = True
        raise TimeoutError("reply lost")


class _LostReplyAndUnreadable(_LostReply):
    """... and from then on LiveKit's API keeps failing."""

    def participants(self, room: str) -> list[Any] | None:
        if self.dialed:
            raise api.TwirpError("unavailable", "LiveKit is down", status=503)
        return super().participants(room)


def test_an_unknown_outcome_is_not_settled_by_one_empty_look(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    config = settings(redis_url, box)
    cid, a, seq = ringing_attempt(store, config, tmp_path)
    room = room_name(cid, a, seq)
    looks: list[float] = []

    def late_livekit(seconds: float) -> None:
        looks.append(seconds)
        if len(looks) == 1:  # after the first empty look, LiveKit places the participant after all
            place_callee(box, room, f"callee-{a}", SLOW)
        time.sleep(seconds)

    assert dialer(store, config, gateways, _LostReply, sleep=late_livekit).dial(cid, a, seq) == "answered"
    assert len(invites_to(box, SLOW)) == 1
    wait_for(lambda: (store.contact_status(cid, a) or {}).get("outcome") == "answered", timeout_s=10)
    assert (store.contact_status(cid, a) or {})["attempts"] == 1


def test_an_unknown_outcome_stays_open_while_livekit_cannot_be_read(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    config = settings(redis_url, box, dialer_lease_margin_s=1.0)
    cid = start(store, config, tmp_path, [A], ring_timeout_s=1)
    [(a, seq)] = queue(store, cid, [2])
    result = dialer(store, config, gateways, _LostReplyAndUnreadable).dial(cid, a, seq)
    assert result == "unknown:reconciler"
    assert (store.attempt(cid, f"{a}:{seq}") or {})["state"] == AttemptState.DIALING
    assert (store.contact_status(cid, a) or {})["state"] == "in_flight"


def test_no_call_is_settled_after_several_empty_looks_and_the_room_deleted(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    config = settings(redis_url, box, dialer_no_call_settle_s=0.5)
    cid, a, seq = queued_attempt(store, config, tmp_path)
    started = time.monotonic()
    assert dialer(store, config, gateways, _LostReply).dial(cid, a, seq) == "unknown"
    assert time.monotonic() - started >= 0.5
    assert (store.contact_status(cid, a) or {})["state"] == "pending"
    assert invites_to(box, A) == []


# -- endings: the SIP result first, then the cleanup --------------------------------------------


class _Killed(BaseException):
    """The process dies here (SIGKILL): nothing after this line runs."""


class _DiesDuringCleanup(LiveKitGateway):
    def delete_room(self, name: str) -> bool:
        raise _Killed


def test_a_final_sip_outcome_is_recorded_before_the_room_is_cleaned_up(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    config = settings(redis_url, box)
    declines = "+12025550183"
    cid = start(store, config, tmp_path, [declines])
    [(contact, seq)] = queue(store, cid, [2])
    with pytest.raises(_Killed):
        dialer(store, config, gateways, _DiesDuringCleanup).dial(cid, contact, seq)
    status = store.contact_status(cid, contact) or {}
    assert (status["state"], status["outcome"]) == ("final", "declined")


class _RoomReplyLost(LiveKitGateway):
    """CreateRoom (which dispatches the agent) does its work, then the reply is lost (a 503 from
    LiveKit) once."""

    failed = False

    def create_room(self, name: str, empty_timeout_s: int, **kwargs: Any) -> None:
        super().create_room(name, empty_timeout_s, **kwargs)
        if not self.failed:
            self.failed = True
            raise api.TwirpError("unavailable", "reply lost", status=503)


def test_a_retried_room_set_up_never_puts_two_agents_in_one_call(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    config = settings(redis_url, box)
    cid, contact, seq = ringing_attempt(store, config, tmp_path)
    room = room_name(cid, contact, seq)
    task = threading.Thread(target=dialer(store, config, gateways, _RoomReplyLost,
                                          sleep=lambda s: None).dial, args=(cid, contact, seq))
    task.start()
    wait_for(lambda: invites_to(box, SLOW), timeout_s=10, what="the INVITE")

    async def dispatches() -> list[Any]:
        async with api.LiveKitAPI(box.url, API_KEY, API_SECRET) as client:
            return list(await client.agent_dispatch.list_dispatch(room))

    [dispatch] = asyncio.run(dispatches())
    assert (dispatch.agent_name, json.loads(dispatch.metadata)["call_id"]) == (
        config.agent_name, f"{cid}:{contact}:{seq}")
    task.join(timeout=20)


def test_a_set_up_refused_after_a_lost_create_room_answer_deletes_the_room_and_its_agent(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    config = settings(redis_url, box)
    cid, a, seq = queued_attempt(store, config, tmp_path)

    def operator(seconds: float) -> None:  # the operator pauses while the set-up waits to try again
        control.pause(store, cid)

    # The first CreateRoom made the room (and dispatched its agent) but its answer was lost; the
    # retry's admission finds the campaign paused: nothing is dialed, and the room is not left
    # behind with an agent waiting in it.
    assert dialer(store, config, gateways, _RoomReplyLost, sleep=operator).dial(cid, a, seq) == "requeued:paused"
    assert invites_to(box, A) == []

    async def rooms() -> list[str]:
        async with api.LiveKitAPI(box.url, API_KEY, API_SECRET) as client:
            return [room.name for room in (await client.room.list_rooms(api.ListRoomsRequest())).rooms]

    assert room_name(cid, a, seq) not in asyncio.run(rooms())


# -- a lost claim (Redis back from an AOF cut by its last second) never dials again --------------


def test_a_claim_lost_to_redis_never_leads_to_a_second_invite(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    config = settings(redis_url, box)
    cid, contact, seq = ringing_attempt(store, config, tmp_path)
    member = f"{contact}:{seq}"
    before_claim = store.redis.hget(Keys.attempts(cid), member)
    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(dialer(store, config, gateways).dial(cid, contact, seq)))
    first.start()
    wait_for(lambda: invites_to(box, SLOW), timeout_s=10, what="the first INVITE")
    # Redis restarts from an AOF that lost the last second: the claim is gone, the attempt queued,
    # and the server is a new process (the run_id it queued the attempt in is not the current one).
    restored = {**json.loads(before_claim or b"{}"), "run": "0" * 40}
    store.redis.hset(Keys.attempts(cid), member, json.dumps(restored))
    assert dialer(store, config, gateways).dial(cid, contact, seq) == "in_progress"
    first.join(timeout=20)
    assert results == ["answered"]
    assert len(invites_to(box, SLOW)) == 1


class _Looks(LiveKitGateway):
    """Counts the looks into rooms."""

    looked: list[str] = []

    def participants(self, room: str) -> list[Any] | None:
        self.looked.append(room)
        return super().participants(room)


def test_the_room_is_read_before_dialing_only_when_redis_restarted_since_the_attempt_was_queued(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    config = settings(redis_url, box)
    cid = start(store, config, tmp_path, [A, B])
    [(a, a_seq), (b, b_seq)] = queue(store, cid, [2, 3])
    assert json.loads(store.redis.hget(Keys.attempts(cid), f"{a}:{a_seq}") or b"{}")["run"]  # queued in this run
    _Looks.looked = []
    assert dialer(store, config, gateways, _Looks).dial(cid, a, a_seq) == "answered"
    assert _Looks.looked == []  # the same Redis process queued and claimed it: no claim can have been lost
    queued = json.loads(store.redis.hget(Keys.attempts(cid), f"{b}:{b_seq}") or b"{}")
    store.redis.hset(Keys.attempts(cid), f"{b}:{b_seq}", json.dumps({**queued, "run": "f" * 40}))  # a restart since
    assert dialer(store, config, gateways, _Looks).dial(cid, b, b_seq) == "answered"
    assert _Looks.looked == [room_name(cid, b, b_seq)]


# -- the reconciler: per attempt, on evidence, by a deadline --------------------------------------


class _BrokenRoom(LiveKitGateway):
    """Looking up one particular room fails with something nobody expected."""

    def participants(self, room: str) -> list[Any] | None:
        if room.endswith("-2-1"):
            raise RuntimeError("malformed response")
        return super().participants(room)


def test_one_unreadable_attempt_does_not_stop_the_reconciler_and_ends_by_a_deadline(
    store: Store, box: Sandbox, tmp_path: Path, redis_url: str, gateways: list[LiveKitGateway]
) -> None:
    config = settings(redis_url, box, dialer_reconcile_give_up_s=0.5)
    cid = start(store, config, tmp_path, [A, B])
    members = [f"{c}:{s}" for c, s in queue(store, cid, [2, 3])]
    for member in members:  # both dial tasks died right after their claim; the leases ran out
        store.transition(cid, member, [AttemptState.QUEUED], AttemptState.DIALING, -1, claim="dead")
    gateway = _BrokenRoom(config.livekit_url, API_KEY, API_SECRET)
    gateways.append(gateway)
    deadline = time.monotonic() + 15
    while store.in_flight(cid) and time.monotonic() < deadline:
        for member in members:  # make the reconciler's next run find them expired again
            attempt = store.attempt(cid, member) or {}
            if attempt.get("state") == AttemptState.DIALING:
                store.transition(cid, member, [AttemptState.DIALING], AttemptState.DIALING, -1)
        reconcile(store, gateway, config, token="r")
        time.sleep(0.2)
    assert store.in_flight(cid) == 0
    broken, fine = (store.contact_status(cid, c) or {} for c in (2, 3))
    assert (broken["state"], broken["outcome"]) == ("final", "failed")  # closed, never dialed again
    assert fine["state"] == "pending"  # no INVITE had left: requeued, not charged
    assert fine["attempts"] == 0
    assert box.calls() == []
