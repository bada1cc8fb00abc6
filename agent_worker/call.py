"""One outbound call, seen from the agent (DESIGN.md section 3 step 6, section 4b; invariant I5).

    dispatch metadata ─► connect ─► the dialed participant joins (by identity, ``dialing``)
      ─► start the session bound to that identity, and answering-machine detection with it
      ─► wait for sip.callStatus == "active" (the callee may leave and come back meanwhile)
      ─► wait until the callee hears the agent ─► greet, or leave a voicemail / hang up
      ─► converse ─► end

Who owns the room (DESIGN.md 4b): before the answer the dialer does. It may retry a failed
INVITE into the same room with the same identity, and it deletes the room on every failure
path, which ends this job through ``ROOM_DELETED``. So before the answer a callee that leaves
is not the end of the call; only the room going away or the answer timeout is. From the
answer on the agent owns the room: final disconnect reasons and ``sip.callStatus == hangup``
end the call at once; any other drop, and the agent's own reconnect, get a grace period.

Every way out (the callee hangs up, the agent hangs up, a transfer, the time limit, an error,
the job shutting down or cancelling the entrypoint) goes through one conclusion: the session is
closed, at most one result is written through ``dialer.dialing.finish_call`` and the room is
deleted. It runs once, as its own task, so a cancelled caller cannot cut it short, and inside
a time budget that ends before the worker kills the job process.
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

#: Disconnects of the callee that end an answered call at once (DESIGN.md 4b). Any other
#: reason, UNKNOWN_REASON above all (a media timeout, a reconnect), gets the grace period.
FINAL_REASONS = frozenset({
    rtc.DisconnectReason.CLIENT_INITIATED,
    rtc.DisconnectReason.USER_REJECTED,
    rtc.DisconnectReason.USER_UNAVAILABLE,
    rtc.DisconnectReason.SIP_TRUNK_FAILURE,
    rtc.DisconnectReason.ROOM_DELETED,
})

#: Bound on starting the session, and on the callee subscribing to the agent once answered.
SESSION_START_TIMEOUT_S = 30.0
SESSION_CLOSE_TIMEOUT_S = 10.0
ROOM_DELETE_TIMEOUT_S = 10.0
#: Left of the worker's process-kill timeout for the room disconnect and the process exit.
SHUTDOWN_MARGIN_S = 2.0
#: Never less than this for a shutdown's conclusion, however short the kill timeout.
MIN_SHUTDOWN_BUDGET_S = 0.5
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
    #: False runs the session without audio or transcription tracks (text mode).
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
    """Bind the session's input to the dialed participant and nobody else.

    The call, not RoomIO, decides what a disconnect of the callee means (DESIGN.md 4b), and
    deletes the room after the result is written.
    """
    return RoomOptions(
        participant_identity=identity,
        text_input=False,
        audio_input=AudioInputOptions(pre_connect_audio=False) if media else False,
        audio_output=media,
        text_output=media,
        close_on_disconnect=False,
        delete_room_on_close=False,
    )


def shutdown_budget_s(settings: Settings) -> float:
    """How long a conclusion during shutdown may take: less than the worker's process-kill timeout."""
    return max(MIN_SHUTDOWN_BUDGET_S, settings.agent_shutdown_timeout_s - SHUTDOWN_MARGIN_S)


def answer_timeout_s(settings: Settings, metadata: DispatchMetadata) -> float:
    """How long the agent waits for the answer: never less than the campaign lets the phone ring."""
    return max(settings.agent_answer_timeout_s, float(metadata.ring_timeout_s))


class OutboundCall:
    """Runs one dispatched call inside a livekit-agents job."""

    def __init__(self, ctx: JobContext, deps: CallDeps) -> None:
        self._ctx = ctx
        self._deps = deps
        self._room = ctx.room
        self._loop = asyncio.get_running_loop()
        # events, not bare futures: a cancelled waiter must not break them for everyone else
        self._ended = asyncio.Event()
        self._end: CallEnd | None = None
        self._present = asyncio.Event()
        self._answered = asyncio.Event()
        self._metadata: DispatchMetadata | None = None
        self._record: CallRecord | None = None
        self._ledger: CallLedger | None = None
        self._session: AgentSession | None = None
        self._closing_session = False
        self._screened_early = False
        self._identity = ""
        self._room_deleted = False
        self._reconnecting = False
        self._grace: asyncio.TimerHandle | None = None
        self._watching = False
        self._concluding: asyncio.Task[None] | None = None
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
        except asyncio.CancelledError:
            # the framework cancels the entrypoint on a drain timeout, AgentServer.aclose() or a
            # dev reload, and only then closes the session and the room: finish the call first
            self.end(EndReason.SHUTDOWN, "the job was cancelled")
            await self._finish(shutdown_budget_s(self._deps.settings))
            raise
        except Exception as exc:
            log.exception("call failed", extra=self._extra)
            end = self.end(EndReason.ERROR, f"{type(exc).__name__}: {exc}")
        await self._finish(self._full_budget_s)
        self._ctx.shutdown(f"call ended: {end.reason.value}")

    async def _run(self, metadata: DispatchMetadata) -> CallEnd:
        identity = metadata.participant_identity
        settings = self._deps.settings
        self._watch_room(identity)
        await self._ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
        self._check_present(identity)
        try:
            await self._until_ended(self._present.wait(), settings.agent_participant_timeout_s)
        except TimeoutError:
            return self.end(EndReason.NO_PARTICIPANT,
                            f"the dialed participant {identity} did not join within "
                            f"{settings.agent_participant_timeout_s:g} s")
        log.info("callee %s joined (%s)", identity, mask(metadata.phone_e164), extra=self._extra)
        answer_by = self._loop.time() + answer_timeout_s(settings, metadata)

        session = self._deps.new_session(metadata)
        self._session = session
        session.on("conversation_item_added", self._on_item_added)
        session.on("close", self._on_session_close)
        assert self._record is not None and self._ledger is not None
        agent = OutboundAgent(metadata, self._record, self._ledger, self, clock=self._deps.clock)
        await self._until_ended(
            session.start(agent, room=self._room, room_options=room_options(identity, media=self._deps.media),
                          session_host=False),
            SESSION_START_TIMEOUT_S,
        )
        muted = self._deps.media and not self._answered.is_set()
        if muted:
            session.input.set_audio_enabled(False)  # ringback and early media stay out of the models
        # answering-machine detection starts with the session and waits for "active" itself,
        # so the callee's first words after the answer reach it
        screening: asyncio.Task[Screening] = self._spawn(_awaited(self._deps.screen(session, identity)))
        screening.add_done_callback(self._on_screened)
        self._link(session, identity)

        try:
            await self._until_ended(self._answered.wait(), max(0.0, answer_by - self._loop.time()))
        except TimeoutError:
            return self.end(EndReason.NOT_ANSWERED,
                            f"the call was not answered within {answer_timeout_s(settings, metadata):g} s")
        # with audio output, ready means the callee subscribed to the agent's track, which
        # livekit/sip does only once the call is answered
        ready = self._spawn(session.room_io.wait_for_ready())
        await self._until_ended(asyncio.shield(ready), SESSION_START_TIMEOUT_S)
        linked = session.room_io.linked_participant
        if linked is None or linked.identity != identity:
            raise RuntimeError(f"the session is linked to {linked.identity if linked else 'nobody'}, "
                               f"not to {identity}")
        if muted:
            session.input.set_audio_enabled(True)
        self._arm_time_limit(metadata.max_call_duration_s)

        conversation = self._spawn(self._converse(session, metadata, screening))
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({conversation, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if conversation.done() and not conversation.cancelled():
            conversation.result()  # raises what went wrong in the conversation
        await self._ended.wait()
        assert self._end is not None
        return self._end

    def _on_screened(self, task: asyncio.Task[Screening]) -> None:
        self._screened_early = not self._answered.is_set()

    def _link(self, session: AgentSession, identity: str) -> None:
        """Link the session to the callee now; RoomIO relinks by itself when the identity comes back."""
        if identity in self._room.remote_participants:
            session.room_io.set_participant(identity)

    async def _converse(self, session: AgentSession, metadata: DispatchMetadata,
                        screening_task: asyncio.Task[Screening]) -> None:
        """Act on who answered: open the conversation, or deal with the machine."""
        assert self._record is not None
        screening = await screening_task
        if self._screened_early and screening is Screening.UNCERTAIN:
            # the detector gave up before the answer (the callee left, as before a retried INVITE)
            screening = await self._deps.screen(session, metadata.participant_identity)
        self._record.screening = screening
        if screening.is_machine:
            leave_message = metadata.voicemail_action == "leave_message" and metadata.voicemail_message.strip()
            if screening is Screening.VOICEMAIL and leave_message:
                await self._leave_voicemail(session, metadata.voicemail_message)
            self.end(EndReason.VOICEMAIL, screening.value)
            return
        if session.current_speech is None and metadata.greeting.strip():
            await self._speak(session, metadata.greeting)

    async def _leave_voicemail(self, session: AgentSession, message: str) -> None:
        """Speak the message whole: nothing interrupts it; a message cut short is recorded as such."""
        record = self._record
        assert record is not None
        handle = self._say(session, message, allow_interruptions=False)

        def settled(done: SpeechHandle) -> None:
            # runs however the speech ends, even when the call ends first and closes the session
            record.voicemail_left = not done.interrupted
            record.voicemail_cut_off = done.interrupted

        handle.add_done_callback(settled)
        await handle.wait_for_playout()

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
        if self._end is None:
            self._end = CallEnd(reason, self._deps.clock(), detail)
            self._ended.set()
            log.info("call ending: %s %s", reason.value, detail, extra=self._extra)
        return self._end

    async def _on_job_shutdown(self, reason: str) -> None:
        """The job is ending, however it ends: finish the call if nothing else did, then let go.

        The worker kills the job process ``agent_shutdown_timeout_s`` after it began to shut
        down, so everything here stays inside the shutdown budget.
        """
        budget_s = shutdown_budget_s(self._deps.settings)
        started = self._loop.time()
        try:
            self.end(EndReason.SHUTDOWN, reason)
            await self._finish(budget_s)
        finally:
            left_s = budget_s - (self._loop.time() - started)
            try:
                await asyncio.wait_for(self._deps.aclose(), max(MIN_SHUTDOWN_BUDGET_S, left_s))
            except TimeoutError:
                log.warning("clients did not close within the shutdown budget", extra=self._extra)

    async def _finish(self, budget_s: float) -> None:
        """Run the one conclusion to its end, even when the caller is cancelled meanwhile."""
        if self._concluding is None:
            self._concluding = asyncio.create_task(self._conclude(budget_s), name="call_conclusion")
        concluding = self._concluding
        try:
            await asyncio.shield(concluding)
        except asyncio.CancelledError:
            if not concluding.done():
                await asyncio.wait({concluding})  # bounded by its own budget
            raise

    async def _conclude(self, budget_s: float) -> None:
        """Close the session, write the result once, delete the room, all within ``budget_s``."""
        deadline = self._loop.time() + budget_s
        end = self._end or self.end(EndReason.ERROR, "the call ended without a reason")
        for timer in self._timers:
            timer.cancel()
        self._cancel_grace()
        await self._cancel_tasks()
        await self._close_session(min(SESSION_CLOSE_TIMEOUT_S, budget_s / 3))
        await self._write_result(end, max(0.1, deadline - self._loop.time()))
        await self._delete_room(min(ROOM_DELETE_TIMEOUT_S, max(0.1, deadline - self._loop.time())))
        self._unwatch_room()

    async def _write_result(self, end: CallEnd, timeout_s: float) -> None:
        if self._record is None or self._ledger is None or self._ledger.written:
            return
        result = self._record.result(end)
        if result is None:
            log.info("call ended before it was answered (%s); the dialer reports it", end.detail or end.reason.value,
                     extra=self._extra)
            return
        try:
            await asyncio.wait_for(self._ledger.finish(result), timeout_s)
        except Exception:
            log.exception("could not write the call's result; the reconciler will settle it", extra=self._extra)

    async def _close_session(self, timeout_s: float) -> None:
        if self._session is None:
            return
        self._closing_session = True
        try:
            await asyncio.wait_for(self._session.aclose(), timeout_s)
        except Exception:
            log.warning("the session did not close cleanly", exc_info=True, extra=self._extra)

    async def _delete_room(self, timeout_s: float = ROOM_DELETE_TIMEOUT_S) -> None:
        if self._room_deleted:
            return
        try:
            await asyncio.wait_for(self._deps.control.delete_room(self._room.name), timeout_s)
            self._room_deleted = True
        except Exception:
            log.warning("could not delete room %s; it closes itself once empty", self._room.name,
                        exc_info=True, extra=self._extra)

    @property
    def _full_budget_s(self) -> float:
        return SESSION_CLOSE_TIMEOUT_S + ROOM_DELETE_TIMEOUT_S + 10.0

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

    def _room_handlers(self) -> dict[Any, Callable[..., None]]:
        return {"participant_connected": self._on_participant_connected,
                "participant_attributes_changed": self._on_participant_attributes_changed,
                "participant_disconnected": self._on_participant_disconnected,
                "reconnecting": self._on_reconnecting,
                "reconnected": self._on_reconnected,
                "disconnected": self._on_disconnected}

    def _watch_room(self, identity: str) -> None:
        self._identity = identity
        for event, handler in self._room_handlers().items():
            self._room.on(event, handler)
        self._watching = True

    def _unwatch_room(self) -> None:
        if not self._watching:
            return
        for event, handler in self._room_handlers().items():
            self._room.off(event, handler)
        self._watching = False

    def _check_present(self, identity: str) -> None:
        participant = self._room.remote_participants.get(identity)
        if participant is not None:
            self._on_participant_connected(participant)

    @property
    def _answered_call(self) -> bool:
        return self._record is not None and self._record.answered

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity != self._identity:
            return
        if self._present.is_set():
            return
        returned = self._grace is not None or self._answered_call
        self._present.set()
        self._cancel_grace()
        if returned:
            log.info("the callee is back in the room", extra=self._extra)
        self._on_call_status(participant)

    def _on_participant_attributes_changed(self, changed: Any, participant: rtc.Participant) -> None:
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
        elif status == CALL_HANGUP and self._answered_call:
            self._callee_gone("sip.callStatus is hangup")

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity != self._identity:
            return
        self._present.clear()
        # rtc's Participant.disconnect_reason is None for UNKNOWN_REASON
        reason = participant.disconnect_reason or rtc.DisconnectReason.UNKNOWN_REASON
        detail = f"left the room ({rtc.DisconnectReason.Name(reason)})"
        if not self._answered_call:
            # the dialer's room until the answer: it may retry the INVITE with this identity
            log.info("the callee %s before the answer; waiting for a retry or the dialer", detail,
                     extra=self._extra)
        elif reason in FINAL_REASONS:
            self._callee_gone(detail)
        else:
            self._start_grace(detail)

    def _on_reconnecting(self) -> None:
        self._reconnecting = True
        log.info("the agent lost its connection to the room; reconnecting", extra=self._extra)

    def _on_reconnected(self) -> None:
        self._reconnecting = False
        if self._answered_call and not self._present.is_set():
            self._cancel_grace()
            self._start_grace("did not come back after the agent reconnected")

    def _start_grace(self, detail: str) -> None:
        if self._grace is not None or self._end is not None:
            return
        grace_s = self._deps.settings.agent_reconnect_grace_s
        log.info("the callee %s; waiting %g s for it to come back", detail, grace_s, extra=self._extra)
        self._grace = self._loop.call_later(grace_s, self._grace_over, detail)

    def _grace_over(self, detail: str) -> None:
        self._grace = None
        if self._reconnecting:
            return  # the room's own reconnect; the grace starts again once it is back
        if not self._present.is_set():
            self._callee_gone(detail)

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def _callee_gone(self, detail: str) -> None:
        self.end(EndReason.CALLEE_HUNG_UP if self._answered_call else EndReason.NOT_ANSWERED, detail)

    def _on_disconnected(self, reason: Any = None) -> None:
        if reason == rtc.DisconnectReason.ROOM_DELETED:
            self._room_deleted = True
        name = rtc.DisconnectReason.Name(reason) if isinstance(reason, int) else "no reason"  # type: ignore[arg-type]
        detail = f"the room closed ({name})"
        self.end(EndReason.SHUTDOWN if self._answered_call else EndReason.NOT_ANSWERED, detail)

    def _on_item_added(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if self._record is not None and isinstance(item, ChatMessage) and item.role in ("user", "assistant"):
            self._record.add_line(item.role, item.text_content or "")

    def _on_session_close(self, event: CloseEvent) -> None:
        if event.reason == CloseReason.ERROR:
            error = getattr(event.error, "error", event.error)
            self.end(EndReason.ERROR, f"the voice session failed: {error or 'unknown error'}")
        elif event.reason == CloseReason.PARTICIPANT_DISCONNECTED:
            if self._answered_call:
                self._callee_gone("the session closed on the callee's disconnect")
        elif event.reason == CloseReason.JOB_SHUTDOWN:
            self.end(EndReason.SHUTDOWN, "job shutdown")
        elif event.reason == CloseReason.USER_INITIATED and not self._closing_session:
            # the framework closes the primary session when the job shuts down
            self.end(EndReason.SHUTDOWN, "the session was closed by the job")
        else:
            self.end(EndReason.AGENT_HUNG_UP, f"the session closed ({event.reason.value})")

    # -- speech and time ----------------------------------------------------------------------

    def _say(self, session: AgentSession, text: str, *, allow_interruptions: bool = True) -> SpeechHandle:
        """Say ``text`` as written."""
        if isinstance(session.llm, RealtimeModel) and session.tts is None:
            return session.generate_reply(instructions=prompts.say_verbatim(text),
                                          allow_interruptions=allow_interruptions)
        return session.say(text, allow_interruptions=allow_interruptions)

    async def _speak(self, session: AgentSession, text: str) -> None:
        """Say ``text`` as written and wait until it has been played."""
        await self._say(session, text).wait_for_playout()

    def _arm_time_limit(self, max_call_duration_s: float) -> None:
        goodbye_at = max(0.0, max_call_duration_s - GOODBYE_S)
        self._timers.append(self._loop.call_later(goodbye_at, self._time_up))

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
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({waiter, ended}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (waiter, ended):
                if not future.done():
                    future.cancel()
            await asyncio.gather(waiter, ended, return_exceptions=True)
        if waiter.done() and not waiter.cancelled():
            return waiter.result()
        if self._end is not None:
            raise _CallEnded(self._end)
        raise TimeoutError

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)  # kept until the conclusion, which collects what each one raised
        return task

    async def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        pending = [task for task in self._tasks if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    @property
    def _extra(self) -> dict[str, str]:
        return {"call_id": self._metadata.call_id if self._metadata else ""}


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


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
