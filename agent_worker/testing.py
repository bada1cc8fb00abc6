"""Doubles for running the agent with no LiveKit server and no model provider.

- ``ScriptedLLM``: a ``livekit.agents.llm.LLM`` that answers each request with the next
  scripted reply (text and/or tool calls), for ``AgentSession`` in text mode.
- ``FakeRoom`` / ``FakeParticipant``: behave like ``rtc.Room`` and its participants for what
  the call and ``RoomIO`` use (events, ``remote_participants``, attributes, disconnects).
- ``RecordingControl``: a ``CallControl`` that records deleted rooms and transfers.
- ``dialed_attempt``: a real attempt in the ledger, ``dialing``, and its dispatch metadata.

Use them with ``livekit.agents.testing.fake_job_context(room=FakeRoom(...))``.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit import rtc
from livekit.agents import llm
from livekit.agents.llm import ChatChunk, ChatContext, ChoiceDelta, FunctionToolCall, LLMStream
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr

from dialer.models import AttemptState, CampaignState, DispatchMetadata
from dialer.store import Store

SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
STANDARD = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD


@dataclass
class Reply:
    """One scripted model turn."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def say(text: str) -> Reply:
    return Reply(text=text)


def call(name: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=[(name, arguments)])


class ScriptedLLM(llm.LLM):
    """Answers the n-th chat request with the n-th reply; an empty reply once the script runs out."""

    def __init__(self, replies: Iterable[Reply] = ()) -> None:
        super().__init__()
        self._replies: deque[Reply] = deque(replies)
        self._ids = itertools.count(1)
        #: The chat context of every request, in order.
        self.requests: list[ChatContext] = []

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "test"

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> LLMStream:
        self.requests.append(chat_ctx.copy())
        reply = self._replies.popleft() if self._replies else Reply()
        calls = [FunctionToolCall(name=name, arguments=json.dumps(args), call_id=f"call_{next(self._ids)}")
                 for name, args in reply.tool_calls]
        return _ScriptedStream(self, reply.text, calls, chat_ctx=chat_ctx, tools=tools or [],
                               conn_options=conn_options)


class _ScriptedStream(LLMStream):
    def __init__(self, llm_: ScriptedLLM, text: str, calls: list[FunctionToolCall], *, chat_ctx: ChatContext,
                 tools: list[llm.Tool], conn_options: APIConnectOptions) -> None:
        super().__init__(llm_, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._text = text
        self._calls = calls

    async def _run(self) -> None:
        if self._text:
            self._event_ch.send_nowait(ChatChunk(id="scripted", delta=ChoiceDelta(role="assistant",
                                                                                  content=self._text)))
        if self._calls:
            self._event_ch.send_nowait(ChatChunk(id="scripted", delta=ChoiceDelta(role="assistant",
                                                                                  tool_calls=self._calls)))


class FakeParticipant:
    """A remote participant: identity, kind, attributes, and why it left."""

    def __init__(self, identity: str, *, kind: rtc.ParticipantKind.ValueType = SIP,
                 attributes: dict[str, str] | None = None) -> None:
        self.identity = identity
        self.sid = f"PA_{identity}"
        self.name = identity
        self.kind = kind
        self.attributes: dict[str, str] = dict(attributes or {})
        self.state = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
        self.disconnect_reason: rtc.DisconnectReason.ValueType | None = None
        self.track_publications: dict[str, Any] = {}


class FakeLocalParticipant:
    def __init__(self, identity: str = "agent") -> None:
        self.identity = identity
        self.sid = f"PA_{identity}"
        self.name = identity
        self.kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        self.attributes: dict[str, str] = {}

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        self.attributes.update(attributes)


class FakeRoom(rtc.EventEmitter[str]):
    """Behaves like a connected ``rtc.Room`` for the events and lookups the agent uses."""

    def __init__(self, name: str = "dial-test-2-1") -> None:
        super().__init__()
        self.name = name
        self.metadata = ""
        self.remote_participants: dict[str, FakeParticipant] = {}
        self.local_participant = FakeLocalParticipant()
        self.connection_state = rtc.ConnectionState.CONN_CONNECTED

    def isconnected(self) -> bool:
        return self.connection_state == rtc.ConnectionState.CONN_CONNECTED

    def register_text_stream_handler(self, topic: str, handler: Any) -> None:
        pass

    def unregister_text_stream_handler(self, topic: str) -> None:
        pass

    # -- what the far end does ---------------------------------------------------------

    def join(self, participant: FakeParticipant) -> FakeParticipant:
        self.remote_participants[participant.identity] = participant
        self.emit("participant_connected", participant)
        self.emit("participant_active", participant)
        return participant

    def set_attributes(self, identity: str, **attributes: str) -> None:
        participant = self.remote_participants[identity]
        participant.attributes.update(attributes)
        self.emit("participant_attributes_changed", list(attributes), participant)

    def leave(self, identity: str, reason: rtc.DisconnectReason.ValueType) -> None:
        participant = self.remote_participants.pop(identity)
        participant.disconnect_reason = reason
        self.emit("participant_disconnected", participant)

    def close(self) -> None:
        """What deleting the room does: everyone is disconnected, then the agent."""
        for identity in list(self.remote_participants):
            self.leave(identity, rtc.DisconnectReason.ROOM_DELETED)
        if self.isconnected():
            self.connection_state = rtc.ConnectionState.CONN_DISCONNECTED
            self.emit("connection_state_changed", self.connection_state)
            self.emit("disconnected", rtc.DisconnectReason.ROOM_DELETED)


class RecordingControl:
    """A ``CallControl`` that records what the agent asked LiveKit to do."""

    def __init__(self, room: FakeRoom | None = None, *, transfer_error: Exception | None = None) -> None:
        self._room = room
        self._transfer_error = transfer_error
        self.deleted_rooms: list[str] = []
        self.transfers: list[tuple[str, str, str]] = []

    async def delete_room(self, room: str) -> None:
        self.deleted_rooms.append(room)
        if self._room is not None and self._room.name == room:
            self._room.close()

    async def transfer(self, room: str, identity: str, to: str) -> None:
        if self._transfer_error is not None:
            raise self._transfer_error
        self.transfers.append((room, identity, to))
        if self._room is not None and identity in self._room.remote_participants:
            self._room.leave(identity, rtc.DisconnectReason.CLIENT_INITIATED)

    async def aclose(self) -> None:
        pass


def dialed_attempt(store: Store, directory: Path, *, identity: str = "callee-2", **config: Any) -> DispatchMetadata:
    """A one-contact running campaign whose attempt is ``dialing``, and the metadata the dialer sends.

    ``config`` is the campaign config (``dispositions``, ``capture_fields``, ``transfer_number``...).
    """
    from dialer.config import parse_config
    from dialer.dialing import dispatch_metadata
    from dialer.ingest import ingest_file

    path = directory / f"agent-{len(list(directory.iterdir()))}.csv"
    path.write_text("phone,first_name,timezone\n202-555-0142,Ada,America/New_York\n")
    campaign = parse_config({"name": "agent test", **config})
    summary = ingest_file(store, path, campaign, max_bytes=2**20)
    cid = summary.campaign_id
    store.set_trunk(cid, "ST_test")
    store.set_state(cid, [CampaignState.DRAFT], CampaignState.RUNNING)
    now = time.time()
    [member] = store.queue_attempts(cid, "ST_test", [2], now=now, lease_s=60, max_concurrent=10,
                                    trunk_max_concurrent=0)
    store.transition(cid, member, [AttemptState.QUEUED], AttemptState.DIALING, 60)
    contact = store.contacts(cid, [2])[0] or {}
    seq = int(member.split(":")[1])
    return dispatch_metadata(cid, 2, seq, contact, campaign).model_copy(update={"participant_identity": identity})
