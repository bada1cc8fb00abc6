"""The outbound voice agent and its tools. A tool's docstring is prompt text the model reads."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from livekit.agents import Agent, FunctionTool, RunContext, ToolError, function_tool
from livekit.agents.llm import Tool, Toolset

from dialer.dialing import CALLBACK_HORIZON
from dialer.models import DispatchMetadata

from . import prompts
from .ledger import CallLedger
from .record import CallRecord

log = logging.getLogger(__name__)

#: How far ahead a callback may be scheduled: as far as the dialer keeps callbacks.
MAX_CALLBACK_AHEAD = CALLBACK_HORIZON
#: The campaign disposition a scheduled callback implies, when the campaign has it.
CALLBACK_DISPOSITION = "callback_requested"


class CallActions(Protocol):
    """What the tools may do to the call itself."""

    async def hang_up(self) -> None: ...

    async def transfer(self, number: str) -> None: ...


class OutboundAgent(Agent):
    """Talks to the callee; says nothing until the call tells it to (see ``agent_worker.call``)."""

    def __init__(self, metadata: DispatchMetadata, record: CallRecord, ledger: CallLedger,
                 actions: CallActions, clock: Callable[[], float] = time.time) -> None:
        self._metadata = metadata
        self._record = record
        self._ledger = ledger
        self._actions = actions
        self._clock = clock
        extra_tools: list[Tool | Toolset] = [self._transfer_tool()] if metadata.transfer_number else []
        super().__init__(
            instructions=prompts.instructions(metadata, datetime.fromtimestamp(clock(), UTC)),
            tools=extra_tools,
        )

    @function_tool
    async def record_disposition(self, context: RunContext, disposition: str, notes: str = "") -> str:
        """Record how the call went. Use it once you know the outcome, before you say goodbye.

        Args:
            disposition: One of the outcomes listed in your instructions, written exactly as listed.
            notes: One or two plain sentences a colleague could act on, such as what the person
                asked for or why they said no.
        """
        choice = disposition.strip()
        if self._record.dispositions and choice not in self._record.dispositions:
            raise ToolError(f"'{choice}' is not one of the outcomes you can record. "
                            f"Choose one of: {', '.join(self._record.dispositions)}.")
        self._record.disposition = choice
        if notes.strip():
            self._record.notes = notes.strip()
        return f"Recorded the outcome '{choice}'."

    @function_tool
    async def save_answer(self, context: RunContext, field: str, value: str) -> str:
        """Save a piece of information the person gave you, as soon as they give it.

        Args:
            field: The name of the item, exactly as listed under "Information to collect".
            value: The person's answer, written out in full and corrected for obvious
                mishearings (spell names and addresses the way they confirmed them).
        """
        name = field.strip()
        if name not in self._record.capture_fields:
            allowed = ", ".join(self._record.capture_fields) or "nothing on this call"
            raise ToolError(f"'{name}' is not something this call collects. You can save: {allowed}.")
        if not value.strip():
            raise ToolError("The answer is empty. Ask the person again, or leave it unsaved.")
        self._record.captured[name] = value.strip()
        return f"Saved {name}."

    @function_tool
    async def schedule_callback(self, context: RunContext, when: str, notes: str = "") -> str:
        """Schedule a call back at the time the person asked for.

        Confirm the day and time with them first.

        Args:
            when: The agreed time as an ISO 8601 date and time with the person's UTC offset,
                for example 2025-03-14T15:30:00-05:00.
            notes: Anything to keep in mind for the next call, in one sentence.
        """
        moment = self._parse_callback_time(when)
        self._record.callback_at = moment.isoformat()
        if not self._record.disposition and CALLBACK_DISPOSITION in self._record.dispositions:
            self._record.disposition = CALLBACK_DISPOSITION
        if notes.strip():
            self._record.notes = notes.strip()
        return f"Callback scheduled for {moment.isoformat()}. Confirm it to the person in plain words."

    @function_tool
    async def opt_out(self, context: RunContext) -> str:
        """The person asked not to be called again, or to be removed from the calling list.

        Call this the moment they ask, even mid-sentence: they are taken off the list at once.
        """
        await self._ledger.add_to_dnc()
        self._record.opted_out = True
        return ("They are on the do-not-call list now. Tell them they will not be called again, "
                "apologise for the interruption, say goodbye, then call end_call.")

    @function_tool
    async def end_call(self, context: RunContext) -> None:
        """Hang up. Use it only after you have said goodbye and the person has nothing more to add."""
        await context.wait_for_playout()
        await self._actions.hang_up()

    def _transfer_tool(self) -> FunctionTool:
        number = self._metadata.transfer_number or ""

        async def transfer_to_person(context: RunContext) -> None:
            """Transfer the person to a colleague on the phone.

            Tell them you are connecting them to a colleague and ask them to hold before you call this.
            """
            await context.wait_for_playout()
            self._record.transfer_to = number
            try:
                await self._actions.transfer(number)
            except Exception as exc:
                self._record.transfer_to = None
                log.warning("transfer failed: %s", exc, extra={"call_id": self._record.call_id})
                raise ToolError("The transfer did not go through. Apologise, then offer to help them "
                                "yourself or to arrange a call back.") from exc

        return function_tool(transfer_to_person)

    def _parse_callback_time(self, when: str) -> datetime:
        try:
            moment = datetime.fromisoformat(when.strip())
        except ValueError:
            raise ToolError(f"'{when}' is not a date and time I can use. "
                            "Write it like 2025-03-14T15:30:00-05:00.") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self._callee_zone())
        now = datetime.fromtimestamp(self._clock(), UTC)
        if moment <= now:
            raise ToolError("That time has already passed. Agree on a time in the future.")
        if moment - now > MAX_CALLBACK_AHEAD:
            raise ToolError(f"That is too far ahead. Agree on a time within the next {MAX_CALLBACK_AHEAD.days} days.")
        return moment

    def _callee_zone(self) -> ZoneInfo:
        name = self._metadata.variables.get("timezone", "")
        try:
            return ZoneInfo(name) if name else ZoneInfo("UTC")
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")
