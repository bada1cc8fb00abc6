"""What the sandbox reports: the INVITE log's records and the simulated conversations."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class CallStatus(StrEnum):
    """Values of the ``sip.callStatus`` participant attribute."""

    DIALING = "dialing"  #: INVITE sent, no provisional response yet
    RINGING = "ringing"  #: 180 Ringing
    ACTIVE = "active"  #: answered
    HANGUP = "hangup"  #: ended


@dataclass(frozen=True)
class SimulatedConversation:
    """What the sandbox reports when an answered call ends, in place of the agent."""

    room: str
    participant_identity: str
    number: str
    #: The ``metadata`` of the room's agent dispatch, or None when there was none.
    dispatch_metadata: str | None
    #: ``answer``, ``voicemail``, ``opt_out`` or ``hangup_early``.
    outcome: str
    disposition: str
    answered_at: float
    ended_at: float
    talk_s: float
    transcript: tuple[dict[str, str], ...]
    sip_call_id: str
    #: ``completed``, or why the call was cut short (``room_deleted``, ...).
    end_reason: str = "completed"
    #: The callee asked to be called back this many seconds after the call ended.
    callback_in_s: float | None = None


ConversationSink = Callable[[SimulatedConversation], Awaitable[None]]


@dataclass
class CallRecord:
    """One INVITE in the sandbox's call log. Times are unix seconds."""

    number: str
    room: str
    participant_identity: str
    #: The ``dialer.attempt`` participant attribute (an int when numeric), or None.
    attempt: int | str | None
    trunk_id: str
    from_number: str
    started_at: float
    #: Scenario outcome name.
    outcome: str
    sip_call_id: str
    participant_sid: str
    #: 1 for the first INVITE to this number, 2 for the second, ...
    invite: int
    request_id: str
    wait_until_answered: bool
    ringing_timeout_s: float
    call_status: str = CallStatus.DIALING.value
    ringing_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    sip_status_code: int | None = None
    sip_status: str | None = None
    #: The Twirp code the dial failed with, if it failed.
    error_code: str | None = None
    end_reason: str | None = None
    #: Set when the ``error_after_rate`` fault answered 503 after doing the work.
    api_error_after: bool = False
    transferred_to: str | None = None
    #: DTMF digits asked for (``dtmf`` of the request); LiveKit SIP plays them once the call is
    #: answered, each "w" a 0.5 s pause first (livekit/sip pkg/sip/outbound.go).
    dtmf: str = ""
    #: When the digits (after their pauses) were played; None until the answer.
    dtmf_played_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: What the simulated parties say, per kind of answered call.
TRANSCRIPTS: dict[str, tuple[dict[str, str], ...]] = {
    "answer": (
        {"role": "agent", "text": "Hello, this is the automated assistant calling about your appointment."},
        {"role": "user", "text": "Oh hi, yes, that time still works for me."},
        {"role": "agent", "text": "Great, you're confirmed. Thank you and goodbye!"},
    ),
    "voicemail": (
        {"role": "user", "text": "The person you are calling is not available. Please leave a message."},
        {"role": "agent", "text": "Hello, this is the automated assistant. Please call us back. Goodbye."},
    ),
    "opt_out": (
        {"role": "agent", "text": "Hello, this is the automated assistant calling about your appointment."},
        {"role": "user", "text": "Please stop calling me and take me off your list."},
        {"role": "agent", "text": "Understood, we will not call you again. Goodbye."},
    ),
    "hangup_early": (
        {"role": "agent", "text": "Hello, this is the automated assistant calling about"},
    ),
}
#: The disposition of each kind of answered call when its rule names none.
DEFAULT_DISPOSITIONS = {"answer": "completed", "voicemail": "voicemail", "opt_out": "opted_out",
                        "hangup_early": "hung_up_early"}
