"""The job entrypoint's binding, waiting and ending paths, on doubles that follow the real order of events.

A real ``AgentSession`` (scripted model and TTS, audio output on as in production) runs a
dispatched call inside ``JobRunner``, which shuts jobs down as livekit-agents does
(ipc/job_proc_lazy_main.py). ``FakeRoom`` and ``SipCall`` play the room and the callee as
livekit rtc and livekit/sip show them to the agent; results land in Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from livekit import rtc
from livekit.agents import AgentSession, APIConnectOptions
from livekit.agents.voice.agent_session import SessionConnectOptions

from agent_worker import call as call_module
from agent_worker.call import CallDeps, run_call
from agent_worker.screening import AmdScreener, Screener, Screening, assume_person
from agent_worker.testing import (
    STANDARD,
    FakeParticipant,
    FakeRoom,
    JobRunner,
    RecordingControl,
    Reply,
    ScriptedLLM,
    ScriptedTTS,
    SipCall,
    call,
    dialed_attempt,
    fail,
    say,
)
from dialer.models import DispatchMetadata
from dialer.settings import Settings
from dialer.store import Store

CALLEE = "callee-2"
GREETING = "Hi Ada, this is Sam from Acme."
CAMPAIGN = {"greeting": "Hi {first_name}, this is Sam from Acme.",
            "dispositions": ["completed", "interested", "not_interested"]}
GRACE_S = 0.3


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
    """One dispatched call running in a job, and what it did."""

    def __init__(self, store: Store, metadata_json: str, *, replies: list[Reply] | None = None,
                 screen: Screener = assume_person, control: dict[str, Any] | None = None,
                 entrypoint_wait_s: float = 15.0, seconds_per_char: float = 0.004, **settings: Any) -> None:
        self.store = store
        self.metadata_json = metadata_json
        self.room = FakeRoom()
        self.control = RecordingControl(self.room, **(control or {}))
        self.callee = SipCall(self.room, CALLEE)
        self.llm = ScriptedLLM(replies or [])
        self.tts = ScriptedTTS(seconds_per_char=seconds_per_char)
        self.screen = screen
        self.entrypoint_wait_s = entrypoint_wait_s
        self.settings = Settings(_env_file=None, **{  # type: ignore[call-arg]
            "agent_participant_timeout_s": 5.0, "agent_answer_timeout_s": 5.0,
            "agent_reconnect_grace_s": GRACE_S, "agent_shutdown_timeout_s": 5.0, **settings})
        self.sessions: list[AgentSession] = []
        self.runner: JobRunner | None = None

    @property
    def session(self) -> AgentSession | None:
        return self.sessions[0] if self.sessions else None

    @property
    def ended(self) -> bool:
        return self.runner is not None and self.runner.finished.is_set()

    async def _screen(self, session: AgentSession, identity: str) -> Screening:
        return await self.screen(session, identity)

    def _new_session(self, metadata: DispatchMetadata) -> AgentSession:
        session: AgentSession = AgentSession(
            llm=self.llm, tts=self.tts, vad=None,
            conn_options=SessionConnectOptions(llm_conn_options=APIConnectOptions(max_retry=0),
                                               max_unrecoverable_errors=0))
        self.sessions.append(session)
        return session

    async def run(self, scenario: Callable[[Job], Coroutine[Any, Any, None]]) -> None:
        self.runner = JobRunner(self.room, self.metadata_json, entrypoint_wait_s=self.entrypoint_wait_s)
        deps = CallDeps(settings=self.settings, store=self.store, control=self.control,
                        new_session=self._new_session, screen=self._screen)

        async def entrypoint(ctx: Any) -> None:
            await run_call(ctx, deps)

        running = asyncio.create_task(self.runner.run(entrypoint))
        try:
            await scenario(self)
            await asyncio.wait_for(asyncio.shield(running), 20)
        finally:
            if not running.done():
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
            for session in self.sessions:
                await session.aclose()
            await self.room.aclose()

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

    async def answer(self) -> None:
        """The callee's phone rings, then it is answered."""
        self.callee.dial()
        await until(self.linked_identity, what="the session to link to the callee")
        self.callee.ringing()
        self.callee.answer()

    async def answered_and_greeted(self) -> None:
        await self.answer()
        await until(lambda: GREETING in self.assistant_lines(), what="the greeting")

    async def hears(self, user_input: str, reply: str) -> None:
        assert self.session is not None
        self.session.generate_reply(user_input=user_input)
        await until(lambda: reply in self.assistant_lines(), what=f"the reply {reply!r}")

    async def still_running_after(self, seconds: float) -> bool:
        """True when the job is still running ``seconds`` from now (waits for the job's end event)."""
        assert self.runner is not None
        try:
            await asyncio.wait_for(asyncio.shield(self.runner.finished.wait()), seconds)
        except TimeoutError:
            return True
        return False


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


def finals(store: Store, call_id: str) -> int:
    cid, _, _ = DispatchMetadata.parse_call_id(call_id)
    return int(store.progress(cid)["final"])


# -- binding and waiting for the answer ----------------------------------------------------------


def test_the_session_binds_to_the_dialed_participant_when_an_observer_joined_first(
        store: Store, tmp_path: Path) -> None:
    linked: list[str | None] = []

    async def scenario(job: Job) -> None:
        job.room.join(FakeParticipant("supervisor", kind=STANDARD))
        job.callee.dial()
        linked.append(await until(job.linked_identity, what="the session to link"))
        job.room.close()  # the dialer gives up and deletes the room

    start(store, tmp_path, scenario)
    assert linked == [CALLEE]


def test_the_agent_says_nothing_until_the_call_is_active(store: Store, tmp_path: Path) -> None:
    heard: list[tuple[str, list[str]]] = []

    async def scenario(job: Job) -> None:
        job.callee.dial()
        await until(job.linked_identity, what="the session to link")
        job.callee.ringing()
        heard.append(("ringing", list(job.tts.texts)))
        job.callee.answer()
        await until(job.assistant_lines, what="the agent to speak")
        heard.append(("active", job.assistant_lines()))
        job.callee.hang_up()

    start(store, tmp_path, scenario)
    assert heard == [("ringing", []), ("active", [GREETING])]


def test_a_late_answer_after_the_session_start_bound_still_gets_the_agent(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(call_module, "SESSION_START_TIMEOUT_S", 0.3)

    async def scenario(job: Job) -> None:
        job.callee.dial()
        job.callee.ringing()
        await asyncio.sleep(0.8)  # the phone rings for longer than the bound
        job.callee.answer()
        await until(lambda: GREETING in job.assistant_lines(), what="the greeting")
        job.callee.hang_up()

    _job, call_id = start(store, tmp_path, scenario)
    assert (result_of(store, call_id) or {})["outcome"] == "answered"


def test_the_greeting_waits_until_the_callee_hears_the_agent(store: Store, tmp_path: Path) -> None:
    order: list[str] = []

    async def scenario(job: Job) -> None:
        job.room.on("local_track_subscribed", lambda track: order.append("subscribed"))
        await job.answered_and_greeted()
        order.append("greeted")
        job.callee.hang_up()

    job, _ = start(store, tmp_path, scenario)
    assert order == ["subscribed", "greeted"]
    assert [p.subscribed for p in job.room.local_participant.track_publications.values()] == [True]


def test_screening_starts_with_the_session_before_the_answer(store: Store, tmp_path: Path) -> None:
    statuses: list[str] = []

    async def scenario(job: Job) -> None:
        async def screen(session: AgentSession, identity: str) -> Screening:
            statuses.append(job.room.remote_participants[identity].attributes["sip.callStatus"])
            return Screening.HUMAN

        job.screen = screen
        job.callee.dial()
        job.callee.ringing()
        await until(lambda: statuses, what="screening to start while the phone rings")
        job.callee.answer()
        await until(lambda: GREETING in job.assistant_lines(), what="the greeting")
        job.callee.hang_up()

    start(store, tmp_path, scenario)
    assert statuses == ["ringing"]


def test_the_real_answering_machine_detection_listens_only_once_the_call_is_active(
        store: Store, tmp_path: Path) -> None:
    screener = AmdScreener(ScriptedLLM(), detection_options={"no_speech_threshold": 0.2, "timeout": 2.0})

    async def scenario(job: Job) -> None:
        job.callee.dial()
        job.callee.ringing()
        await asyncio.sleep(0.5)  # rings longer than the no-speech threshold: AMD must not count it
        assert job.assistant_lines() == []
        job.callee.answer()
        await until(lambda: GREETING in job.assistant_lines(), what="the greeting after the verdict")
        job.callee.hang_up()

    _job, call_id = start(store, tmp_path, scenario, screen=screener)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["disposition"]) == ("answered", "")


def test_a_participant_that_never_joins_times_out_into_a_result_and_a_deleted_room(
        store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        pass

    job, call_id = start(store, tmp_path, scenario, agent_participant_timeout_s=0.2)
    result = result_of(store, call_id) or {}
    assert result["outcome"] == "failed"
    assert "did not join within 0.2 s" in result["error"]
    assert job.control.deleted_rooms == [job.room.name]


def test_an_unanswered_call_times_out_and_is_left_to_the_dialer(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        job.callee.dial()
        job.callee.ringing()

    job, call_id = start(store, tmp_path, scenario, agent_answer_timeout_s=0.2, campaign={"ring_timeout_s": 1})
    assert (result_of(store, call_id), attempt_state(store, call_id)) == (None, "dialing")
    assert job.control.deleted_rooms == [job.room.name]  # no agent is left behind a phone still ringing
    assert job.runner is not None and job.runner.shutdown_reasons == ["call ended: not_answered"]


def test_the_answer_wait_covers_the_campaigns_ring_timeout(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        job.callee.dial()
        job.callee.ringing()
        await asyncio.sleep(0.6)  # longer than AGENT_ANSWER_TIMEOUT_S, inside the campaign's ring timeout
        job.callee.answer()
        await until(lambda: GREETING in job.assistant_lines(), what="the greeting")
        job.callee.hang_up()

    _job, call_id = start(store, tmp_path, scenario, agent_answer_timeout_s=0.2, campaign={"ring_timeout_s": 2})
    assert (result_of(store, call_id) or {})["outcome"] == "answered"


# -- before the answer the room is the dialer's (DESIGN.md 4b) ------------------------------------------


def test_a_callee_that_leaves_before_the_answer_is_left_to_the_dialer(store: Store, tmp_path: Path) -> None:
    waited: list[bool] = []

    async def scenario(job: Job) -> None:
        job.callee.dial()
        job.callee.ringing()
        job.callee.fail(rtc.DisconnectReason.USER_REJECTED)  # busy
        waited.append(await job.still_running_after(GRACE_S * 2))
        await job.control.delete_room(job.room.name)  # the dialer's failure path

    job, call_id = start(store, tmp_path, scenario)
    assert waited == [True]
    assert (result_of(store, call_id), attempt_state(store, call_id)) == (None, "dialing")
    assert job.control.deleted_rooms == [job.room.name]  # the dialer's delete, not a second one


def test_an_invite_retried_into_the_same_room_is_answered_by_the_agent(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        job.callee.dial()
        await until(job.linked_identity, what="the session to link")
        job.callee.fail()  # a carrier 5xx: livekit/sip leaves the room (reason unknown)
        assert job.control.deleted_rooms == []
        job.callee.dial()  # the dialer retries: same room, same identity
        job.callee.ringing()
        job.callee.answer()
        await until(lambda: GREETING in job.assistant_lines(), what="the greeting on the retried INVITE")
        job.callee.hang_up()

    _job, call_id = start(store, tmp_path, scenario)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["transcript"]) == ("answered", [{"role": "assistant", "text": GREETING}])
    assert finals(store, call_id) == 1


# -- ends and cleanup ------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [rtc.DisconnectReason.CLIENT_INITIATED, rtc.DisconnectReason.USER_UNAVAILABLE,
                                    rtc.DisconnectReason.SIP_TRUNK_FAILURE])
def test_a_final_disconnect_of_the_callee_ends_the_call_at_once(
        store: Store, tmp_path: Path, reason: rtc.DisconnectReason.ValueType) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        job.room.leave(CALLEE, reason)

    job, call_id = start(store, tmp_path, scenario, agent_reconnect_grace_s=30.0)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["sip_call_id"], result["error"]) == ("answered", "SCL_test123", "")
    assert result["transcript"] == [{"role": "assistant", "text": GREETING}]
    assert result["answered_at"] <= result["ended_at"]
    assert job.control.deleted_rooms == [job.room.name]
    assert job.runner is not None and job.runner.shutdown_reasons == ["call ended: callee_hung_up"]


def test_sip_call_status_hangup_ends_the_call_before_the_participant_leaves(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        job.room.set_attributes(CALLEE, **{"sip.callStatus": "hangup"})

    job, call_id = start(store, tmp_path, scenario, agent_reconnect_grace_s=30.0)
    assert (result_of(store, call_id) or {})["outcome"] == "answered"
    assert job.runner is not None and job.runner.shutdown_reasons == ["call ended: callee_hung_up"]


def test_a_drop_without_a_final_reason_ends_the_call_after_the_grace_period(store: Store, tmp_path: Path) -> None:
    dropped: list[float] = []

    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        dropped.append(time.time())
        job.callee.fail()  # a media timeout: UNKNOWN_REASON

    job, call_id = start(store, tmp_path, scenario)
    result = result_of(store, call_id) or {}
    assert result["outcome"] == "answered"
    assert result["ended_at"] - dropped[0] >= GRACE_S
    assert job.control.deleted_rooms == [job.room.name]


def test_a_callee_that_drops_and_comes_back_within_the_grace_period_stays_on_the_call(
        store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        job.callee.fail()
        job.room.join(FakeParticipant(CALLEE, attributes={"sip.callStatus": "active", "sip.callID": "SCL_test123"}))
        assert await job.still_running_after(GRACE_S * 2)
        await job.hears("Are you still there?", "Yes, I'm here.")
        job.callee.hang_up()

    _job, call_id = start(store, tmp_path, scenario, replies=[say("Yes, I'm here.")])
    result = result_of(store, call_id) or {}
    assert result["transcript"][-1] == {"role": "assistant", "text": "Yes, I'm here."}
    assert finals(store, call_id) == 1


def test_a_reconnect_of_the_agent_does_not_end_the_call(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        gone = job.room.reconnect_starts()
        assert await job.still_running_after(GRACE_S * 2)  # reconnecting takes longer than the grace
        job.room.reconnect_ends(gone)
        assert await job.still_running_after(GRACE_S * 2)
        await job.hears("Hello?", "Sorry, the line dropped for a moment.")
        job.callee.hang_up()

    _job, call_id = start(store, tmp_path, scenario, replies=[say("Sorry, the line dropped for a moment.")])
    result = result_of(store, call_id) or {}
    assert result["outcome"] == "answered"
    assert result["transcript"][-1]["text"] == "Sorry, the line dropped for a moment."


def test_a_room_deleted_mid_call_ends_it_with_one_result_and_no_second_delete(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        job.room.close()  # deleted under the agent (an operator, the reconciler)

    job, call_id = start(store, tmp_path, scenario)
    assert ((result_of(store, call_id) or {})["outcome"], finals(store, call_id)) == ("answered", 1)
    assert job.control.deleted_rooms == []  # already gone


def test_the_rooms_disconnected_event_ends_the_call_as_a_shutdown(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        job.room.connection_lost()

    job, call_id = start(store, tmp_path, scenario, agent_reconnect_grace_s=30.0)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], finals(store, call_id)) == ("shutdown", 1)
    assert "the room closed (SIGNAL_CLOSE)" in result["error"]
    assert job.control.deleted_rooms == [job.room.name]  # the callee is not left alone in it


def test_a_session_closed_by_an_error_writes_a_failed_result(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        assert job.session is not None
        job.session.generate_reply(user_input="Hello?")

    job, call_id = start(store, tmp_path, scenario, replies=[fail("the model is down")])
    result = result_of(store, call_id) or {}
    assert result["outcome"] == "failed"
    assert result["error"].startswith("the voice session failed")
    assert job.control.deleted_rooms == [job.room.name]


def test_an_exception_mid_call_writes_one_result_and_deletes_the_room(store: Store, tmp_path: Path) -> None:
    async def broken_screen(session: AgentSession, identity: str) -> Screening:
        raise RuntimeError("the classifier fell over")

    async def scenario(job: Job) -> None:
        await job.answer()

    job, call_id = start(store, tmp_path, scenario, screen=broken_screen)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["error"]) == ("failed", "RuntimeError: the classifier fell over")
    assert finals(store, call_id) == 1
    assert job.control.deleted_rooms == [job.room.name]


def test_the_job_shutdown_after_the_call_writes_nothing_more(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        job.callee.hang_up()

    job, call_id = start(store, tmp_path, scenario)
    assert (result_of(store, call_id) or {})["outcome"] == "answered"
    assert finals(store, call_id) == 1
    assert job.control.deleted_rooms == [job.room.name]


# -- the job shutting down mid-call (DESIGN.md 4b) -----------------------------------------------------


def test_a_job_shutdown_mid_call_cancels_into_one_shutdown_result_and_a_deleted_room(
        store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        assert job.runner is not None
        job.runner.request_shutdown("worker draining")

    job, call_id = start(store, tmp_path, scenario, entrypoint_wait_s=0.2)
    result = result_of(store, call_id) or {}
    assert result["outcome"] == "shutdown"
    assert "shut down during the call (the job was cancelled)" in result["error"]
    assert finals(store, call_id) == 1
    assert job.control.deleted_rooms == [job.room.name]
    assert job.runner is not None and job.runner.entrypoint is not None
    assert job.runner.entrypoint.cancelled()  # the cancellation was re-raised


def test_a_session_closed_by_someone_else_is_a_shutdown_not_a_hang_up(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        assert job.session is not None
        await job.session.aclose()  # USER_INITIATED, as the framework closes it on shutdown

    job, call_id = start(store, tmp_path, scenario)
    result = result_of(store, call_id) or {}
    assert result["outcome"] == "shutdown"
    assert job.runner is not None and job.runner.shutdown_reasons == ["call ended: shutdown"]


def test_the_shutdown_cleanup_ends_before_the_worker_kills_the_process(store: Store, tmp_path: Path) -> None:
    timings: list[float] = []

    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        assert job.runner is not None
        began = time.monotonic()
        job.runner.request_shutdown("dev reload")
        await job.runner.finished.wait()
        timings.append(time.monotonic() - began)

    _job, call_id = start(store, tmp_path, scenario, entrypoint_wait_s=0.1, agent_shutdown_timeout_s=2.5,
                         control={"delete_delay_s": 30.0})
    assert (result_of(store, call_id) or {})["outcome"] == "shutdown"
    assert timings[0] < 0.1 + 2.5


# -- the agent's own ends ---------------------------------------------------------------------


def test_the_agent_hanging_up_ends_the_call_with_its_disposition(store: Store, tmp_path: Path) -> None:
    replies = [call("record_disposition", disposition="not_interested", notes="Happy with their provider."),
               Reply(text="Thanks for your time, goodbye!", tool_calls=[("end_call", {})])]

    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        assert job.session is not None
        job.session.generate_reply(user_input="No thanks, I'm happy with what I have.")

    job, call_id = start(store, tmp_path, scenario, replies=replies)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["disposition"]) == ("answered", "not_interested")
    assert result["transcript"][-1] == {"role": "assistant", "text": "Thanks for your time, goodbye!"}
    assert job.control.deleted_rooms == [job.room.name]
    assert job.runner is not None and job.runner.shutdown_reasons == ["call ended: agent_hung_up"]


def test_a_transfer_hands_the_callee_over_and_says_so(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        assert job.session is not None
        job.session.generate_reply(user_input="Can I speak to a person?")

    job, call_id = start(store, tmp_path, scenario, campaign={"transfer_number": "+12025550199"},
                         replies=[call("transfer_to_person")], control={"transfer_hangup_after_s": 0.05})
    assert job.control.transfers == [(job.room.name, CALLEE, "+12025550199")]
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["disposition"]) == ("answered", "transferred")
    assert job.runner is not None and job.runner.shutdown_reasons == ["call ended: transferred"]


def test_a_failed_transfer_keeps_the_callee_on_the_line_with_the_agent(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answered_and_greeted()
        await job.hears("Can I speak to a person?", "Sorry, I couldn't put you through.")
        job.callee.hang_up()

    job, call_id = start(store, tmp_path, scenario, campaign={"transfer_number": "+12025550199"},
                         replies=[call("transfer_to_person"), say("Sorry, I couldn't put you through.")],
                         control={"transfer_error": ConnectionError("REFER rejected")})
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["disposition"]) == ("answered", "")
    assert job.control.transfers == []
    assert job.runner is not None and job.runner.shutdown_reasons == ["call ended: callee_hung_up"]


def test_the_time_limit_ends_the_call_with_a_result(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answer()

    job, call_id = start(store, tmp_path, scenario, campaign={"max_call_duration_s": 10},
                         replies=[say("We're out of time, goodbye!")])
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["error"]) == ("answered", "the call reached its maximum length of 10 s")
    assert job.control.deleted_rooms == [job.room.name]


# -- answering machines ------------------------------------------------------------------------

VOICEMAIL = {"voicemail_action": "leave_message", "voicemail_message": "Hi {first_name}, please call us back."}


async def machine(session: AgentSession, identity: str) -> Screening:
    return Screening.VOICEMAIL


def test_a_voicemail_played_whole_is_left_and_the_outcome_says_voicemail(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answer()

    job, call_id = start(store, tmp_path, scenario, campaign=VOICEMAIL, screen=machine)
    result = result_of(store, call_id) or {}
    assert (result["outcome"], result["disposition"], result["notes"]) == (
        "voicemail", "voicemail", "left a voicemail message")
    assert result["transcript"] == [{"role": "assistant", "text": "Hi Ada, please call us back."}]
    assert job.control.deleted_rooms == [job.room.name]


def test_a_voicemail_cut_off_is_recorded_as_such_and_nothing_interrupts_it(store: Store, tmp_path: Path) -> None:
    interruptible: list[bool] = []

    async def scenario(job: Job) -> None:
        await job.answer()
        session = job.session
        assert session is not None
        await until(lambda: session.agent_state == "speaking", what="the message to start")
        assert session.current_speech is not None
        interruptible.append(session.current_speech.allow_interruptions)
        job.callee.hang_up()  # the mailbox hangs up half way

    _job, call_id = start(store, tmp_path, scenario, campaign=VOICEMAIL, screen=machine, seconds_per_char=0.05)
    result = result_of(store, call_id) or {}
    assert interruptible == [False]
    assert (result["outcome"], result["disposition"], result["notes"]) == (
        "voicemail", "voicemail_cut_off", "the voicemail message was cut off before its end")


def test_a_voicemail_is_hung_up_on_when_the_campaign_says_so(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        await job.answer()

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
    assert job.runner is not None and job.runner.shutdown_reasons == ["bad dispatch metadata"]


def test_metadata_that_is_not_json_shuts_the_job_down(store: Store, tmp_path: Path) -> None:
    async def scenario(job: Job) -> None:
        pass

    job = Job(store, "not json")
    asyncio.run(job.run(scenario))
    assert job.runner is not None
    assert (job.runner.shutdown_reasons, job.control.deleted_rooms) == (["bad dispatch metadata"], [job.room.name])


def test_in_production_the_session_hears_only_the_callee_and_leaves_the_room_to_the_call() -> None:
    from agent_worker.call import room_options

    options = room_options(CALLEE, media=True)
    assert (options.participant_identity, options.text_input, options.delete_room_on_close,
            options.close_on_disconnect) == (CALLEE, False, False, False)
