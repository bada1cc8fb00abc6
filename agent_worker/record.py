"""What the agent learns during one call, and how a call's end becomes its one result.

The agent reports a call when it owns it: the callee answered, or the agent itself
failed (bad dispatch metadata, the dialed participant never joined, an error). A call
that ends before anyone answered (busy, no answer, declined) belongs to the dialer,
which classifies the SIP failure; the agent writes nothing for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from dialer.models import CallResult, DispatchMetadata, Outcome

from .screening import Screening


class EndReason(StrEnum):
    CALLEE_HUNG_UP = "callee_hung_up"  #: the callee hung up or the line dropped
    AGENT_HUNG_UP = "agent_hung_up"  #: the agent ended the call
    TRANSFERRED = "transferred"  #: the callee was handed to a person
    VOICEMAIL = "voicemail"  #: a machine answered; a message was left or the agent hung up
    TIMEOUT = "timeout"  #: the call reached its maximum length
    ERROR = "error"  #: the agent failed
    SHUTDOWN = "shutdown"  #: the agent's job was shut down, or its session or room closed under it
    NOT_ANSWERED = "not_answered"  #: the call ended before anyone answered; the dialer reports it
    NO_PARTICIPANT = "no_participant"  #: the dialed participant never joined the room
    BAD_METADATA = "bad_metadata"  #: the dispatch did not carry a usable call description


#: Ends that are failures of the agent itself: reported even when nobody answered.
AGENT_FAILURES = frozenset({EndReason.ERROR, EndReason.NO_PARTICIPANT, EndReason.BAD_METADATA})


class SystemDisposition(StrEnum):
    """Dispositions the agent sets itself when the conversation did not record one."""

    VOICEMAIL = "voicemail"  #: an answering machine answered (and took the whole message, if one was left)
    VOICEMAIL_CUT_OFF = "voicemail_cut_off"  #: the voicemail message was cut off before its end
    OPTED_OUT = "opted_out"  #: the callee asked not to be called again
    TRANSFERRED = "transferred"  #: the callee was handed to a person


@dataclass(frozen=True, slots=True)
class CallEnd:
    reason: EndReason
    at: float
    detail: str = ""  #: the error, or why the job shut down


@dataclass
class CallRecord:
    """Mutable state of one call; the tools write to it, the end of the call reads it."""

    call_id: str
    phone_e164: str
    dispositions: tuple[str, ...] = ()
    capture_fields: dict[str, str] = field(default_factory=dict)
    max_call_duration_s: int = 600
    answered_at: float | None = None
    sip_call_id: str = ""
    disposition: str = ""
    notes: str = ""
    captured: dict[str, str] = field(default_factory=dict)
    callback_at: str | None = None
    opted_out: bool = False
    transfer_to: str | None = None
    screening: Screening | None = None
    voicemail_left: bool = False  #: the voicemail message was played to its end
    voicemail_cut_off: bool = False  #: the voicemail message started but did not play to its end
    transcript: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def for_call(cls, metadata: DispatchMetadata) -> CallRecord:
        return cls(
            call_id=metadata.call_id,
            phone_e164=metadata.phone_e164,
            dispositions=tuple(metadata.dispositions),
            capture_fields=dict(metadata.capture_fields),
            max_call_duration_s=metadata.max_call_duration_s,
        )

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def reached_machine(self) -> bool:
        return self.screening is not None and self.screening.is_machine

    def add_line(self, role: str, text: str) -> None:
        if text.strip():
            self.transcript.append({"role": role, "text": text.strip()})

    def result(self, end: CallEnd) -> CallResult | None:
        """The call's result, or None when the call is not the agent's to report."""
        if not self.answered and end.reason not in AGENT_FAILURES:
            return None
        return CallResult(
            outcome=self._outcome(end),
            disposition=self.disposition or self._system_disposition(),
            notes=self.notes or self._system_notes(),
            captured=dict(self.captured),
            answered_at=self.answered_at,
            ended_at=end.at,
            talk_s=round(max(0.0, end.at - self.answered_at), 3) if self.answered_at is not None else 0.0,
            transcript=list(self.transcript),
            sip_call_id=self.sip_call_id,
            callback_at=self.callback_at,
            error=self._error(end),
        )

    def _outcome(self, end: CallEnd) -> Outcome:
        if self.opted_out:
            return Outcome.OPTED_OUT
        if end.reason is EndReason.SHUTDOWN:
            return Outcome.SHUTDOWN
        if self.reached_machine:
            return Outcome.VOICEMAIL
        if end.reason in AGENT_FAILURES:
            return Outcome.FAILED
        return Outcome.ANSWERED

    def _system_disposition(self) -> str:
        if self.opted_out:
            return SystemDisposition.OPTED_OUT.value
        if self.reached_machine:
            cut_off = self.voicemail_cut_off
            return (SystemDisposition.VOICEMAIL_CUT_OFF if cut_off else SystemDisposition.VOICEMAIL).value
        if self.transfer_to:
            return SystemDisposition.TRANSFERRED.value
        return ""

    def _system_notes(self) -> str:
        if self.voicemail_left:
            return "left a voicemail message"
        if self.voicemail_cut_off:
            return "the voicemail message was cut off before its end"
        return ""

    def _error(self, end: CallEnd) -> str:
        if end.reason is EndReason.TIMEOUT:
            return f"the call reached its maximum length of {self.max_call_duration_s} s"
        if end.reason is EndReason.SHUTDOWN:
            return f"the agent was shut down during the call ({end.detail or 'no reason given'})"
        if end.reason in AGENT_FAILURES:
            return end.detail or end.reason.value
        return ""
