"""One outbound call, seen from the agent (DESIGN.md section 3, step 6; invariant I5).

    dispatch metadata ─► connect ─► wait for the dialed participant (by identity, with a timeout)
      ─► start the session bound to that identity ─► wait for sip.callStatus == "active"
      ─► who answered? (AMD) ─► greet, or leave a voicemail / hang up ─► converse ─► end

Every way out (the callee hangs up, the agent hangs up, a transfer, the time limit, an
error, the job shutting down) goes through ``_conclude``: the session is closed, at most
one result is written through ``dialer.dialing.finish_call`` and the room is deleted.
``_conclude`` runs from the entrypoint and again from the job's shutdown callback, so a
crash or a kill between the two still ends the call properly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from livekit import rtc
from livekit.agents import AgentSession, AutoSubscribe, CloseEvent, CloseReason, ConversationItemAddedEvent, JobContext
from livekit.agents.llm import ChatMessage, RealtimeModel
from livekit.agents.voice import SpeechHandle
from livekit.agents.voice.room_io import AudioInputOptions, RoomOptions
from pydantic import ValidationError

from dialer.dialing import mask
from dialer.models import CallResult, DispatchMetadata, Outcome
from dialer.settings import Settings
from dialer.store import Store

from . import prompts
from .agent import OutboundAgent
from .control import CallControl
from .ledger import CallLedger
from .record import CallEnd, CallRecord, EndReason
from .screening import Screener, Screening

log = logging.getLogger(__name__)
T = TypeVar("T")

SIP_CALL_STATUS = "sip.callStatus"
SIP_CALL_ID = "sip.callID"
CALL_ACTIVE = "active"
CALL_HANGUP = "hangup"

#: Bounds on the steps that talk to LiveKit or the models.
SESSION_START_TIMEOUT_S = 30.0
SESSION_CLOSE_TIMEOUT_S = 10.0
ROOM_DELETE_TIMEOUT_S = 10.0
#: The goodbye at the time limit starts this long before the limit.
GOODBYE_S = 10.0


@dataclass
class CallDeps:
    """What a call needs from its process; tests pass doubles."""

    settings: Settings
    store: Store
    control: CallControl
    new_session: Callable[[DispatchMetadata], AgentSession]
    screen: Screener
    #: False runs the session without audio or transcription tracks (text mode, for tests).
    media: bool = True
    clock: Callable[[], float] = field(default=time.time)
    #: Released after the job's last use of them (its shutdown callback).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in self.closers:
            try:
                await close()
            except Exception:
                log.warning("a client did not close cleanly", exc_info=True)


class _CallEnded(Exception):
    def __init__(self, end: CallEnd) -> None:
        super().__init__(end.reason.value)
        self.end = end


def room_options(identity: str, *, media: bool = True) -> RoomOptions:
    """Bind the session's input to the dialed participant and nobody else."""
    return RoomOptions(
        participant_identity=identity,
        text_input=False,
        audio_input=AudioInputOptions(pre_connect_audio=False) if media else False,
        audio_output=media,
        text_output=media,
        close_on_disconnect=True,
        delete_room_on_close=False,  # deleted by _conclude, after the result is written
    )


class OutboundCall:
    """Runs one dispatched call inside a livekit-agents job."""

    def __init__(self, ctx: JobContext, deps: CallDeps) -> None:
        self._ctx = ctx
        self._deps = deps
        self._room = ctx.room
        loop = asyncio.get_running_loop()
        self._ended: asyncio.Future[CallEnd] = loop.create_future()
        self._joined: asyncio.Future[rtc.RemoteParticipant] = loop.create_future()
        self._answered = asyncio.Event()
        self._conclude_lock = asyncio.Lock()
        self._metadata: DispatchMetadata | None = None
        self._record: CallRecord | None = None
        self._ledger: CallLedger | None = None
        self._session: AgentSession | None = None
        self._identity = ""
        self._room_deleted = False
        self._watching = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: list[asyncio.TimerHandle] = []

    # -- the entrypoint ----------------------------------------------------------------

    async def run(self) -> None:
        self._ctx.add_shutdown_callback(self._on_job_shutdown)
        metadata, problem = self._parse_metadata()
        if metadata is None:
            await self._reject(problem)
            return
        self._metadata = metadata
        self._record = CallRecord.for_call(metadata)
        self._ledger = CallLedger(self._deps.store, metadata.call_id, metadata.phone_e164)
        self._ctx.log_context_fields = {"call_id": metadata.call_id}
        try:
            end = await self._run(metadata)
        except _CallEnded as ended:
            end = ended.end
        except Exception as exc:
            log.exception("call failed", extra=self._extra)
            end = self.end(EndReason.ERROR, f"{type(exc).__name__}: {exc}")
        await self._conclude(end)
        self._ctx.shutdown(f"call ended: {end.reason.value}")

    async def _run(self, metadata: DispatchMetadata) -> CallEnd:
        identity = metadata.participant_identity
        self._watch_room(identity)
        await self._ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
        self._check_present(identity)
        try:
            callee = await self._until_ended(self._joined, self._deps.settings.agent_participant_timeout_s)
        except TimeoutError:
            return self.end(EndReason.NO_PARTICIPANT,
                            f"the dialed participant {identity} did not join within "
                            f"{self._deps.settings.agent_participant_timeout_s:g} s")
        log.info("callee %s joined (%s)", identity, mask(metadata.phone_e164), extra=self._extra)

        session = self._deps.new_session(metadata)
        self._session = session
        session.on("conversation_item_added", self._on_item_added)
        session.on("close", self._on_session_close)
        muted = self._deps.media and not self._answered.is_set()
        if muted:
            session.input.set_audio_enabled(False)  # ringback and early media stay out of the models
        assert self._record is not None and self._ledger is not None
        agent = OutboundAgent(metadata, self._record, self._ledger, self, clock=self._deps.clock)
        await self._until_ended(
            session.start(agent, room=self._room, room_options=room_options(identity, media=self._deps.media),
                          session_host=False),
            SESSION_START_TIMEOUT_S,
        )
        await self._until_ended(session.room_io.wait_for_ready(), SESSION_START_TIMEOUT_S)
        linked = session.room_io.linked_participant
        if linked is None or linked.identity != callee.identity:
            raise RuntimeError(f"the session is linked to {linked.identity if linked else 'nobody'}, "
                               f"not to {identity}")

        try:
            await self._until_ended(self._answered.wait(), self._deps.settings.agent_answer_timeout_s)
        except TimeoutError:
            return self.end(EndReason.NOT_ANSWERED, "the call was not answered")
        if muted:
            session.input.set_audio_enabled(True)
        self._arm_time_limit(metadata.max_call_duration_s)

        conversation = self._spawn(self._converse(session, metadata))
        racing: set[asyncio.Future[Any]] = {conversation, self._ended}
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        if conversation.done() and not conversation.cancelled():
            conversation.result()  # raises what went wrong in the conversation
        return await self._ended

    async def _converse(self, session: AgentSession, metadata: DispatchMetadata) -> None:
        """Decide who answered, then open the conversation or deal with the machine."""
        assert self._record is not None
        screening = await self._deps.screen(session, metadata.participant_identity)
        self._record.screening = screening
        if screening.is_machine:
            leave_message = metadata.voicemail_action == "leave_message" and metadata.voicemail_message.strip()
            if screening is Screening.VOICEMAIL and leave_message:
                await self._speak(session, metadata.voicemail_message)
                self._record.voicemail_left = True
                self._record.notes = self._record.notes or "left a voicemail message"
            self.end(EndReason.VOICEMAIL, screening.value)
            return
        if session.current_speech is None and metadata.greeting.strip():
            await self._speak(session, metadata.greeting)

    # -- CallActions, for the tools ---------------------------------------------------------

    async def hang_up(self) -> None:
        self.end(EndReason.AGENT_HUNG_UP)

    async def transfer(self, number: str) -> None:
        assert self._metadata is not None
        log.info("transferring the call", extra=self._extra)
        await self._deps.control.transfer(self._room.name, self._metadata.participant_identity, number)
        self.end(EndReason.TRANSFERRED, mask(number))

    # -- ending -------------------------------------------------------------------------

    def end(self, reason: EndReason, detail: str = "") -> CallEnd:
        """Mark the call as ended; the first reason wins. Returns the end that stands."""
        if not self._ended.done():
            self._ended.set_result(CallEnd(reason, self._deps.clock(), detail))
            log.info("call ending: %s %s", reason.value, detail, extra=self._extra)
        return self._ended.result()

    async def _on_job_shutdown(self, reason: str) -> None:
        """The job is ending, however it ends: finish the call if nothing else did, then let go."""
        try:
            await self._conclude(self.end(EndReason.SHUTDOWN, reason))
        finally:
            await self._deps.aclose()

    async def _conclude(self, end: CallEnd) -> None:
        """Close the session, write the result once, delete the room. Safe to call twice."""
        async with self._conclude_lock:
            final = self.end(end.reason, end.detail)  # the end that stands, if another came first
            for timer in self._timers:
                timer.cancel()
            await self._cancel_tasks()
            await self._close_session()
            await self._write_result(final)
            await self._delete_room()
            self._unwatch_room()

    async def _write_result(self, end: CallEnd) -> None:
        if self._record is None or self._ledger is None or self._ledger.written:
            return
        result = self._record.result(end)
        if result is None:
            log.info("call ended before it was answered (%s); the dialer reports it", end.detail or end.reason.value,
                     extra=self._extra)
            return
        try:
            await self._ledger.finish(result)
        except Exception:
            log.exception("could not write the call's result; the reconciler will settle it", extra=self._extra)

    async def _close_session(self) -> None:
        if self._session is None:
            return
        try:
            await asyncio.wait_for(self._session.aclose(), SESSION_CLOSE_TIMEOUT_S)
        except Exception:
            log.warning("the session did not close cleanly", exc_info=True, extra=self._extra)

    async def _delete_room(self) -> None:
        if self._room_deleted:
            return
        try:
            await asyncio.wait_for(self._deps.control.delete_room(self._room.name), ROOM_DELETE_TIMEOUT_S)
            self._room_deleted = True
        except Exception:
            log.warning("could not delete room %s; it closes itself once empty", self._room.name,
                        exc_info=True, extra=self._extra)

    # -- bad dispatch metadata ---------------------------------------------------------------

    def _parse_metadata(self) -> tuple[DispatchMetadata | None, str]:
        raw = self._ctx.job.metadata or ""
        try:
            return DispatchMetadata.model_validate_json(raw), ""
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'metadata'}: {err['msg']}"
                                for err in exc.errors())
        log.error("job %s has unusable dispatch metadata: %s", self._ctx.job.id, problem)
        return None, problem

    async def _reject(self, problem: str) -> None:
        """Report a dispatch the agent cannot serve, when its call id can be recovered, and leave."""
        call_id = _recover_call_id(self._ctx.job.metadata or "")
        if call_id is not None:
            result = CallResult(outcome=Outcome.FAILED, ended_at=self._deps.clock(),
                                error=f"bad dispatch metadata: {problem}")
            try:
                await CallLedger(self._deps.store, call_id, "").finish(result)
            except Exception:
                log.exception("could not report the bad dispatch metadata of %s", call_id)
        await self._delete_room()
        self._ctx.shutdown("bad dispatch metadata")

    # -- the room and the session ---------------------------------------------------------------

    def _watch_room(self, identity: str) -> None:
        self._identity = identity
        self._room.on("participant_connected", self._on_participant_connected)
        self._room.on("participant_attributes_changed", self._on_attributes_changed)
        self._room.on("participant_disconnected", self._on_participant_disconnected)
        self._room.on("disconnected", self._on_room_disconnected)
        self._watching = True

    def _unwatch_room(self) -> None:
        if not self._watching:
            return
        self._room.off("participant_connected", self._on_participant_connected)
        self._room.off("participant_attributes_changed", self._on_attributes_changed)
        self._room.off("participant_disconnected", self._on_participant_disconnected)
        self._room.off("disconnected", self._on_room_disconnected)
        self._watching = False

    def _check_present(self, identity: str) -> None:
        participant = self._room.remote_participants.get(identity)
        if participant is not None:
            self._on_participant_connected(participant)

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity != self._identity or self._joined.done():
            return
        self._joined.set_result(participant)
        self._on_call_status(participant)

    def _on_attributes_changed(self, changed: Any, participant: rtc.Participant) -> None:
        if participant.identity == self._identity:
            self._on_call_status(participant)

    def _on_call_status(self, participant: rtc.Participant) -> None:
        assert self._record is not None
        attributes = participant.attributes
        if attributes.get(SIP_CALL_ID):
            self._record.sip_call_id = attributes[SIP_CALL_ID]
        status = attributes.get(SIP_CALL_STATUS, "")
        if status == CALL_ACTIVE and not self._answered.is_set():
            self._record.answered_at = self._deps.clock()
            self._answered.set()
            log.info("call answered", extra=self._extra)
        elif status == CALL_HANGUP:
            self._callee_gone("sip.callStatus is hangup")

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self._identity:
            reason = participant.disconnect_reason
            self._callee_gone(f"left the room ({rtc.DisconnectReason.Name(reason) if reason else 'no reason'})")

    def _callee_gone(self, detail: str) -> None:
        answered = self._record is not None and self._record.answered
        self.end(EndReason.CALLEE_HUNG_UP if answered else EndReason.NOT_ANSWERED, detail)

    def _on_room_disconnected(self, *args: Any) -> None:
        answered = self._record is not None and self._record.answered
        self.end(EndReason.SHUTDOWN if answered else EndReason.NOT_ANSWERED, "the room closed")

    def _on_item_added(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if self._record is not None and isinstance(item, ChatMessage) and item.role in ("user", "assistant"):
            self._record.add_line(item.role, item.text_content or "")

    def _on_session_close(self, event: CloseEvent) -> None:
        if event.reason == CloseReason.ERROR:
            error = getattr(event.error, "error", event.error)
            self.end(EndReason.ERROR, f"the voice session failed: {error or 'unknown error'}")
        elif event.reason == CloseReason.PARTICIPANT_DISCONNECTED:
            self._callee_gone("the session closed on the callee's disconnect")
        elif event.reason == CloseReason.JOB_SHUTDOWN:
            self.end(EndReason.SHUTDOWN, "job shutdown")
        else:
            self.end(EndReason.AGENT_HUNG_UP, f"the session closed ({event.reason.value})")

    # -- speech and time ----------------------------------------------------------------------

    async def _speak(self, session: AgentSession, text: str) -> None:
        """Say ``text`` as written and wait until it has been played."""
        handle: SpeechHandle
        if isinstance(session.llm, RealtimeModel) and session.tts is None:
            handle = session.generate_reply(instructions=prompts.say_verbatim(text))
        else:
            handle = session.say(text)
        await handle.wait_for_playout()

    def _arm_time_limit(self, max_call_duration_s: float) -> None:
        loop = asyncio.get_running_loop()
        goodbye_at = max(0.0, max_call_duration_s - GOODBYE_S)
        self._timers.append(loop.call_later(goodbye_at, self._time_up))

    def _time_up(self) -> None:
        self._spawn(self._say_goodbye_and_end())

    async def _say_goodbye_and_end(self) -> None:
        session = self._session
        try:
            if session is not None:
                await session.interrupt()
                handle = session.generate_reply(instructions=prompts.OUT_OF_TIME)
                await asyncio.wait_for(handle.wait_for_playout(), GOODBYE_S)
        except Exception:
            log.warning("no goodbye at the time limit", exc_info=True, extra=self._extra)
        finally:
            self.end(EndReason.TIMEOUT)

    # -- helpers -----------------------------------------------------------------------------

    async def _until_ended(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        """Await ``awaitable``; raise _CallEnded if the call ends first, TimeoutError after ``timeout_s``."""
        waiter = asyncio.ensure_future(awaitable)
        racing: set[asyncio.Future[Any]] = {waiter, self._ended}
        try:
            await asyncio.wait(racing, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not waiter.done():
                waiter.cancel()
                await asyncio.gather(waiter, return_exceptions=True)
        if waiter.done() and not waiter.cancelled():
            return waiter.result()
        if self._ended.done():
            raise _CallEnded(self._ended.result())
        raise TimeoutError

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        pending = [task for task in self._tasks if task is not current and not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    @property
    def _extra(self) -> dict[str, str]:
        return {"call_id": self._metadata.call_id if self._metadata else ""}


def _recover_call_id(raw: str) -> str | None:
    """The call id of an otherwise unusable payload, when it has a well-formed one."""
    try:
        call_id = json.loads(raw).get("call_id")
        DispatchMetadata.parse_call_id(call_id)
    except (ValueError, TypeError, AttributeError):
        return None
    return call_id if isinstance(call_id, str) else None


async def run_call(ctx: JobContext, deps: CallDeps) -> None:
    """The job entrypoint's body: one dispatched call, start to finish."""
    await OutboundCall(ctx, deps).run()
