"""The sandbox, driven over HTTP by the real ``livekit-api`` client."""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from livekit import api
from livekit.api import _dial_timeout

from dialer.sandbox import (
    CallRecord,
    SandboxServer,
    ScenarioError,
    SimulatedConversation,
    load_scenario,
    parse_scenario,
)
from dialer.sandbox import calls as sandbox_calls

KEY = "test-key"
SECRET = "test-secret-that-is-long-enough-for-hs256"
TRUNK = "ST_test"
CALLER_ID = "+12025550199"
#: Matches no rule of SCENARIO: answered after ring_s, talks for talk_s.
ANSWERS = "+12025550200"
T = TypeVar("T")

SCENARIO: dict[str, Any] = {
    "ring_s": 0.05,
    "talk_s": 0.1,
    "numbers": {
        "+12025550142": ["busy", "busy", "answer"],
        "+1202555015*": ["no_answer"],
        "+12025550155": ["decline"],
        "+120255501*": ["unavailable"],
        "+12025550170": {"outcomes": ["answer"], "ring_s": 0.4, "talk_s": 0.3},
        "+12025550171": {"outcomes": ["answer"], "talk_s": 5.0},
        "+12025550172": {"outcomes": ["answer"], "disposition": "confirmed"},
        "+12025550173": ["voicemail"],
        "+12025550174": ["opt_out"],
        "+12025550175": ["hangup_early"],
        "+12025550176": ["slow"],
        "+12025550177": ["busy"],
        "+12025550178": {"outcomes": ["no_answer"], "ring_s": 5.0},
    },
    "default": ["answer"],
}


class Sandbox:
    """A SandboxServer on its own event loop thread, as a separate process would run it."""

    def __init__(self, scenario: dict[str, Any], sink: Any = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = SandboxServer(parse_scenario(scenario), KEY, SECRET, sink)
        self.run(self.server.start())
        self.url = self.server.url

    def run(self, coro: Awaitable[T]) -> T:
        async def wrapper() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(10)

    def calls(self) -> list[CallRecord]:
        async def snapshot() -> list[CallRecord]:
            return self.server.calls

        return self.run(snapshot())

    def close(self) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    started: list[Sandbox] = []

    def make(scenario: dict[str, Any] | None = None, sink: Any = None) -> Sandbox:
        sandbox = Sandbox(SCENARIO if scenario is None else scenario, sink)
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.close()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox()


@pytest.fixture
def conversations(make_sandbox: Callable[..., Sandbox]) -> tuple[Sandbox, list[SimulatedConversation]]:
    received: list[SimulatedConversation] = []

    async def sink(conversation: SimulatedConversation) -> None:
        received.append(conversation)

    return make_sandbox(sink=sink), received


def lk(sandbox: Sandbox, fn: Callable[[api.LiveKitAPI], Awaitable[T]], secret: str = SECRET) -> T:
    """Run ``fn`` with a real LiveKitAPI client (failover off, as the dialer builds it)."""

    async def main() -> T:
        async with api.LiveKitAPI(sandbox.url, KEY, secret, failover=False) as client:
            return await fn(client)

    return asyncio.run(main())


def dial_request(number: str, room: str = "room-1", identity: str = "callee", wait: bool = True,
                 **extra: Any) -> api.CreateSIPParticipantRequest:
    return api.CreateSIPParticipantRequest(
        sip_trunk_id=TRUNK, sip_call_to=number, sip_number=CALLER_ID, room_name=room,
        participant_identity=identity, wait_until_answered=wait, **extra)


def dial(sandbox: Sandbox, number: str, **kwargs: Any) -> api.SIPParticipantInfo:
    return lk(sandbox, lambda c: c.sip.create_sip_participant(dial_request(number, **kwargs)))


def dial_error(sandbox: Sandbox, number: str, **kwargs: Any) -> api.ServerError:
    with pytest.raises(api.ServerError) as caught:
        dial(sandbox, number, **kwargs)
    return caught.value


def wait_until(predicate: Callable[[], T | None], timeout_s: float = 5.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.01)
    return value


def first_call(sandbox: Sandbox, done: Callable[[CallRecord], bool], what: str) -> CallRecord:
    """The first logged INVITE, once ``done`` holds for it."""

    def check() -> CallRecord | None:
        calls = sandbox.calls()
        return calls[0] if calls and done(calls[0]) else None

    return wait_until(check, what=what)


def ended_call(sandbox: Sandbox) -> CallRecord:
    return first_call(sandbox, lambda record: record.ended_at is not None, "the call to end")


def room_names(sandbox: Sandbox) -> set[str]:
    response = lk(sandbox, lambda c: c.room.list_rooms(api.ListRoomsRequest()))
    return {room.name for room in response.rooms}


def participants(sandbox: Sandbox, room: str = "room-1") -> list[Any]:
    response = lk(sandbox, lambda c: c.room.list_participants(api.ListParticipantsRequest(room=room)))
    return list(response.participants)


def call_status(sandbox: Sandbox, room: str = "room-1", identity: str = "callee") -> str | None:
    for participant in participants(sandbox, room):
        if participant.identity == identity:
            return str(participant.attributes["sip.callStatus"])
    return None


def token(**grants: Any) -> str:
    sip = grants.pop("sip", None)
    access = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(**grants))
    if sip is not None:
        access.with_sip_grants(sip)
    return access.to_jwt()


async def post(sandbox: Sandbox, route: str, body: bytes, content_type: str,
               bearer: str | None = None) -> tuple[int, str, bytes]:
    headers = {"Content-Type": content_type}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    async with aiohttp.ClientSession() as session, session.post(
        f"{sandbox.url}/twirp/{route}", data=body, headers=headers
    ) as response:
        return response.status, response.content_type, await response.read()


def http_json(url: str, method: str = "GET") -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as response:
        return json.loads(response.read())


# -- rooms --------------------------------------------------------------------------------


def test_created_room_is_listed(sandbox: Sandbox) -> None:
    lk(sandbox, lambda c: c.room.create_room(api.CreateRoomRequest(name="r1")))
    assert room_names(sandbox) == {"r1"}


def test_creating_an_existing_room_returns_it_unchanged(sandbox: Sandbox) -> None:
    async def twice(c: api.LiveKitAPI) -> tuple[str, str]:
        first = await c.room.create_room(api.CreateRoomRequest(name="r1"))
        second = await c.room.create_room(api.CreateRoomRequest(name="r1"))
        return first.sid, second.sid

    first, second = lk(sandbox, twice)
    assert first == second and first.startswith("RM_")


def test_deleted_room_is_no_longer_listed(sandbox: Sandbox) -> None:
    lk(sandbox, lambda c: c.room.create_room(api.CreateRoomRequest(name="r1")))
    lk(sandbox, lambda c: c.room.delete_room(api.DeleteRoomRequest(room="r1")))
    assert room_names(sandbox) == set()


def test_deleting_an_unknown_room_is_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(api.ServerError) as caught:
        lk(sandbox, lambda c: c.room.delete_room(api.DeleteRoomRequest(room="nope")))
    assert (caught.value.code, caught.value.status) == ("not_found", 404)


def test_an_unknown_room_has_no_participants(sandbox: Sandbox) -> None:
    assert participants(sandbox, "nope") == []


# -- agent dispatch ---------------------------------------------------------------------


def test_created_dispatch_is_listed_with_its_metadata(sandbox: Sandbox) -> None:
    async def create_and_list(c: api.LiveKitAPI) -> tuple[Any, list[Any]]:
        created = await c.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name="caller", room="r1", metadata='{"call_id": "x"}'))
        return created, await c.agent_dispatch.list_dispatch("r1")

    created, listed = lk(sandbox, create_and_list)
    assert [(d.id, d.agent_name, d.metadata) for d in listed] == [(created.id, "caller", '{"call_id": "x"}')]


def test_a_room_created_with_agents_dispatches_them_once(sandbox: Sandbox) -> None:
    """As livekit-server: a room's agents are dispatched when it is built; a CreateRoom of a live
    room (a retry after a lost answer) dispatches nothing more."""
    request = api.CreateRoomRequest(name="r1", agents=[
        api.RoomAgentDispatch(agent_name="caller", metadata='{"call_id": "x"}')])

    async def create_twice_and_list(c: api.LiveKitAPI) -> list[Any]:
        await c.room.create_room(request)
        await c.room.create_room(request)
        return list(await c.agent_dispatch.list_dispatch("r1"))

    [dispatch] = lk(sandbox, create_twice_and_list)
    assert (dispatch.agent_name, dispatch.metadata, dispatch.room) == ("caller", '{"call_id": "x"}', "r1")


def test_creating_a_dispatch_creates_its_room(sandbox: Sandbox) -> None:
    lk(sandbox, lambda c: c.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="caller", room="r1")))
    assert room_names(sandbox) == {"r1"}


def test_deleted_dispatch_is_no_longer_listed(sandbox: Sandbox) -> None:
    async def create_delete_list(c: api.LiveKitAPI) -> list[Any]:
        created = await c.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name="caller", room="r1"))
        await c.agent_dispatch.delete_dispatch(created.id, "r1")
        return await c.agent_dispatch.list_dispatch("r1")

    assert lk(sandbox, create_delete_list) == []


def test_deleting_an_unknown_dispatch_is_not_found(sandbox: Sandbox) -> None:
    lk(sandbox, lambda c: c.room.create_room(api.CreateRoomRequest(name="r1")))
    with pytest.raises(api.ServerError) as caught:
        lk(sandbox, lambda c: c.agent_dispatch.delete_dispatch("AD_nope", "r1"))
    assert caught.value.code == "not_found"


# -- dialing ----------------------------------------------------------------------------


def test_answered_dial_returns_the_sip_participant(sandbox: Sandbox) -> None:
    info = dial(sandbox, ANSWERS)
    assert (info.participant_identity, info.room_name) == ("callee", "room-1")
    assert info.participant_id.startswith("PA_") and info.sip_call_id.startswith("SCL_")


def test_dial_creates_the_room_when_missing(sandbox: Sandbox) -> None:
    dial(sandbox, "+12025550171", room="made-by-dial")
    assert "made-by-dial" in room_names(sandbox)


def test_answered_participant_is_active_sip_with_attributes(sandbox: Sandbox) -> None:
    info = dial(sandbox, "+12025550171", participant_attributes={"dialer.attempt": "2"})
    [participant] = participants(sandbox)
    assert participant.kind == api.ParticipantInfo.Kind.SIP
    assert dict(participant.attributes) == {
        "sip.callStatus": "active", "sip.callID": info.sip_call_id, "sip.phoneNumber": "+12025550171",
        "sip.trunkPhoneNumber": CALLER_ID, "sip.trunkID": TRUNK, "dialer.attempt": "2",
    }


def test_participant_is_in_the_room_while_ringing(sandbox: Sandbox) -> None:
    dial(sandbox, "+12025550170", wait=False)
    wait_until(lambda: call_status(sandbox) == "ringing", what="ringing")


def test_participant_turns_active_on_answer(sandbox: Sandbox) -> None:
    dial(sandbox, "+12025550170", wait=False)
    wait_until(lambda: call_status(sandbox) == "ringing", what="ringing")
    wait_until(lambda: call_status(sandbox) == "active", what="active")


def test_dial_without_waiting_returns_while_dialing(sandbox: Sandbox) -> None:
    dial(sandbox, "+12025550170", wait=False)
    [record] = sandbox.calls()
    assert record.answered_at is None


#: Each simulated SIP failure: (scenario outcome, Twirp code, HTTP status, SIP code, SIP reason).
SIP_FAILURES = [
        ("busy", "resource_exhausted", 429, 486, "Busy Here"),
        ("global_busy", "resource_exhausted", 429, 600, "Busy Everywhere"),
        ("unavailable", "resource_exhausted", 429, 480, "Temporarily Unavailable"),
        ("request_timeout", "deadline_exceeded", 408, 408, "Request Timeout"),
        ("gateway_timeout", "deadline_exceeded", 408, 504, "Server Time-out"),
        ("not_found", "not_found", 404, 404, "Not Found"),
        ("does_not_exist", "not_found", 404, 604, "Does Not Exist Anywhere"),
        ("address_incomplete", "invalid_argument", 400, 484, "Address Incomplete"),
        ("not_acceptable", "invalid_argument", 400, 488, "Not Acceptable Here"),
        ("forbidden", "permission_denied", 403, 403, "Forbidden"),
        ("decline", "permission_denied", 403, 603, "Decline"),
        ("auth_required", "unauthenticated", 401, 407, "Proxy Authentication Required"),
        ("terminated", "aborted", 409, 487, "Request Terminated"),
        ("server_error", "failed_precondition", 412, 500, "Server Internal Error"),
        ("carrier_error", "failed_precondition", 412, 503, "Service Unavailable"),
        ("capacity", "failed_precondition", 412, 503, "CPS limit exceeded"),
    ]


@pytest.mark.parametrize(("outcome", "twirp_code", "http_status", "sip_code", "sip_status"), SIP_FAILURES)
def test_failed_dial_raises_sip_call_error(make_sandbox: Callable[..., Sandbox], outcome: str,
                                           twirp_code: str, http_status: int, sip_code: int,
                                           sip_status: str) -> None:
    sandbox = make_sandbox({"ring_s": 0.01, "numbers": {"+12025550100": [outcome]}})
    error = dial_error(sandbox, "+12025550100")
    assert isinstance(error, api.SipCallError)
    assert (error.code, error.status, error.sip_status_code, error.sip_status) == (
        twirp_code, http_status, sip_code, sip_status)


def test_failed_dial_leaves_the_room(sandbox: Sandbox) -> None:
    dial_error(sandbox, "+12025550177")
    assert participants(sandbox) == []


def test_ring_timeout_is_canceled_without_a_sip_code(sandbox: Sandbox) -> None:
    error = dial_error(sandbox, "+12025550150")
    assert not isinstance(error, api.SipCallError)
    assert (error.code, error.status, error.metadata) == ("canceled", 408, {})


def test_invalid_request_is_invalid_argument(sandbox: Sandbox) -> None:
    error = dial_error(sandbox, "")
    assert (error.code, error.message) == ("invalid_argument", "missing sip callee number")


def test_slow_callee_answers_after_ringing_timeout_plus_margin(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_calls, "SLOW_MARGIN_S", 0.2)
    request = dial_request("+12025550176", wait=False)
    request.ringing_timeout.nanos = 100_000_000
    lk(sandbox, lambda c: c.sip.create_sip_participant(request))
    record = first_call(sandbox, lambda r: r.answered_at is not None, "the answer")
    assert record.answered_at is not None and record.answered_at - record.started_at >= 0.3


def test_slow_margin_outlasts_the_clients_dial_timeout() -> None:
    assert sandbox_calls.SLOW_MARGIN_S > _dial_timeout.RINGING_TIMEOUT_MARGIN


def test_deleting_the_room_ends_a_ringing_call(sandbox: Sandbox) -> None:
    dial(sandbox, "+12025550178", wait=False)
    wait_until(lambda: call_status(sandbox) == "ringing", what="ringing")
    lk(sandbox, lambda c: c.room.delete_room(api.DeleteRoomRequest(room="room-1")))
    record = ended_call(sandbox)
    assert (record.end_reason, record.answered_at) == ("room_deleted", None)


def test_deleting_the_room_fails_a_waiting_dial(sandbox: Sandbox) -> None:
    async def dial_then_delete(c: api.LiveKitAPI) -> object:
        pending = asyncio.ensure_future(c.sip.create_sip_participant(dial_request("+12025550178")))
        await asyncio.sleep(0.2)
        await c.room.delete_room(api.DeleteRoomRequest(room="room-1"))
        return (await asyncio.gather(pending, return_exceptions=True))[0]

    error = lk(sandbox, dial_then_delete)
    assert isinstance(error, api.ServerError) and error.code == "canceled"


def test_removing_the_participant_ends_the_call(sandbox: Sandbox) -> None:
    dial(sandbox, "+12025550171")
    lk(sandbox, lambda c: c.room.remove_participant(
        api.RoomParticipantIdentity(room="room-1", identity="callee")))
    record = ended_call(sandbox)
    assert record.end_reason == "participant_removed"


def test_transfer_ends_the_call_in_livekit(sandbox: Sandbox) -> None:
    dial(sandbox, "+12025550171")
    lk(sandbox, lambda c: c.sip.transfer_sip_participant(api.TransferSIPParticipantRequest(
        room_name="room-1", participant_identity="callee", transfer_to="tel:+12025550123")))
    record = ended_call(sandbox)
    assert (record.end_reason, record.transferred_to) == ("transferred", "tel:+12025550123")


# -- the scenario's rules -----------------------------------------------------------------


def test_outcomes_follow_the_numbers_sequence_and_the_last_repeats(sandbox: Sandbox) -> None:
    for _ in range(2):
        dial_error(sandbox, "+12025550142", room="r")
    dial(sandbox, "+12025550142", room="r2")
    dial(sandbox, "+12025550142", room="r3")
    assert [record.outcome for record in sandbox.calls()] == ["busy", "busy", "answer", "answer"]


def test_exact_number_beats_a_prefix(sandbox: Sandbox) -> None:
    error = dial_error(sandbox, "+12025550155")
    assert isinstance(error, api.SipCallError) and error.sip_status_code == 603


def test_longest_prefix_wins(sandbox: Sandbox) -> None:
    assert dial_error(sandbox, "+12025550151").code == "canceled"


def test_shorter_prefix_applies_outside_the_longer_one(sandbox: Sandbox) -> None:
    error = dial_error(sandbox, "+12025550161")
    assert isinstance(error, api.SipCallError) and error.sip_status_code == 480


def test_unmatched_number_gets_the_default(sandbox: Sandbox) -> None:
    dial(sandbox, "+442079460000")
    assert sandbox.calls()[0].outcome == "answer"


def test_deleting_the_call_log_restarts_the_sequences(sandbox: Sandbox) -> None:
    dial_error(sandbox, "+12025550142")
    http_json(f"{sandbox.url}/sandbox/calls", method="DELETE")
    dial_error(sandbox, "+12025550142")
    assert [(record.outcome, record.invite) for record in sandbox.calls()] == [("busy", 1)]


# -- simulated conversations --------------------------------------------------------------


def test_conversation_sink_receives_the_dispatch_metadata(
        conversations: tuple[Sandbox, list[SimulatedConversation]]) -> None:
    sandbox, received = conversations
    lk(sandbox, lambda c: c.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="caller", room="room-1", metadata='{"call_id": "c:1:1"}')))
    info = dial(sandbox, ANSWERS)
    [conversation] = wait_until(lambda: list(received), what="the conversation")
    assert (conversation.dispatch_metadata, conversation.sip_call_id, conversation.number) == (
        '{"call_id": "c:1:1"}', info.sip_call_id, ANSWERS)


def test_conversation_without_a_dispatch_has_no_metadata(
        conversations: tuple[Sandbox, list[SimulatedConversation]]) -> None:
    sandbox, received = conversations
    dial(sandbox, ANSWERS)
    [conversation] = wait_until(lambda: list(received), what="the conversation")
    assert conversation.dispatch_metadata is None


@pytest.mark.parametrize(
    ("number", "kind", "disposition"),
    [
        (ANSWERS, "answer", "completed"),
        ("+12025550172", "answer", "confirmed"),
        ("+12025550173", "voicemail", "voicemail"),
        ("+12025550174", "opt_out", "opted_out"),
        ("+12025550175", "hangup_early", "hung_up_early"),
    ],
)
def test_conversation_reports_its_kind_and_disposition(
        conversations: tuple[Sandbox, list[SimulatedConversation]], number: str, kind: str,
        disposition: str) -> None:
    sandbox, received = conversations
    dial(sandbox, number)
    [conversation] = wait_until(lambda: list(received), what="the conversation")
    assert (conversation.outcome, conversation.disposition) == (kind, disposition)
    assert conversation.transcript and conversation.ended_at >= conversation.answered_at


def test_room_is_deleted_after_the_conversation(
        conversations: tuple[Sandbox, list[SimulatedConversation]]) -> None:
    sandbox, received = conversations
    dial(sandbox, ANSWERS)
    wait_until(lambda: received and "room-1" not in room_names(sandbox), what="room deletion")


def test_failing_sink_is_logged_and_the_room_still_deleted(make_sandbox: Callable[..., Sandbox],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    async def broken(conversation: SimulatedConversation) -> None:
        raise RuntimeError("sink is down")

    sandbox = make_sandbox(sink=broken)
    dial(sandbox, ANSWERS)
    wait_until(lambda: "room-1" not in room_names(sandbox), what="room deletion")
    assert "conversation sink failed" in caplog.text


# -- the call log -----------------------------------------------------------------------


def test_call_log_records_every_invite_over_http(sandbox: Sandbox) -> None:
    dial(sandbox, ANSWERS, participant_attributes={"dialer.attempt": "3"})
    dial_error(sandbox, "+12025550177", room="room-2")
    log = http_json(f"{sandbox.url}/sandbox/calls")
    assert [(r["number"], r["room"], r["attempt"], r["outcome"], r["sip_status_code"], r["trunk_id"],
             r["from_number"]) for r in log] == [
        (ANSWERS, "room-1", 3, "answer", None, TRUNK, CALLER_ID),
        ("+12025550177", "room-2", None, "busy", 486, TRUNK, CALLER_ID),
    ]


def test_call_log_has_the_times_of_each_call(sandbox: Sandbox) -> None:
    dial(sandbox, ANSWERS)
    record = ended_call(sandbox)
    assert record.answered_at is not None and record.ended_at is not None
    assert record.started_at <= record.answered_at <= record.ended_at


def test_call_log_keeps_the_clients_request_id(sandbox: Sandbox) -> None:
    dial(sandbox, ANSWERS)
    assert len(sandbox.calls()[0].request_id) == 36  # the client's uuid4 idempotency key


def test_health_answers_ok(sandbox: Sandbox) -> None:
    assert http_json(f"{sandbox.url}/sandbox/health")["status"] == "ok"


# -- authentication -----------------------------------------------------------------------


def test_wrong_secret_is_refused_with_401(sandbox: Sandbox) -> None:
    with pytest.raises(api.ServerError) as caught:
        lk(sandbox, lambda c: c.room.list_rooms(api.ListRoomsRequest()), secret="x" + SECRET)
    assert caught.value.status == 401


def test_expired_token_is_refused_with_401(sandbox: Sandbox) -> None:
    expired = (api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_list=True))
               .with_ttl(datetime.timedelta(minutes=-5)).to_jwt())
    status, _, _ = asyncio.run(post(sandbox, "livekit.RoomService/ListRooms", b"{}", "application/json",
                                    expired))
    assert status == 401


def test_missing_token_is_unauthenticated(sandbox: Sandbox) -> None:
    status, _, body = asyncio.run(post(sandbox, "livekit.RoomService/ListRooms", b"{}", "application/json"))
    assert (status, json.loads(body)["code"]) == (401, "unauthenticated")


@pytest.mark.parametrize(
    ("route", "body", "grants"),
    [
        ("livekit.RoomService/CreateRoom", {"name": "r1"}, {"room_list": True}),
        ("livekit.RoomService/DeleteRoom", {"room": "r1"}, {"room_admin": True, "room": "r1"}),
        ("livekit.RoomService/ListRooms", {}, {"room_create": True}),
        ("livekit.RoomService/ListParticipants", {"room": "r1"}, {"room_admin": True, "room": "r2"}),
        ("livekit.AgentDispatchService/CreateDispatch", {"room": "r1"}, {"room_create": True}),
        ("livekit.SIP/CreateSIPParticipant", {"room_name": "r1", "sip_call_to": "+12025550100",
                                              "sip_trunk_id": TRUNK}, {"room_admin": True, "room": "r1"}),
    ],
)
def test_token_without_the_grant_is_refused(sandbox: Sandbox, route: str, body: dict[str, Any],
                                            grants: dict[str, Any]) -> None:
    status, _, response = asyncio.run(post(sandbox, route, json.dumps(body).encode(), "application/json",
                                           token(**grants)))
    assert (status, json.loads(response)) == (401, {"code": "unauthenticated", "msg": "permissions denied"})


def test_sip_call_grant_alone_may_dial(sandbox: Sandbox) -> None:
    with_sip = token(sip=api.SIPGrants(call=True))

    async def dial_with_token() -> api.SIPParticipantInfo:
        async with api.LiveKitAPI.with_token(with_sip, sandbox.url, failover=False) as client:
            return await client.sip.create_sip_participant(dial_request(ANSWERS))

    assert asyncio.run(dial_with_token()).participant_identity == "callee"


# -- the wire -----------------------------------------------------------------------------


def test_json_request_gets_a_json_response(sandbox: Sandbox) -> None:
    status, content_type, body = asyncio.run(post(
        sandbox, "livekit.RoomService/CreateRoom", b'{"name": "json-room", "empty_timeout": 60}',
        "application/json", token(room_create=True)))
    assert (status, content_type) == (200, "application/json")
    assert (json.loads(body)["name"], json.loads(body)["empty_timeout"]) == ("json-room", 60)


def test_json_accepts_camel_case_field_names(sandbox: Sandbox) -> None:
    asyncio.run(post(sandbox, "livekit.RoomService/CreateRoom", b'{"name": "r1", "emptyTimeout": 7}',
                     "application/json", token(room_create=True)))
    [room] = lk(sandbox, lambda c: c.room.list_rooms(api.ListRoomsRequest())).rooms
    assert room.empty_timeout == 7


def test_json_errors_are_twirp_json(sandbox: Sandbox) -> None:
    status, _, body = asyncio.run(post(sandbox, "livekit.RoomService/DeleteRoom", b'{"room": "nope"}',
                                       "application/json", token(room_create=True)))
    assert (status, json.loads(body)) == (404, {"code": "not_found", "msg": "requested room does not exist"})


def test_malformed_body_is_malformed(sandbox: Sandbox) -> None:
    status, _, body = asyncio.run(post(sandbox, "livekit.RoomService/CreateRoom", b"{not json",
                                       "application/json", token(room_create=True)))
    assert (status, json.loads(body)["code"]) == (400, "malformed")


def test_unknown_method_is_bad_route(sandbox: Sandbox) -> None:
    status, _, body = asyncio.run(post(sandbox, "livekit.RoomService/Nope", b"{}", "application/json",
                                       token(room_create=True)))
    assert (status, json.loads(body)["code"]) == (404, "bad_route")


@pytest.mark.parametrize(("outcome", "twirp_code", "http_status", "sip_code", "sip_status"), SIP_FAILURES)
def test_sip_errors_on_the_wire_are_exactly_what_livekit_writes(
    make_sandbox: Callable[..., Sandbox], outcome: str, twirp_code: str, http_status: int, sip_code: int,
    sip_status: str,
) -> None:
    """Read as a client other than the Python SDK would (LiveKit's Node SDK needs the exact header)."""
    sandbox = make_sandbox({"ring_s": 0.01, "numbers": {"+12025550100": [outcome]}})
    body = {"room_name": "r1", "sip_call_to": "+12025550100", "sip_trunk_id": TRUNK, "wait_until_answered": True}
    request = urllib.request.Request(
        f"{sandbox.url}/twirp/livekit.SIP/CreateSIPParticipant", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {token(sip=api.SIPGrants(call=True))}"})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    response = raised.value
    assert response.code == http_status
    assert response.headers["Content-Type"] == "application/json"
    error = json.loads(response.read())
    assert (error["code"], error["meta"]) == (
        twirp_code, {"sip_status_code": str(sip_code), "sip_status": sip_status})
    assert error["msg"] == f"sip status: {sip_code}: {sip_status}"


def test_sip_error_meta_values_are_strings(sandbox: Sandbox) -> None:
    body = {"room_name": "r1", "sip_call_to": "+12025550177", "sip_trunk_id": TRUNK, "wait_until_answered": True}
    status, _, response = asyncio.run(post(sandbox, "livekit.SIP/CreateSIPParticipant", json.dumps(body).encode(),
                                           "application/json", token(sip=api.SIPGrants(call=True))))
    meta = json.loads(response)["meta"]
    assert status == 429 and (meta["sip_status_code"], meta["sip_status"]) == ("486", "Busy Here")


# -- faults -------------------------------------------------------------------------------


def test_api_error_rate_refuses_before_doing_anything(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox({**SCENARIO, "faults": {"api_error_rate": 1.0}})
    error = dial_error(sandbox, "+12025550100")
    assert (error.code, error.status, sandbox.calls()) == ("unavailable", 503, [])


def test_error_after_rate_dials_and_then_answers_503(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox({**SCENARIO, "faults": {"error_after_rate": 1.0}})
    error = dial_error(sandbox, "+12025550171")
    [record] = sandbox.calls()
    assert (error.code, record.answered_at is not None, record.api_error_after) == ("unavailable", True, True)


def test_latency_delays_every_call(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox({**SCENARIO, "faults": {"latency_s": 0.2}})
    started = time.monotonic()
    room_names(sandbox)
    assert time.monotonic() - started >= 0.2


def test_faults_can_be_changed_over_http(sandbox: Sandbox) -> None:
    request = urllib.request.Request(f"{sandbox.url}/sandbox/faults", method="PUT",
                                     data=b'{"api_error_rate": 1.0, "seed": 1}')
    urllib.request.urlopen(request, timeout=5).close()
    with pytest.raises(api.ServerError) as caught:
        room_names(sandbox)
    assert caught.value.code == "unavailable"


def test_stop_cancels_calls_in_progress(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    dial(sandbox, "+12025550171")
    sandbox.run(sandbox.server.stop())
    assert sandbox.calls()[0].end_reason == "server_stopped"


# -- serve() ------------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``serve()`` in a child process, as ``dialer sandbox serve`` runs it; yields it and its URL."""
    code = f"from dialer.sandbox import serve; serve('127.0.0.1', 0, None, {KEY!r}, {SECRET!r})"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def test_serve_prints_the_url_it_answers_on(served: tuple[subprocess.Popen[str], str]) -> None:
    _, url = served
    assert http_json(f"{url}/sandbox/health")["status"] == "ok"


def test_serve_exits_cleanly_on_sigterm(served: tuple[subprocess.Popen[str], str]) -> None:
    process, url = served
    http_json(f"{url}/sandbox/health")
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0


# -- scenario files -----------------------------------------------------------------------


def test_default_scenario_has_the_example_campaigns_rules() -> None:
    scenario = load_scenario()
    rules = {number: [o.value for o in rule.outcomes] for number, rule in scenario.numbers.items()}
    assert (scenario.ring_s, scenario.talk_s, len(rules)) == (0.3, 1.0, 18)
    assert rules["+12025550103"] == ["busy", "busy", "answer"]
    assert rules["+442079460002"] == ["busy", "answer"]
    assert [o.value for o in scenario.default.outcomes] == ["answer"]


def test_scenario_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text('ring_s: 0.1\nnumbers:\n  "+12025550142": [busy, answer]\n')
    assert [o.value for o in load_scenario(path).rule_for("+12025550142").outcomes] == ["busy", "answer"]


def test_bad_outcome_error_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text('numbers:\n  "+12025550142": [busy, bussy]\n')
    with pytest.raises(ScenarioError, match=r"numbers\.\+12025550142\.outcomes\[1\]"):
        load_scenario(path)


def test_unquoted_number_error_says_to_quote_it(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("numbers:\n  12025550142: [busy]\n")
    with pytest.raises(ScenarioError, match="quote numbers"):
        load_scenario(path)


def test_missing_scenario_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "nope.yaml")
