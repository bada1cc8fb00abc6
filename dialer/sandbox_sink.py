"""The sandbox's stand-in for the agent: a simulated conversation ends through ``finish_call``,
the same path the real agent worker reports through."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from .dialing import finish_call
from .models import CallResult, DispatchMetadata, Outcome
from .store import Store

log = logging.getLogger(__name__)

#: Scenario outcome -> (final outcome, default disposition).
OUTCOMES = {
    "answer": (Outcome.ANSWERED, "completed"),
    "slow": (Outcome.ANSWERED, "completed"),
    "voicemail": (Outcome.VOICEMAIL, "voicemail"),
    "opt_out": (Outcome.OPTED_OUT, "opted_out"),
    "hangup_early": (Outcome.ANSWERED, "hung_up_early"),
}


def make_sink(store: Store) -> Any:
    """An async callback for ``SandboxServer(conversation_sink=...)``."""

    async def sink(conversation: Any) -> None:
        try:
            metadata = DispatchMetadata.model_validate_json(conversation.dispatch_metadata or "")
        except ValidationError:
            log.warning("sandbox call in room %s has no dialer dispatch metadata; result dropped",
                        conversation.room)
            return
        outcome, default_disposition = OUTCOMES.get(conversation.outcome, (Outcome.ANSWERED, "completed"))
        disposition = default_disposition
        if outcome is Outcome.ANSWERED and conversation.disposition and conversation.outcome != "hangup_early":
            disposition = conversation.disposition
        callback_at = None
        if conversation.callback_in_s:
            callback_at = datetime.fromtimestamp(conversation.ended_at + conversation.callback_in_s, UTC).isoformat()
            disposition = "callback_requested"
        result = CallResult(
            outcome=outcome,
            disposition=disposition,
            callback_at=callback_at,
            answered_at=conversation.answered_at,
            ended_at=conversation.ended_at,
            talk_s=conversation.talk_s,
            transcript=list(conversation.transcript),
            sip_call_id=conversation.sip_call_id or "",
        )
        await asyncio.to_thread(finish_call, store, metadata.call_id, result)

    return sink
