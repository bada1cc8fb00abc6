"""Typed domain: campaign and attempt states, final outcomes, contacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field


class CampaignState(StrEnum):
    INGESTING = "ingesting"  #: being created; invisible until ingest finishes
    DRAFT = "draft"  #: created, not started
    RUNNING = "running"  #: the pacer dials its due contacts
    PAUSED = "paused"  #: no new dials; calls in progress finish
    COMPLETED = "completed"  #: every contact has a final outcome
    CANCELLED = "cancelled"  #: stopped for good; undialed contacts are cancelled


class Outcome(StrEnum):
    """A contact's final outcome (DESIGN.md section 5)."""

    ANSWERED = "answered"  #: a person answered and the conversation ended
    VOICEMAIL = "voicemail"  #: an answering machine picked up
    BUSY = "busy"  #: busy on every attempt
    NO_ANSWER = "no_answer"  #: nobody answered on any attempt
    DECLINED = "declined"  #: the callee or the network declined the call
    INVALID_NUMBER = "invalid_number"  #: the number does not exist
    CARRIER_ERROR = "carrier_error"  #: the carrier failed on every attempt
    FAILED = "failed"  #: an error the policy does not retry
    OPTED_OUT = "opted_out"  #: asked not to be called again, or on the DNC list
    CANCELLED = "cancelled"  #: the campaign was cancelled before the contact was done
    SHUTDOWN = "shutdown"  #: answered, then cut off because the agent's job shut down mid-call


#: Outcomes that end a contact's current number when the campaign dials alternate numbers
#: (``alternate_numbers: next_on_failure``): the number does not exist, the network declined
#: it, or it stayed busy / unanswered through ``max_attempts``. The contact moves on to its next
#: number; any other outcome ends the contact.
NEXT_NUMBER_OUTCOMES = (Outcome.INVALID_NUMBER, Outcome.DECLINED, Outcome.BUSY, Outcome.NO_ANSWER)

#: Outcomes best first: a contact that tried several numbers ends with the best of their outcomes
#: (answered on the second number after the first was invalid is ``answered``).
OUTCOME_PREFERENCE = (
    Outcome.ANSWERED, Outcome.OPTED_OUT, Outcome.SHUTDOWN, Outcome.VOICEMAIL, Outcome.BUSY, Outcome.NO_ANSWER,
    Outcome.CARRIER_ERROR, Outcome.DECLINED, Outcome.FAILED, Outcome.INVALID_NUMBER, Outcome.CANCELLED,
)


class AttemptState(StrEnum):
    QUEUED = "queued"  #: taken from the due set; a dial task is on its way
    DIALING = "dialing"  #: the dial task claimed it; the INVITE may be out
    IN_CALL = "in_call"  #: answered; the agent owns it until it ends
    DONE = "done"  #: finalised exactly once


@dataclass(frozen=True, slots=True)
class ContactNumber:
    """One of a contact's numbers, normalised."""

    e164: str
    #: Digits sent as DTMF once the call is answered ("x12" in the file); "" for none.
    extension: str = ""
    number_type: str = ""
    #: The cell text the number came from.
    raw: str = ""

    @property
    def dial_key(self) -> str:
        """What makes a number a duplicate: the number, and its extension if any."""
        return f"{self.e164};ext={self.extension}" if self.extension else self.e164

    def to_json_dict(self) -> dict[str, Any]:
        data = {"e164": self.e164, "number_type": self.number_type, "raw": self.raw}
        if self.extension:
            data["extension"] = self.extension
        return data


@dataclass(frozen=True, slots=True)
class Contact:
    """One accepted campaign row. ``id`` is the CSV row number (the header is row 1).

    ``phone_e164``/``extension`` are the first number, the one dialed first; a contact with
    several numbers (several phone columns, or several numbers in a cell) also lists them all,
    that one first, under ``numbers``. Numbers dropped at ingest (invalid, on the DNC list, or
    already another contact's) are kept under ``dropped`` with the reason, for the report.
    """

    id: int
    phone_e164: str
    phone_raw: str
    number_type: str
    time_zones: tuple[str, ...]
    variables: dict[str, str] = field(default_factory=dict)
    #: Digits sent as DTMF once the call is answered ("x12" in the file); "" for none.
    extension: str = ""
    #: Every number, the first one included, when there are several; () when there is one.
    numbers: tuple[ContactNumber, ...] = ()
    #: Numbers of the row that are not called: {"raw", "reason", "detail"}.
    dropped: tuple[dict[str, str], ...] = ()

    @classmethod
    def with_numbers(cls, id: int, numbers: list[ContactNumber], *, phone_raw: str, time_zones: tuple[str, ...],
                     variables: dict[str, str], dropped: list[dict[str, str]]) -> Contact:
        first = numbers[0]
        return cls(id=id, phone_e164=first.e164, phone_raw=phone_raw, number_type=first.number_type,
                   time_zones=time_zones, variables=variables, extension=first.extension,
                   numbers=tuple(numbers) if len(numbers) > 1 else (), dropped=tuple(dropped))

    @property
    def dial_key(self) -> str:
        """What makes a row a duplicate: the number, and its extension if any."""
        return f"{self.phone_e164};ext={self.extension}" if self.extension else self.phone_e164

    @property
    def all_numbers(self) -> tuple[ContactNumber, ...]:
        return self.numbers or (ContactNumber(self.phone_e164, self.extension, self.number_type, self.phone_raw),)

    def to_json_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "phone_e164": self.phone_e164,
            "phone_raw": self.phone_raw,
            "number_type": self.number_type,
            "time_zones": list(self.time_zones),
            "variables": self.variables,
        }
        if self.extension:
            data["extension"] = self.extension
        if self.numbers:
            data["numbers"] = [number.to_json_dict() for number in self.numbers]
        if self.dropped:
            data["dropped"] = list(self.dropped)
        return data

    def to_json(self) -> str:
        """The stored form: compact JSON, non-ASCII kept as is (orjson: a fifth of the ingest's time was
        ``json.dumps`` here)."""
        return orjson.dumps(self.to_json_dict()).decode()

    @staticmethod
    def one_number_json(id: int, e164: str, number_type: str, extension: str, *, phone_raw: str,
                        time_zones: tuple[str, ...], variables: dict[str, str]) -> str:
        """The stored form of a contact with one number and none dropped, built without the
        ``Contact`` and ``ContactNumber`` objects (the ingest's path for most rows; building them
        was a fifth of its time). Equal to ``Contact.with_numbers(id, [ContactNumber(e164,
        extension, number_type, ...)], ..., dropped=[]).to_json()``. Text, not orjson's bytes:
        each of those keeps a 4 KiB buffer, 200 MiB for the rows of a chunk."""
        data: dict[str, Any] = {"id": id, "phone_e164": e164, "phone_raw": phone_raw, "number_type": number_type,
                                "time_zones": time_zones, "variables": variables}
        if extension:
            data["extension"] = extension
        return orjson.dumps(data).decode()

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Contact:
        return cls(
            id=int(data["id"]),
            phone_e164=data["phone_e164"],
            phone_raw=data.get("phone_raw", ""),
            number_type=data.get("number_type", ""),
            time_zones=tuple(data.get("time_zones", ())),
            variables=dict(data.get("variables", {})),
            extension=str(data.get("extension", "")),
            numbers=tuple(ContactNumber(str(n["e164"]), str(n.get("extension", "")), str(n.get("number_type", "")),
                                        str(n.get("raw", ""))) for n in data.get("numbers", ())),
            dropped=tuple(dict(entry) for entry in data.get("dropped", ())),
        )


def contact_numbers(contact: dict[str, Any]) -> list[tuple[str, str]]:
    """(E.164, extension) of each number of a stored contact, in dialing order."""
    listed = contact.get("numbers")
    if listed:
        return [(str(n["e164"]), str(n.get("extension", ""))) for n in listed]
    return [(str(contact.get("phone_e164", "")), str(contact.get("extension", "")))]


class DispatchMetadata(BaseModel):
    """What the dialer tells the agent about a call (the agent dispatch's ``metadata``).

    Shared by ``dialer`` and ``agent_worker``; unknown keys are ignored so that a newer
    dialer can talk to an older agent.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: "<campaign>:<contact>:<seq>", the attempt's id in the ledger.
    call_id: str
    campaign_id: str
    contact_id: int
    attempt: int
    phone_e164: str
    #: The SIP participant the agent must bind to, never "the first participant".
    participant_identity: str
    variables: dict[str, str] = Field(default_factory=dict)
    instructions: str = ""
    greeting: str = ""
    voicemail_action: str = "hangup"
    voicemail_message: str = ""
    dispositions: list[str] = Field(default_factory=list)
    capture_fields: dict[str, str] = Field(default_factory=dict)
    transfer_number: str | None = None
    max_call_duration_s: int = 600
    #: How long the callee's phone may ring before the dial gives up.
    ring_timeout_s: int = 30

    @staticmethod
    def make_call_id(campaign_id: str, contact_id: int, attempt: int) -> str:
        return f"{campaign_id}:{contact_id}:{attempt}"

    @staticmethod
    def parse_call_id(call_id: str) -> tuple[str, int, int]:
        campaign_id, contact, attempt = call_id.split(":")
        return campaign_id, int(contact), int(attempt)


class CallResult(BaseModel):
    """What the agent (or the sandbox standing in for it) reports when a call ends."""

    model_config = ConfigDict(extra="ignore")

    outcome: Outcome = Outcome.ANSWERED
    disposition: str = ""
    notes: str = ""
    captured: dict[str, str] = Field(default_factory=dict)
    answered_at: float | None = None
    ended_at: float | None = None
    talk_s: float = 0.0
    transcript: list[dict[str, str]] = Field(default_factory=list)
    sip_call_id: str = ""
    callback_at: str | None = None
    error: str = ""
