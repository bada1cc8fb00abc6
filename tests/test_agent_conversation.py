"""The agent's tools, driven by a scripted model in livekit-agents' in-process text session.

Each test runs a real ``AgentSession`` with ``ScriptedLLM`` (no network) against a real
attempt in Redis; what the tools record reaches the ledger through ``finish_call``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import AgentSession

from agent_worker.agent import OutboundAgent
from agent_worker.ledger import CallLedger
from agent_worker.record import CallEnd, CallRecord, EndReason
from agent_worker.testing import Reply, ScriptedLLM, call, dialed_attempt, say
from dialer.models import DispatchMetadata
from dialer.store import Store

#: 2025-03-10 12:00 UTC, a Monday.
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC).timestamp()
CAMPAIGN = {
    "instructions": "Remind {first_name} about the spring sale and ask if they want a catalogue.",
    "dispositions": ["completed", "interested", "not_interested", "callback_requested"],
    "capture_fields": {"email": "the email address for the catalogue"},
    "transfer_number": "+12025550199",
}


class Actions:
    """The call-level actions the tools may take, recorded."""

    def __init__(self) -> None:
        self.hung_up = False
        self.transfers: list[str] = []

    async def hang_up(self) -> None:
        self.hung_up = True

    async def transfer(self, number: str) -> None:
        self.transfers.append(number)


class Conversation:
    def __init__(self, store: Store, metadata: DispatchMetadata, replies: list[Reply]) -> None:
        self.store = store
        self.metadata = metadata
        self.llm = ScriptedLLM(replies)
        self.record = CallRecord.for_call(metadata)
        self.record.answered_at = NOW
        self.ledger = CallLedger(store, metadata.call_id, metadata.phone_e164)
        self.actions = Actions()
        self.agent = OutboundAgent(metadata, self.record, self.ledger, self.actions, clock=lambda: NOW)

    async def finish(self) -> dict[str, Any]:
        result = self.record.result(CallEnd(EndReason.CALLEE_HUNG_UP, NOW + 60))
        assert result is not None
        await self.ledger.finish(result)
        cid, contact, seq = DispatchMetadata.parse_call_id(self.metadata.call_id)
        stored = self.store.result(cid, f"{contact}:{seq}")
        assert stored is not None
        return stored


def converse(store: Store, tmp_path: Path, replies: list[Reply],
             scenario: Callable[[Conversation, AgentSession], Coroutine[Any, Any, Any]], **config: Any) -> Any:
    metadata = dialed_attempt(store, tmp_path, **{**CAMPAIGN, **config})
    conversation = Conversation(store, metadata, replies)

    async def main() -> Any:
        async with AgentSession(llm=conversation.llm) as session:
            await session.start(conversation.agent)
            return await scenario(conversation, session)

    return asyncio.run(main())


def test_a_recorded_disposition_and_notes_reach_the_result(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> dict[str, Any]:
        result = await session.run(user_input="Yes, send me the catalogue.")
        result.expect.next_event().is_function_call(name="record_disposition")
        result.expect.next_event().is_function_call_output(is_error=False)
        return await c.finish()

    stored = converse(store, tmp_path, [call("record_disposition", disposition="interested",
                                             notes="Wants the catalogue by email."), say("Wonderful!")], scenario)
    assert (stored["disposition"], stored["notes"]) == ("interested", "Wants the catalogue by email.")


def test_a_disposition_outside_the_campaigns_set_is_refused(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> str:
        result = await session.run(user_input="I'll buy ten.")
        result.expect.next_event().is_function_call(name="record_disposition")
        result.expect.next_event().is_function_call_output(is_error=True)
        return c.record.disposition

    assert converse(store, tmp_path, [call("record_disposition", disposition="sold"), say("Sorry?")], scenario) == ""


def test_opting_out_puts_the_number_on_the_dnc_list_before_the_call_ends(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> bool:
        await session.run(user_input="Stop calling me.")
        return await asyncio.to_thread(c.store.dnc_contains, c.metadata.phone_e164)

    assert converse(store, tmp_path, [call("opt_out"), say("Understood. Goodbye.")], scenario) is True


def test_an_opted_out_call_ends_with_outcome_opted_out(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> dict[str, Any]:
        await session.run(user_input="Take me off your list.")
        return await c.finish()

    stored = converse(store, tmp_path, [call("opt_out"), say("Done. Goodbye.")], scenario)
    assert (stored["outcome"], stored["disposition"]) == ("opted_out", "opted_out")


def test_a_callback_is_saved_with_the_agreed_time(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> dict[str, Any]:
        await session.run(user_input="Call me Friday at half past three.")
        return await c.finish()

    stored = converse(store, tmp_path, [call("schedule_callback", when="2025-03-14T15:30:00-04:00"),
                                        say("Friday at 3:30 it is.")], scenario)
    assert (stored["callback_at"], stored["disposition"]) == ("2025-03-14T15:30:00-04:00", "callback_requested")


def test_a_callback_without_an_offset_is_in_the_callees_time_zone(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> str | None:
        await session.run(user_input="Tomorrow at nine.")
        return c.record.callback_at

    assert converse(store, tmp_path, [call("schedule_callback", when="2025-03-11T09:00"), say("Sure.")],
                    scenario) == "2025-03-11T09:00:00-04:00"


def test_a_callback_in_the_past_is_refused(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> str | None:
        result = await session.run(user_input="Call me last week.")
        result.expect.next_event().is_function_call(name="schedule_callback")
        result.expect.next_event().is_function_call_output(is_error=True)
        return c.record.callback_at

    assert converse(store, tmp_path, [call("schedule_callback", when="2025-03-01T10:00:00+00:00"), say("Hm.")],
                    scenario) is None


def test_captured_answers_reach_the_result(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> dict[str, Any]:
        await session.run(user_input="It's ada at example dot com.")
        return await c.finish()

    stored = converse(store, tmp_path, [call("save_answer", field="email", value="ada@example.com"), say("Got it.")],
                      scenario)
    assert stored["captured"] == {"email": "ada@example.com"}


def test_a_field_the_campaign_does_not_collect_is_refused(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> dict[str, str]:
        result = await session.run(user_input="My birthday is in May.")
        result.expect.next_event().is_function_call(name="save_answer")
        result.expect.next_event().is_function_call_output(is_error=True)
        return c.record.captured

    assert converse(store, tmp_path, [call("save_answer", field="birthday", value="May"), say("Noted.")],
                    scenario) == {}


def test_end_call_hangs_up(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> bool:
        await session.run(user_input="That's all, bye.")
        return c.actions.hung_up

    assert converse(store, tmp_path, [Reply(text="Goodbye!", tool_calls=[("end_call", {})])], scenario) is True


def test_a_transfer_goes_to_the_campaigns_number(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> tuple[list[str], dict[str, Any]]:
        await session.run(user_input="Can I talk to a real person?")
        return c.actions.transfers, await c.finish()

    transfers, stored = converse(store, tmp_path, [call("transfer_to_person")], scenario)
    assert (transfers, stored["disposition"]) == (["+12025550199"], "transferred")


@pytest.mark.parametrize(("transfer_number", "offered"), [("+12025550199", True), (None, False)])
def test_the_transfer_tool_exists_only_with_a_transfer_number(store: Store, tmp_path: Path,
                                                             transfer_number: str | None, offered: bool) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> bool:
        return any(getattr(tool, "id", "") == "transfer_to_person" for tool in c.agent.tools)

    assert converse(store, tmp_path, [], scenario, transfer_number=transfer_number) is offered


def test_the_model_is_told_the_campaigns_purpose_and_outcomes(store: Store, tmp_path: Path) -> None:
    async def scenario(c: Conversation, session: AgentSession) -> str:
        await session.run(user_input="Hello?")
        system = c.llm.requests[0].items[0]
        return getattr(system, "text_content", "") or ""

    prompt = converse(store, tmp_path, [say("Hi Ada!")], scenario)
    assert "Remind Ada about the spring sale" in prompt
    assert "- not_interested" in prompt
    assert "- email: the email address for the catalogue" in prompt
