"""Typed domain: campaign and attempt states, final outcomes, contacts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


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


class ContactState(StrEnum):
    PENDING = "pending"  #: waiting in the due set for its next attempt
    IN_FLIGHT = "in_flight"  #: an attempt is queued, dialing or in a call
    FINAL = "final"  #: has its final outcome


class AttemptState(StrEnum):
    QUEUED = "queued"  #: taken from the due set; a dial task is on its way
    DIALING = "dialing"  #: the dial task claimed it; the INVITE may be out
    IN_CALL = "in_call"  #: answered; the agent owns it until it ends
    DONE = "done"  #: finalised exactly once


@dataclass(frozen=True, slots=True)
class Contact:
    """One accepted campaign row. ``id`` is the CSV row number (the header is row 1)."""

    id: int
    phone_e164: str
    phone_raw: str
    number_type: str
    time_zones: tuple[str, ...]
    variables: dict[str, str] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["time_zones"] = list(self.time_zones)
        return data

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Contact:
        return cls(
            id=int(data["id"]),
            phone_e164=data["phone_e164"],
            phone_raw=data.get("phone_raw", ""),
            number_type=data.get("number_type", ""),
            time_zones=tuple(data.get("time_zones", ())),
            variables=dict(data.get("variables", {})),
        )
