"""The job entrypoint's binding, waiting and cleanup paths, with a room double (invariant I5).

A real ``AgentSession`` (text mode, scripted model) runs inside livekit-agents'
``fake_job_context`` with ``FakeRoom`` standing in for ``rtc.Room``; results land in Redis.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.testing import fake_job_context

from agent_worker.call import CallDeps, run_call
from agent_worker.screening import Screener, Screening, assume_person
from agent_worker.testing import (
    STANDARD,
    FakeParticipant,
    FakeRoom,
    RecordingControl,
    Reply,
    ScriptedLLM,
    call,
    dialed_attempt,
    say,
)
from dialer.models import DispatchMetadata
from dialer.settings import Settings
from dialer.store import Store

CALLEE = "callee-2"
GREETING = "Hi Ada, this is Sam from Acme."
CAMPAIGN = {"greeting": "Hi {first_name}, this is Sam from Acme.",
            "dispositions": ["completed", "interested", "not_interested"]}


async def until(predicate: Callable[[], Any], timeout_s: float = 5.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy; fail after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (value := predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.005)
    return value


class Job:
    """One dispatched call running in a fake job, and what it did."""

    def __init__(self, store: Store, metadata_json: str, *, replies: list[Reply] | None = None,
                 screen: Screener = assume_person, **settings: Any) -> None:
        self.store = store
        self.metadata_json = metadata_json
        self.room = FakeRoom()
        self.control = RecordingControl(self.room)
        self.llm = ScriptedLLM(replies or [])
        self.screen = screen
        self.settings = Settings(_env_file=None, **{"agent_participant_timeout_s": 5.0,  # type: ignore[call-arg]
                                                    "agent_answer_timeout_s": 5.0, **settings})
        self.sessions: list[AgentSession] = []
        self.shutdown_reasons: list[str] = []
        self.shutdown_callbacks: list[Callable[..., Coroutine[Any, Any, None]]] = []
        self.task: asyncio.Task[None] | None = None

    @property
    def session(self) -> AgentSession | None:
        return self.sessions[0] if self.sessions else None

    async def _screen(self, session: AgentSession, identity: str) -> Screening:
        return await self.screen(session, identity)

    def _new_session(self, metadata: DispatchMetadata) -> AgentSession:
        session: AgentSession = AgentSession(llm=self.llm, vad=None)
        self.sessions.append(session)
        return session

    async def run(self, scenario: Callable[[Job], Coroutine[Any, Any, None]]) -> None:
        with fake_job_context(room=self.room, job_metadata=self.metadata_json) as ctx:  # type: ignore[arg-type]
            ctx.shutdown = self.shutdown_reasons.append  # type: ignore[method-assign]
            ctx.add_shutdown_callback = self.shutdown_callbacks.append  # type: ignore[method-assign,assignment]
            deps = CallDeps(settings=self.settings, store=self.store, control=self.control,
                            new_session=self._new_session, screen=self._screen, media=False)
            self.task = asyncio.create_task(run_call(ctx, deps))
            try:
                await scenario(self)
                await asyncio.wait_for(self.task, 10)
            finally:
                if not self.task.done():
                    self.task.cancel()
                for session in self.sessions:
                    await session.aclose()

    async def shut_down(self, reason: str = "worker shutting down") -> None:
        """What the worker does when the job ends: every shutdown callback, together."""
        await asyncio.gather(*(callback(reason) if inspect.signature(callback).parameters else callback()
                               for callback in self.shutdown_callbacks))

    # -- what the callee does -------------------------------------------------------------

    def callee_joins(self, status: str = "ringing") -> FakeParticipant:
        return self.room.join(FakeParticipant(CALLEE, attributes={"sip.callStatus": status,
                                                                  "sip.callID": "SCL_test123"}))

    def callee_answers(self) -> None:
        self.room.set_attributes(CALLEE, **{"sip.callStatus": "active"})

    def linked_identity(self) -> str | None:
        session = self.session
        try:
            linked = session.room_io.linked_participant if session else None
        except RuntimeError:
            return None
        return linked.identity if linked else None

    def assistant_lines(self) -> list[str]:
        session = self.session
        if session is None:
            return []
        return [item.text_content or "" for item in session.history.items
                if item.type == "message" and item.role == "assistant"]


def start(store: Store, tmp_path: Path, scenario: Callable[[Job], Coroutine[Any, Any, None]], *,
          campaign: dict[str, Any] | None = None, metadata_json: str | None = None, **job: Any) -> tuple[Job, str]:
    metadata = dialed_attempt(store, tmp_path, identity=CALLEE, **{**CAMPAIGN, **(campaign or {})})
    running = Job(store, metadata_json if metadata_json is not None else metadata.model_dump_json(), **job)
    asyncio.run(running.run(scenario))
    return running, metadata.call_id


def result_of(store: Store, call_id: str) -> dict[str, Any] | None:
    cid, contact, seq = DispatchMetadata.parse_call_id(call_id)
    return store.result(cid, f"{contact}:{seq}")


def attempt_state(store: Store, call_id: str) -> str:
    cid, contact, seq = DispatchMetadata.parse_call_id(call_id)
    return str((store.attempt(cid, f"{contact}:{seq}") or {}).get("state"))


async def answered_and_greeted(job: Job) -> None:
    job.callee_joins()
    await until(job.linked_identity, what="the session to link to the callee")
    job.callee_answers()
    await until(lambda: GREETING in job.assistant_lines(), what="the greeting")


# -- binding and waiting ----------------------------------------------------------------------


def test_the_session_binds_to_the_dialed_participant_when_an_observer_joined_first(
        store: Store, tmp_path: Path) -> None:
    linked: list[str | None] = []

    async def scenario(job: Job) -> None:
        job.room.join(FakeParticipant("supervisor", kind=STANDARD))
        job.callee_joins()
        linked.append(await until(job.linked_identity, what="the session to link"))
        job.room.leave(CALLEE, rtc.DisconnectReason.USER_REJECTED)

    start(store, tmp_path, scenario)
    assert linked == [CALLEE]


def test_the_agent_says_nothing_until_the_call_is_active(store: Store, tmp_path: Path) -> None:
    heard: list[tuple[str, list[str]]] = []

    async def screen(session: AgentSession, identity: str) -> Screening:
        return Screening.HUMAN

    async def scenario(job: Job) -> None:
        job.callee_joins(status="ringing")
        await until(job.linked_identity, what="the session to link")
        heard.append(("ringing", job.assistant_lines()))
        job.callee_answers()
        await until(job.assistant_lines, what="the agent to speak")
        heard.append(("active", job.assistant_lines()))
        job.room.leave(CALLEE, rtc.DisconnectReason.CLIENT_INITIATED)

    start(store, tmp_path, scenario, screen=screen)
    assert heard == [("ringing", []), ("active", [GREETING])]


def test_screening_starts_only_once_the_call_is_active(store: Store, tmp_path: Path) -> None:
    statuses: list[str] = []

    async def scenario(job: Job) -> None:
        async def screen(session: AgentSession, identity: str) -> Screening:
            statuses.append(job.room.remote_participants[identity].attributes["sip.callStatus"])
            return Screening.HUMAN

        job.screen = screen
        await answered_and_greeted(job)
        job.room.leave(CALLEE, rtc.DisconnectReason.CLIENT_INITIATED)

    start(store, tmp_path, scenario)
    assert statuses == ["active"]


def test_a_participant_that_never_joins_times_out_into_a_result_and_a_deleted_room(
        store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        pass

    job, call_id = start(store, tmp_path, scenario, agent_participant_timeout_s=0.2)
    result = result_of(store, call_id) or {}
    assert result["outcome"] == "failed"
    assert "did not join within 0.2 s" in result["error"]
    assert job.control.deleted_rooms == [job.room.name]


def test_a_call_that_ends_before_it_is_answered_is_left_to_the_dialer(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        job.callee_joins(status="ringing")
        await until(job.linked_identity, what="the session to link")
        job.room.leave(CALLEE, rtc.DisconnectReason.USER_REJECTED)

    job, call_id = start(store, tmp_path, scenario)
    assert (result_of(store, call_id), attempt_state(store, call_id)) == (None, "dialing")
    assert job.control.deleted_rooms == [job.room.name]


# -- ends and cleanup ------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [rtc.DisconnectReason.CLIENT_INITIATED, rtc.DisconnectReason.USER_UNAVAILABLE,
                                    rtc.DisconnectReason.UNKNOWN_REASON])
def test_a_callee_hang_up_writes_one_answered_result_and_deletes_the_room(
        store: Store, tmp_path: Path, reason: rtc.DisconnectReason.ValueType) -> None:
    async def scenario(job: Job) -> None:
        await answered_and_greeted(job)
        job.room.leave(CALLEE, reason)

    job, call_id = start(store, tmp_path, scenario)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["sip_call_id"], result["error"]) == ("answered", "SCL_test123", "")
    assert result["transcript"] == [{"role": "assistant", "text": GREETING}]
    assert result["answered_at"] <= result["ended_at"]
    assert job.control.deleted_rooms == [job.room.name]
    assert job.shutdown_reasons == ["call ended: callee_hung_up"]


def test_the_job_shutdown_after_the_call_writes_nothing_more(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await answered_and_greeted(job)
        job.room.leave(CALLEE, rtc.DisconnectReason.CLIENT_INITIATED)
        await until(lambda: job.task is not None and job.task.done(), what="the entrypoint to return")
        await job.shut_down("room disconnected")

    job, call_id = start(store, tmp_path, scenario)
    cid, _, _ = DispatchMetadata.parse_call_id(call_id)
    assert (result_of(store, call_id) or {})["outcome"] == "answered"
    assert store.progress(cid)["final"] == 1
    assert job.control.deleted_rooms == [job.room.name]


def test_an_exception_mid_call_writes_one_result_and_deletes_the_room(store: Store, tmp_path: Path) -> None:
    async def broken_screen(session: AgentSession, identity: str) -> Screening:
        raise RuntimeError("the classifier fell over")

    async def scenario(job: Job) -> None:
        job.callee_joins()
        await until(job.linked_identity, what="the session to link")
        job.callee_answers()
        await until(lambda: job.task is not None and job.task.done(), what="the entrypoint to return")
        await job.shut_down("call ended")

    job, call_id = start(store, tmp_path, scenario, screen=broken_screen)
    cid, _, _ = DispatchMetadata.parse_call_id(call_id)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["error"]) == ("failed", "RuntimeError: the classifier fell over")
    assert store.progress(cid)["final"] == 1
    assert job.control.deleted_rooms == [job.room.name]


def test_a_job_shutdown_mid_call_writes_the_result_and_deletes_the_room(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await answered_and_greeted(job)
        await job.shut_down("worker draining")

    job, call_id = start(store, tmp_path, scenario)
    result = result_of(store, call_id) or {}
    assert result["outcome"] == "answered"
    assert "shut down during the call (worker draining)" in result["error"]
    assert job.control.deleted_rooms == [job.room.name]


def test_the_agent_hanging_up_ends_the_call_with_its_disposition(store: Store, tmp_path: Path) -> None:
    replies = [call("record_disposition", disposition="not_interested", notes="Happy with their provider."),
               Reply(text="Thanks for your time, goodbye!", tool_calls=[("end_call", {})])]

    async def scenario(job: Job) -> None:
        await answered_and_greeted(job)
        assert job.session is not None
        job.session.generate_reply(user_input="No thanks, I'm happy with what I have.")

    job, call_id = start(store, tmp_path, scenario, replies=replies)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["disposition"]) == ("answered", "not_interested")
    assert result["transcript"][-1] == {"role": "assistant", "text": "Thanks for your time, goodbye!"}
    assert job.control.deleted_rooms == [job.room.name]
    assert job.shutdown_reasons == ["call ended: agent_hung_up"]


def test_a_transfer_hands_the_callee_over_and_says_so(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await answered_and_greeted(job)
        assert job.session is not None
        job.session.generate_reply(user_input="Can I speak to a person?")

    job, call_id = start(store, tmp_path, scenario, campaign={"transfer_number": "+12025550199"},
                         replies=[call("transfer_to_person")])
    assert job.control.transfers == [(job.room.name, CALLEE, "+12025550199")]
    assert (result_of(store, call_id) or {})["disposition"] == "transferred"


def test_the_time_limit_ends_the_call_with_a_result(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        job.callee_joins()
        await until(job.linked_identity, what="the session to link")
        job.callee_answers()

    job, call_id = start(store, tmp_path, scenario, campaign={"max_call_duration_s": 10},
                         replies=[say("We're out of time, goodbye!")])
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["error"]) == ("answered", "the call reached its maximum length of 10 s")
    assert job.control.deleted_rooms == [job.room.name]


# -- answering machines ------------------------------------------------------------------------


async def machine(session: AgentSession, identity: str) -> Screening:
    return Screening.VOICEMAIL


def test_a_voicemail_gets_the_campaigns_message_and_the_outcome_says_voicemail(
        store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        job.callee_joins()
        await until(job.linked_identity, what="the session to link")
        job.callee_answers()

    campaign = {"voicemail_action": "leave_message", "voicemail_message": "Hi {first_name}, please call us back."}
    job, call_id = start(store, tmp_path, scenario, campaign=campaign, screen=machine)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["disposition"]) == ("voicemail", "voicemail")
    assert result["transcript"] == [{"role": "assistant", "text": "Hi Ada, please call us back."}]
    assert job.control.deleted_rooms == [job.room.name]


def test_a_voicemail_is_hung_up_on_when_the_campaign_says_so(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        job.callee_joins()
        await until(job.linked_identity, what="the session to link")
        job.callee_answers()

    job, call_id = start(store, tmp_path, scenario, campaign={"voicemail_action": "hangup"}, screen=machine)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["transcript"]) == ("voicemail", [])
    assert job.control.deleted_rooms == [job.room.name]


# -- bad dispatch metadata -----------------------------------------------------------------------


def test_bad_metadata_with_a_call_id_writes_a_failed_result_and_shuts_down(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        pass

    metadata = dialed_attempt(store, tmp_path, identity=CALLEE)
    broken = metadata.model_dump_json(exclude={"participant_identity"})
    job = Job(store, broken)
    asyncio.run(job.run(scenario))
    result = result_of(store, metadata.call_id) or {}
    assert result["outcome"] == "failed"
    assert result["error"] == "bad dispatch metadata: participant_identity: Field required"
    assert job.control.deleted_rooms == [job.room.name]
    assert job.shutdown_reasons == ["bad dispatch metadata"]


def test_metadata_that_is_not_json_shuts_the_job_down(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        pass

    job = Job(store, "not json")
    asyncio.run(job.run(scenario))
    assert (job.shutdown_reasons, job.control.deleted_rooms) == (["bad dispatch metadata"], [job.room.name])


def test_in_production_the_session_hears_only_the_callee_and_leaves_the_room_to_the_call() -> None:
    from agent_worker.call import room_options

    options = room_options(CALLEE, media=True)
    assert (options.participant_identity, options.text_input, options.delete_room_on_close) == (CALLEE, False, False)
