"""Doubles for running the agent with no LiveKit server and no model provider.

Each follows the real library's order of events, citing the file it imitates:

- ``ScriptedLLM`` / ``ScriptedTTS``: a ``livekit.agents`` LLM answering with scripted
  replies (text, tool calls, or a non-retryable error) and a TTS that returns a tone at once.
- ``FakeRoom``, ``FakeParticipant`` (a real ``rtc.RemoteParticipant`` with no native handle),
  ``FakeLocalParticipant``: the events of rtc/room.py in their order, attributes changes as a
  dict, disconnect reasons as the SDK reports them, a full reconnect, the agent's audio track
  subscribed only when a remote participant subscribes.
- ``SipCall``: the callee as livekit/sip puts it in the room (joins at ``dialing``, ``ringing``,
  ``active`` then subscribes, leaves on a failed INVITE, a retry rejoins with the same identity).
- ``RecordingControl``: a ``CallControl`` that records deleted rooms and transfers; after a
  transfer the callee leaves shortly, as livekit/sip hangs up its leg.
- ``JobRunner``: a job's life as ipc/job_proc_lazy_main.py runs it, shutdown sequence included.
- ``dialed_attempt``: a real attempt in the ledger, ``dialing``, and its dispatch metadata.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import struct
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit import rtc
from livekit.agents import APIStatusError, llm, tts
from livekit.agents.llm import ChatChunk, ChatContext, ChoiceDelta, FunctionToolCall, LLMStream
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.utils import aio
from livekit.rtc._proto import participant_pb2

from dialer.models import AttemptState, CampaignState, DispatchMetadata
from dialer.store import Store

SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
STANDARD = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD


@dataclass
class Reply:
    """One scripted model turn."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: The model fails this turn with a non-retryable API error.
    error: str = ""


def fail(message: str) -> Reply:
    return Reply(error=message)


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
        return _ScriptedStream(self, reply.text, calls, reply.error, chat_ctx=chat_ctx, tools=tools or [],
                               conn_options=conn_options)


class _ScriptedStream(LLMStream):
    def __init__(self, llm_: ScriptedLLM, text: str, calls: list[FunctionToolCall], error: str, *,
                 chat_ctx: ChatContext, tools: list[llm.Tool], conn_options: APIConnectOptions) -> None:
        super().__init__(llm_, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._text = text
        self._calls = calls
        self._error = error

    async def _run(self) -> None:
        if self._error:
            raise APIStatusError(self._error, status_code=500, retryable=False)
        if self._text:
            self._event_ch.send_nowait(ChatChunk(id="scripted", delta=ChoiceDelta(role="assistant",
                                                                                  content=self._text)))
        if self._calls:
            self._event_ch.send_nowait(ChatChunk(id="scripted", delta=ChoiceDelta(role="assistant",
                                                                                  tool_calls=self._calls)))


# -- the room as livekit (rtc) and livekit/sip show it to the agent ----------------------------

#: ``sip.callStatus`` as livekit/sip sets it (pkg/sip/participant.go, ``CallStatus.Attribute``).
DIALING, RINGING, ACTIVE, HANGUP = "dialing", "ringing", "active", "hangup"
#: What the agent's RoomIO publishes and livekit/sip subscribes to.
AUDIO = rtc.TrackKind.KIND_AUDIO
MICROPHONE = rtc.TrackSource.SOURCE_MICROPHONE
#: Audio of the simulated callee's track (livekit/sip publishes at 48 kHz, pkg/sip/room.go).
CALLEE_SAMPLE_RATE = 48000


class FakeTrackPublication:
    """A track publication with the fields RoomIO and AMD read (rtc/track_publication.py)."""

    def __init__(self, sid: str, name: str, track: Any, *, source: rtc.TrackSource.ValueType = MICROPHONE) -> None:
        self.sid = sid
        self.name = name
        self.kind = AUDIO
        self.source = source
        self.track = track
        self.muted = False
        self.audio_features: list[int] = []
        #: Remote publications: whether the agent subscribed (it auto-subscribes to audio).
        self.subscribed = False
        # LocalTrackPublication._first_subscription: resolved by the first remote subscriber
        self._first_subscription: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def wait_for_subscription(self) -> None:
        await asyncio.shield(self._first_subscription)


class FakeParticipant(rtc.RemoteParticipant):
    """A real ``rtc.RemoteParticipant`` built from its ``ParticipantInfo``, as rtc/room.py builds one.

    It has no native handle (handle 0 is never released), so every property is the SDK's own:
    ``attributes`` is a copy, ``disconnect_reason`` is ``None`` until it leaves and also when it
    left with ``UNKNOWN_REASON`` (0, the protobuf default), and ``isinstance`` checks in
    livekit-agents (AMD's attribute wait) see a remote participant. The room double changes
    ``_info`` the way rtc/room.py ``_on_room_event`` does.
    """

    def __init__(self, identity: str, *, kind: rtc.ParticipantKind.ValueType = SIP,
                 attributes: dict[str, str] | None = None) -> None:
        owned = participant_pb2.OwnedParticipant()
        owned.info.identity = identity
        owned.info.sid = f"PA_{identity}"
        owned.info.name = identity
        owned.info.kind = kind
        owned.info.state = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
        owned.info.attributes.update(attributes or {})
        super().__init__(owned)


class FakeTextWriter:
    """``rtc.TextStreamWriter``: what the agent's transcription output writes."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.chunks: list[str] = []
        self.closed = False

    async def write(self, text: str) -> None:
        self.chunks.append(text)

    async def aclose(self, *args: Any, **kwargs: Any) -> None:
        self.closed = True


class FakeLocalParticipant:
    """The agent in the room: publishes RoomIO's audio track (rtc/participant.py ``publish_track``)."""

    def __init__(self, room: FakeRoom, identity: str = "agent") -> None:
        self._room = room
        self.identity = identity
        self.sid = f"PA_{identity}"
        self.name = identity
        self.kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        self.attributes: dict[str, str] = {}
        self.track_publications: dict[str, FakeTrackPublication] = {}
        self.text_streams: list[FakeTextWriter] = []
        self._sids = itertools.count(1)

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        self.attributes.update(attributes)

    async def publish_track(self, track: Any, options: Any = None) -> FakeTrackPublication:
        publication = FakeTrackPublication(f"TR_{self.identity}_{next(self._sids)}", getattr(track, "name", ""), track)
        self.track_publications[publication.sid] = publication
        self._room.emit("local_track_published", publication, track)
        self._room._offer_to_subscribers(publication)
        return publication

    async def unpublish_track(self, sid: str) -> None:
        self.track_publications.pop(sid, None)

    async def publish_transcription(self, transcription: Any) -> None:
        pass

    async def stream_text(self, *, topic: str = "", **kwargs: Any) -> FakeTextWriter:
        writer = FakeTextWriter(topic)
        self.text_streams.append(writer)
        return writer


class FakeRoom(rtc.EventEmitter[str]):
    """A connected ``rtc.Room``, firing the events of rtc/room.py ``_on_room_event`` in their order.

    The agent joins with audio auto-subscribe (``AutoSubscribe.AUDIO_ONLY``), so a remote audio
    track is subscribed as soon as it is published. Remote participants that ``subscribe`` (a SIP
    participant after the answer) subscribe to the agent's audio tracks, now and later.
    """

    def __init__(self, name: str = "dial-test-2-1") -> None:
        super().__init__()
        self.name = name
        self.metadata = ""
        self.remote_participants: dict[str, FakeParticipant] = {}
        self.local_participant = FakeLocalParticipant(self)
        self.connection_state = rtc.ConnectionState.CONN_CONNECTED
        self._subscribers: set[str] = set()
        self._sources: list[rtc.AudioSource] = []

    def isconnected(self) -> bool:
        return self.connection_state == rtc.ConnectionState.CONN_CONNECTED

    def register_text_stream_handler(self, topic: str, handler: Any) -> None:
        pass

    def unregister_text_stream_handler(self, topic: str) -> None:
        pass

    async def disconnect(self, reason: rtc.DisconnectReason.ValueType = rtc.DisconnectReason.CLIENT_INITIATED) -> None:
        """rtc/room.py ``Room.disconnect``: a no-op when not connected, else the state flips, then ``disconnected``."""
        if not self.isconnected():
            return
        self._set_state(rtc.ConnectionState.CONN_DISCONNECTED)
        self.emit("disconnected", reason)

    async def aclose(self) -> None:
        """Release the native audio sources of simulated callees."""
        for source in self._sources:
            await source.aclose()
        self._sources.clear()

    # -- what the server tells the agent's SDK ---------------------------------------------

    def join(self, participant: FakeParticipant) -> FakeParticipant:
        """participant_connected, participant_active, then each of its tracks published and subscribed."""
        self.remote_participants[participant.identity] = participant
        self.emit("participant_connected", participant)
        self.emit("participant_active", participant)
        for publication in participant.track_publications.values():
            self._remote_track_published(publication, participant)  # type: ignore[arg-type]
        return participant

    def publish_callee_track(self, participant: FakeParticipant) -> FakeTrackPublication:
        """A real native audio track stands in for the callee's remote track (RoomIO reads frames from it)."""
        source = rtc.AudioSource(CALLEE_SAMPLE_RATE, 1)
        self._sources.append(source)
        track = rtc.LocalAudioTrack.create_audio_track(participant.identity, source)
        publication = FakeTrackPublication(f"TR_{participant.identity}_{len(self._sources)}", participant.identity,
                                           track)
        participant._track_publications[publication.sid] = publication  # type: ignore[assignment]
        if participant.identity in self.remote_participants:
            self._remote_track_published(publication, participant)
        return publication

    def _remote_track_published(self, publication: FakeTrackPublication, participant: FakeParticipant) -> None:
        self.emit("track_published", publication, participant)
        # AutoSubscribe.AUDIO_ONLY: the agent's SDK subscribes to every audio track at once
        publication.subscribed = True
        self.emit("track_subscribed", publication.track, publication, participant)

    def set_attributes(self, identity: str, **attributes: str) -> None:
        """participant_attributes_changed with a dict of the changed attributes, as rtc/room.py emits it."""
        participant = self.remote_participants[identity]
        participant._info.attributes.update(attributes)
        self.emit("participant_attributes_changed", dict(attributes), participant)

    def leave(self, identity: str,
              reason: rtc.DisconnectReason.ValueType = rtc.DisconnectReason.UNKNOWN_REASON) -> None:
        participant = self.remote_participants.pop(identity)
        participant._info.disconnect_reason = reason
        participant._info.state = rtc.ParticipantState.PARTICIPANT_STATE_DISCONNECTED
        self._subscribers.discard(identity)
        self.emit("participant_disconnected", participant)

    def subscribe(self, identity: str) -> None:
        """A remote participant subscribes to the agent's audio (livekit/sip pkg/sip/room.go ``Subscribe``)."""
        self._subscribers.add(identity)
        for publication in self.local_participant.track_publications.values():
            self._offer_to_subscribers(publication)

    def _offer_to_subscribers(self, publication: FakeTrackPublication) -> None:
        # rtc/room.py local_track_subscribed: the publication's first subscription resolves, then the event
        if not self._subscribers or publication.subscribed:
            return
        publication.subscribed = True
        if not publication._first_subscription.done():
            publication._first_subscription.set_result(None)
        self.emit("local_track_subscribed", publication.track)

    def reconnect_starts(self) -> list[FakeParticipant]:
        """A full reconnect: participant_disconnected for every remote participant, then ``reconnecting``."""
        gone = list(self.remote_participants.values())
        for participant in gone:
            self.leave(participant.identity)
        self._set_state(rtc.ConnectionState.CONN_RECONNECTING)
        self.emit("reconnecting")
        return gone

    def reconnect_ends(self, participants: Iterable[FakeParticipant]) -> None:
        """``reconnected``, then the participants again (new objects, same identities and attributes)."""
        self._set_state(rtc.ConnectionState.CONN_CONNECTED)
        self.emit("reconnected")
        for old in participants:
            again = FakeParticipant(old.identity, kind=old.kind, attributes=old.attributes)
            again._track_publications = dict(old.track_publications)
            subscribed = old.identity in self._subscribers
            self.join(again)
            if subscribed:
                self.subscribe(again.identity)

    def connection_lost(self) -> None:
        """A reconnect that fails for good: the reconnect's events, then ``disconnected``."""
        self.reconnect_starts()
        self._set_state(rtc.ConnectionState.CONN_DISCONNECTED)
        self.emit("disconnected", rtc.DisconnectReason.SIGNAL_CLOSE)

    def close(self) -> None:
        """What deleting the room does: everyone is disconnected, then the agent."""
        for identity in list(self.remote_participants):
            self.leave(identity, rtc.DisconnectReason.ROOM_DELETED)
        if self.isconnected():
            self._set_state(rtc.ConnectionState.CONN_DISCONNECTED)
            self.emit("disconnected", rtc.DisconnectReason.ROOM_DELETED)

    def _set_state(self, state: rtc.ConnectionState.ValueType) -> None:
        self.connection_state = state
        self.emit("connection_state_changed", state)


class SipCall:
    """One outbound call as livekit/sip places it in the room (pkg/sip/outbound.go, pkg/sip/room.go).

    ``dial``: the callee participant joins with ``sip.callStatus`` ``dialing`` and publishes its
    audio track before the INVITE goes out (``connectToRoom``, ``NewParticipantTrack``); it joins
    with auto-subscribe off, so it hears nobody yet. ``ringing``: the first 18x response.
    ``answer``: ``active`` (``dialSIP``), then it subscribes to the agent's audio
    (``connectSIP`` -> ``Subscribe``). ``fail``: the INVITE failed; it leaves with the reason of
    ``CallStatus.DisconnectReason`` (busy -> USER_REJECTED, no answer -> USER_UNAVAILABLE, a
    carrier 5xx -> UNKNOWN_REASON) and no ``sip.callStatus`` change. ``hang_up``: a BYE;
    ``hangup``, then it leaves CLIENT_INITIATED. A retry calls ``dial`` again: same identity.
    """

    def __init__(self, room: FakeRoom, identity: str, *, sip_call_id: str = "SCL_test123",
                 clock: Callable[[], float] = time.time) -> None:
        self.room = room
        self.identity = identity
        self.sip_call_id = sip_call_id
        self._clock = clock
        #: When ``sip.callStatus`` last became ``active``.
        self.answered_at: float | None = None

    @property
    def participant(self) -> FakeParticipant | None:
        return self.room.remote_participants.get(self.identity)

    def dial(self) -> FakeParticipant:
        participant = FakeParticipant(self.identity, attributes={"sip.callStatus": DIALING,
                                                                 "sip.callID": self.sip_call_id,
                                                                 "sip.phoneNumber": "+12025550142"})
        self.room.publish_callee_track(participant)
        return self.room.join(participant)

    def ringing(self) -> None:
        self.room.set_attributes(self.identity, **{"sip.callStatus": RINGING})

    def answer(self) -> None:
        self.answered_at = self._clock()
        self.room.set_attributes(self.identity, **{"sip.callStatus": ACTIVE})
        self.room.subscribe(self.identity)

    def fail(self, reason: rtc.DisconnectReason.ValueType = rtc.DisconnectReason.UNKNOWN_REASON) -> None:
        self.room.leave(self.identity, reason)

    def hang_up(self) -> None:
        self.room.set_attributes(self.identity, **{"sip.callStatus": HANGUP})
        self.room.leave(self.identity, rtc.DisconnectReason.CLIENT_INITIATED)


class RecordingControl:
    """A ``CallControl`` that records what the agent asked LiveKit to do.

    A transfer returns once the REFER was accepted; ``transfer_hangup_after_s`` later livekit/sip
    ends the call leg itself (pkg/sip/outbound.go ``transferCall``: ``referByeTimeout``, then
    ``CloseWith(CallHangup)``): ``hangup``, then the participant leaves CLIENT_INITIATED.
    """

    def __init__(self, room: FakeRoom | None = None, *, transfer_error: Exception | None = None,
                 transfer_hangup_after_s: float = 1.0, delete_delay_s: float = 0.0) -> None:
        self._room = room
        self._transfer_error = transfer_error
        self._hangup_after_s = transfer_hangup_after_s
        self._delete_delay_s = delete_delay_s
        self.deleted_rooms: list[str] = []
        self.transfers: list[tuple[str, str, str]] = []

    async def delete_room(self, room: str) -> None:
        if self._delete_delay_s:
            await asyncio.sleep(self._delete_delay_s)  # a slow LiveKit API
        self.deleted_rooms.append(room)
        if self._room is not None and self._room.name == room:
            self._room.close()

    async def transfer(self, room: str, identity: str, to: str) -> None:
        if self._transfer_error is not None:
            raise self._transfer_error
        self.transfers.append((room, identity, to))
        if self._room is not None:
            asyncio.get_running_loop().call_later(self._hangup_after_s, self._leg_ends, identity)

    def _leg_ends(self, identity: str) -> None:
        if self._room is not None and identity in self._room.remote_participants:
            SipCall(self._room, identity).hang_up()

    async def aclose(self) -> None:
        pass


@dataclass
class _Shutdown:
    reason: str
    user_initiated: bool


class JobRunner:
    """Runs an entrypoint the way livekit-agents runs a job (ipc/job_proc_lazy_main.py).

    The job ends when the entrypoint calls ``ctx.shutdown``, the room disconnects, or the
    worker asks (``request_shutdown``: ``AgentServer.aclose()``, a drain, a dev reload). Then,
    in this order: wait for the entrypoint up to ``entrypoint_wait_s`` (15 s in the real
    ``_shutdown_job``), cancel it, close the primary ``AgentSession`` (close reason
    USER_INITIATED), disconnect the room, and run every shutdown callback with the reason.
    """

    def __init__(self, room: FakeRoom, metadata: str, *, entrypoint_wait_s: float = 15.0) -> None:
        self.room = room
        self.metadata = metadata
        self.entrypoint_wait_s = entrypoint_wait_s
        self.shutdown_reasons: list[str] = []
        self.entrypoint: asyncio.Task[None] | None = None
        self.ctx: Any = None
        #: Set once every shutdown callback has returned.
        self.finished = asyncio.Event()
        self._shutdown: asyncio.Future[_Shutdown] = asyncio.get_running_loop().create_future()

    def request_shutdown(self, reason: str = "parent process shutdown") -> None:
        self._resolve(_Shutdown(reason, user_initiated=False))

    async def run(self, entrypoint: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
        from livekit.agents.testing import fake_job_context

        with fake_job_context(room=self.room, job_metadata=self.metadata) as ctx:  # type: ignore[arg-type]
            self.ctx = ctx
            ctx.shutdown = self._on_ctx_shutdown  # type: ignore[method-assign]  # JobContext.shutdown -> on_shutdown of the job process
            self.room.on("disconnected", self._on_room_disconnected)
            self.entrypoint = asyncio.create_task(entrypoint(ctx), name="job_user_entrypoint")
            try:
                shutdown = await self._shutdown
                await self._shutdown_job(shutdown)
            finally:
                if not self.entrypoint.done():
                    await aio.cancel_and_wait(self.entrypoint)
                self.finished.set()

    def _on_ctx_shutdown(self, reason: str = "user requested") -> None:
        self.shutdown_reasons.append(reason)
        self._resolve(_Shutdown(reason or "user requested", user_initiated=True))

    def _on_room_disconnected(self, *args: Any) -> None:
        self._resolve(_Shutdown("room disconnected", user_initiated=False))

    def _resolve(self, shutdown: _Shutdown) -> None:
        if not self._shutdown.done():
            self._shutdown.set_result(shutdown)

    async def _shutdown_job(self, shutdown: _Shutdown) -> None:
        assert self.entrypoint is not None
        if not self.entrypoint.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.entrypoint), timeout=self.entrypoint_wait_s)
            except TimeoutError:
                await aio.cancel_and_wait(self.entrypoint)
            except Exception:
                pass
        if (session := self.ctx._primary_agent_session) is not None:
            await asyncio.wait_for(session.aclose(), timeout=60.0)
        await self.room.disconnect()
        await asyncio.gather(*(callback(shutdown.reason) for callback in self.ctx._shutdown_callbacks))


class ScriptedTTS(tts.TTS):
    """Speaks every text as ``seconds_per_char`` of a quiet tone per character, after ``delay_s`` of model time."""

    def __init__(self, *, seconds_per_char: float = 0.004, delay_s: float = 0.0, sample_rate: int = 24000) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=sample_rate, num_channels=1)
        self.seconds_per_char = seconds_per_char
        self.delay_s = delay_s
        #: Every text it was asked to speak, in order.
        self.texts: list[str] = []

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "test"

    def synthesize(self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
                   ) -> tts.ChunkedStream:
        self.texts.append(text)
        return _ScriptedSpeech(tts=self, input_text=text, conn_options=conn_options)


class _ScriptedSpeech(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        voice = self._tts
        assert isinstance(voice, ScriptedTTS)
        output_emitter.initialize(request_id=f"scripted-{id(self)}", sample_rate=voice.sample_rate, num_channels=1,
                                  mime_type="audio/pcm")
        if voice.delay_s:
            await asyncio.sleep(voice.delay_s)  # the model's own time
        samples = max(1, int(len(self._input_text) * voice.seconds_per_char * voice.sample_rate))
        output_emitter.push(_tone(samples, voice.sample_rate))
        output_emitter.flush()


def _tone(samples: int, sample_rate: int) -> bytes:
    """A quiet 440 Hz tone, 16-bit little-endian mono."""
    step = 2 * math.pi * 440 / sample_rate
    return b"".join(struct.pack("<h", int(1000 * math.sin(step * n))) for n in range(samples))


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
