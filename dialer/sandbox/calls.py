"""Simulated outbound SIP calls, one task per INVITE, as LiveKit SIP runs them.

The callee's participant joins the room at once with ``sip.callStatus`` ``dialing``,
turns ``ringing``, and then either fails (it leaves the room and the dial returns
the SIP error) or turns ``active``. An answered call talks for a while, reports a
``SimulatedConversation`` to the conversation sink as the agent would report its
result, and deletes the room as the agent does. Every INVITE is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from livekit.protocol import models, sip

from .records import (
    DEFAULT_DISPOSITIONS,
    TRANSCRIPTS,
    CallRecord,
    CallStatus,
    ConversationSink,
    SimulatedConversation,
)
from .rooms import RoomStore, new_id
from .scenario import Rule, Scenario, SimOutcome
from .twirp import TwirpError, sip_error

log = logging.getLogger(__name__)

#: Seconds a call shows ``dialing`` before it rings (capped at half of ring_s).
DIALING_S = 0.02
#: Talk time of a ``hangup_early`` callee.
HANGUP_EARLY_TALK_S = 0.05
#: A ``slow`` callee answers this long after the request's ringing timeout, which is
#: after the client gave up (livekit-api waits ringing timeout + 2 s).
SLOW_MARGIN_S = 3.0
#: LiveKit SIP's ring window when a request does not set ringing_timeout.
DEFAULT_RINGING_TIMEOUT_S = 30.0
#: The participant attribute the dialer puts its attempt number in.
ATTEMPT_ATTRIBUTE = "dialer.attempt"


@dataclass(eq=False)
class SipCall:
    record: CallRecord
    outcome: SimOutcome
    rule: Rule
    ring_s: float
    talk_s: float
    participant: models.ParticipantInfo
    #: Resolves when the call is answered; fails with the dial's TwirpError.
    result: asyncio.Future[None]
    hangup: asyncio.Event = field(default_factory=asyncio.Event)
    end_reason: str = ""
    dispatch_metadata: str | None = None


def mask(number: str) -> str:
    """A phone number safe for logs: +1202*****42."""
    return number[:5] + "*" * max(0, len(number) - 7) + number[-2:] if len(number) > 7 else "***"


class CallSimulator:
    """Runs the simulated calls and owns the INVITE log; ends calls when rooms go away."""

    def __init__(self, rooms: RoomStore, scenario: Scenario,
                 conversation_sink: ConversationSink | None = None) -> None:
        self.rooms = rooms
        self.scenario = scenario
        self.sink = conversation_sink
        self.records: list[CallRecord] = []
        self._invites: Counter[str] = Counter()
        self._live: dict[str, SipCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def in_progress(self) -> int:
        return len(self._live)

    def clear(self) -> int:
        """Forget the call log and the per-number INVITE counts; returns how many were logged."""
        count = len(self.records)
        self.records.clear()
        self._invites.clear()
        return count

    # -- dialing --------------------------------------------------------------------

    def dial(self, request: sip.CreateSIPParticipantRequest, request_id: str = "") -> SipCall:
        """Send the INVITE: the participant joins now and the call goes on in a task."""
        if self._closed:
            raise TwirpError("unavailable", "server shutting down")
        _validate(request)
        number = request.sip_call_to
        room = self.rooms.get(request.room_name) or self.rooms.create(request.room_name)
        identity = request.participant_identity or f"sip_{number}"
        rule = self.scenario.rule_for(number)
        self._invites[number] += 1
        invite = self._invites[number]
        outcome = rule.outcome(invite)
        sip_call_id = new_id("SCL_")
        now = time.time()
        attributes = dict(request.participant_attributes)
        attributes.update({"sip.callID": sip_call_id, "sip.trunkID": request.sip_trunk_id,
                           "sip.callStatus": CallStatus.DIALING.value})
        if not request.hide_phone_number:
            attributes["sip.phoneNumber"] = number
            if request.sip_number:
                attributes["sip.trunkPhoneNumber"] = request.sip_number
        participant = models.ParticipantInfo(
            sid=new_id("PA_"), identity=identity, name=request.participant_name,
            metadata=request.participant_metadata, state=models.ParticipantInfo.State.ACTIVE,
            kind=models.ParticipantInfo.Kind.SIP, joined_at=int(now), joined_at_ms=int(now * 1000),
            attributes=attributes,
        )
        ringing_timeout_s = DEFAULT_RINGING_TIMEOUT_S
        if request.HasField("ringing_timeout"):
            set_s = request.ringing_timeout.seconds + request.ringing_timeout.nanos / 1e9
            ringing_timeout_s = set_s if set_s > 0 else DEFAULT_RINGING_TIMEOUT_S
        record = CallRecord(
            number=number, room=room.name, participant_identity=identity,
            attempt=_attempt(attributes.get(ATTEMPT_ATTRIBUTE)), trunk_id=request.sip_trunk_id,
            from_number=request.sip_number, started_at=now, outcome=outcome.value,
            sip_call_id=sip_call_id, participant_sid=participant.sid, invite=invite,
            request_id=request_id, wait_until_answered=request.wait_until_answered,
            ringing_timeout_s=ringing_timeout_s, dtmf=request.dtmf,
        )
        loop = asyncio.get_running_loop()
        call = SipCall(record=record, outcome=outcome, rule=rule, ring_s=self.scenario.ring_s_of(rule),
                       talk_s=self.scenario.talk_s_of(rule), participant=participant,
                       result=loop.create_future())
        call.result.add_done_callback(_retrieve)
        replaced = self.rooms.join(room, participant)
        if replaced is not None:
            self._hang_up_participant(room.name, replaced.sid, "duplicate_identity")
        self.records.append(record)
        self._live[sip_call_id] = call
        log.info("INVITE %s in room %s: %s (invite %d)", mask(number), room.name, outcome.value,
                 invite, extra={"call_id": sip_call_id})
        task = loop.create_task(self._run(call), name=f"sandbox-call-{sip_call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return call

    async def wait_answered(self, call: SipCall) -> None:
        """Return when ``call`` is answered; raise its TwirpError when it fails."""
        await asyncio.shield(call.result)

    # -- ending calls from outside ----------------------------------------------------

    def delete_room(self, name: str) -> bool:
        """Delete a room and end every call in it; False when there was no such room."""
        if self.rooms.delete(name) is None:
            return False
        for call in list(self._live.values()):
            if call.record.room == name:
                self._hang_up(call, "room_deleted")
        return True

    def participant_removed(self, room: str, participant: models.ParticipantInfo) -> None:
        self._hang_up_participant(room, participant.sid, "participant_removed")

    def transfer(self, room: str, identity: str, transfer_to: str) -> sip.TransferSIPParticipantResponse:
        """A SIP REFER of an answered call: the call leaves LiveKit for ``transfer_to``."""
        state = self.rooms.get(room)
        participant = state.participants.get(identity) if state else None
        if participant is None:
            raise TwirpError("not_found", "participant does not exist")
        call = self._live.get(participant.attributes.get("sip.callID", ""))
        if call is None:
            raise TwirpError("invalid_argument", "no SIP session associated with participant")
        if call.record.answered_at is None:
            raise TwirpError("failed_precondition", "can't transfer non established call")
        call.record.transferred_to = transfer_to
        self._hang_up(call, "transferred")
        return sip.TransferSIPParticipantResponse(
            transfer_id=new_id("STR_"), status=sip.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL)

    async def close(self) -> None:
        """Cancel every call in progress (server shutdown); no results are reported."""
        self._closed = True
        for call in self._live.values():
            call.record.end_reason = call.record.end_reason or "server_stopped"
            call.record.ended_at = call.record.ended_at or time.time()
            _settle(call, TwirpError("unavailable", "server shutting down"))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._live.clear()

    def _hang_up_participant(self, room: str, sid: str, reason: str) -> None:
        for call in list(self._live.values()):
            if call.record.room == room and call.participant.sid == sid:
                self._hang_up(call, reason)

    @staticmethod
    def _hang_up(call: SipCall, reason: str) -> None:
        if not call.hangup.is_set():
            call.end_reason = reason
            call.hangup.set()

    # -- the life of one call -----------------------------------------------------------

    async def _run(self, call: SipCall) -> None:
        dialing_s = min(DIALING_S, call.ring_s / 2)
        if await _hold(call, dialing_s):
            return self._cut_off(call)
        self._set_status(call, CallStatus.RINGING)
        call.record.ringing_at = time.time()
        if call.outcome is SimOutcome.SLOW:
            ring_s = call.record.ringing_timeout_s + SLOW_MARGIN_S
        else:
            ring_s = call.ring_s - dialing_s
        if await _hold(call, ring_s):
            return self._cut_off(call)
        if call.outcome is SimOutcome.NO_ANSWER:
            return self._fail(call, TwirpError("canceled", "sip request timed out"))
        response = call.outcome.sip_response
        if response is not None:
            return self._fail(call, sip_error(*response), response)
        self._answer(call)
        talk_s = HANGUP_EARLY_TALK_S if call.outcome is SimOutcome.HANGUP_EARLY else call.talk_s
        cut_short = await _hold(call, talk_s)
        await self._end_conversation(call, call.end_reason if cut_short else "completed")

    def _set_status(self, call: SipCall, status: CallStatus) -> None:
        call.participant.attributes["sip.callStatus"] = status.value
        call.record.call_status = status.value

    def _answer(self, call: SipCall) -> None:
        self._set_status(call, CallStatus.ACTIVE)
        call.participant.is_publisher = True
        call.record.answered_at = time.time()
        if call.record.dtmf:
            call.record.dtmf_played_at = call.record.answered_at + 0.5 * call.record.dtmf.count("w")
        room = self.rooms.get(call.record.room)
        call.dispatch_metadata = room.first_dispatch_metadata() if room else None
        log.info("call to %s answered (%s)", mask(call.record.number), call.outcome.value,
                 extra={"call_id": call.record.sip_call_id})
        _settle(call, None)

    def _fail(self, call: SipCall, error: TwirpError, response: tuple[int, str] | None = None) -> None:
        record = call.record
        if response is not None:
            record.sip_status_code, record.sip_status = response
        record.error_code = error.code
        self._finish(call, "failed")
        log.info("call to %s failed: %s", mask(record.number), error.msg,
                 extra={"call_id": record.sip_call_id})
        _settle(call, error)

    def _cut_off(self, call: SipCall) -> None:
        """The call ended before it was answered (room deleted, participant removed, ...)."""
        call.record.error_code = "canceled"
        self._finish(call, call.end_reason)
        _settle(call, TwirpError("canceled", f"call ended before it was answered: {call.end_reason}"))

    def _finish(self, call: SipCall, reason: str) -> None:
        """The callee is gone: log the end and take the participant out of the room."""
        self._live.pop(call.record.sip_call_id, None)
        call.record.ended_at = time.time()
        call.record.end_reason = reason
        self._set_status(call, CallStatus.HANGUP)
        self.rooms.leave(call.record.room, call.participant.identity, call.participant.sid)

    async def _end_conversation(self, call: SipCall, reason: str) -> None:
        self._finish(call, reason)
        record = call.record
        room = self.rooms.get(record.room)
        if call.dispatch_metadata is None and room is not None:
            call.dispatch_metadata = room.first_dispatch_metadata()
        kind = "answer" if call.outcome is SimOutcome.SLOW else call.outcome.value
        answered_at = record.answered_at or record.started_at
        ended_at = record.ended_at or time.time()
        conversation = SimulatedConversation(
            room=record.room, participant_identity=record.participant_identity, number=record.number,
            dispatch_metadata=call.dispatch_metadata, outcome=kind,
            disposition=call.rule.disposition or DEFAULT_DISPOSITIONS[kind], answered_at=answered_at,
            ended_at=ended_at, talk_s=round(ended_at - answered_at, 3),
            transcript=tuple(dict(line) for line in TRANSCRIPTS[kind]),
            sip_call_id=record.sip_call_id, end_reason=reason,
            callback_in_s=call.rule.callback_in_s if kind == "answer" else None,
        )
        if self.sink is not None:
            try:
                await self.sink(conversation)
            except Exception:
                log.exception("the conversation sink failed for room %s", record.room,
                              extra={"call_id": record.sip_call_id})
        self.delete_room(record.room)


async def _hold(call: SipCall, seconds: float) -> bool:
    """Wait ``seconds``; True when the call was hung up meanwhile."""
    if call.hangup.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(call.hangup.wait(), timeout=max(seconds, 0.0))
        return True
    return False


def _settle(call: SipCall, error: TwirpError | None) -> None:
    if call.result.done():
        return
    if error is None:
        call.result.set_result(None)
    else:
        call.result.set_exception(error)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a dial's error as seen: nobody awaits it when wait_until_answered is false."""
    if not future.cancelled():
        future.exception()


def _attempt(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def _validate(request: sip.CreateSIPParticipantRequest) -> None:
    """The checks LiveKit makes before dialing (livekit/protocol CreateSIPParticipantRequest.Validate)."""
    if not request.sip_trunk_id and not request.HasField("trunk") and not request.sip_number:
        raise TwirpError("invalid_argument", "missing sip trunk id and sip number")
    if not request.sip_call_to:
        raise TwirpError("invalid_argument", "missing sip callee number")
    if "@" in request.sip_call_to:
        raise TwirpError("invalid_argument",
                         "SipCallTo should be a phone number or SIP user, not a full SIP URI")
    if not request.room_name:
        raise TwirpError("invalid_argument", "missing room name")
