"""The SIP outcome policy (DESIGN.md section 5): what a failed dial means and what happens next.

This is the one place that decides whether a failure is retried, rescheduled,
final, or a reason to pause. It reads ``SipCallError``'s SIP code first and the
Twirp code second (older LiveKit SIP versions mapped most failures to 500/503).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .models import Outcome


class SipClass(StrEnum):
    BUSY = "busy"  #: 486, 600
    NO_ANSWER = "no_answer"  #: 480, 408, 487, ring timeout
    INVALID_NUMBER = "invalid_number"  #: 404, 410, 484, 485, 604
    DECLINED = "declined"  #: 603, 607, 608
    CARRIER_ERROR = "carrier_error"  #: 500, 502, 503, 504
    CAPACITY = "capacity"  #: provider CPS/channel limits; LiveKit resource_exhausted without a code
    TRUNK_CONFIG = "trunk_config"  #: 401, 403, 407: credentials or trunk set-up
    UNKNOWN = "unknown"  #: anything else


class Action(StrEnum):
    RESCHEDULE = "reschedule"  #: back to the due set after the outcome's delay; counts an attempt
    RETRY_SOON = "retry_soon"  #: retried inside the dial task, then rescheduled
    FINAL = "final"  #: the contact is done
    SLOW_DOWN = "slow_down"  #: not counted; the trunk cools down and the contact is re-queued
    PAUSE = "pause"  #: not counted; the campaign pauses with the reason


@dataclass(frozen=True)
class Rule:
    action: Action
    #: Whether the failure uses up one of the contact's attempts.
    counts: bool
    #: The contact's outcome when this ends it (now, or when attempts run out).
    outcome: Outcome


RULES: Mapping[SipClass, Rule] = {
    SipClass.BUSY: Rule(Action.RESCHEDULE, True, Outcome.BUSY),
    SipClass.NO_ANSWER: Rule(Action.RESCHEDULE, True, Outcome.NO_ANSWER),
    SipClass.INVALID_NUMBER: Rule(Action.FINAL, True, Outcome.INVALID_NUMBER),
    SipClass.DECLINED: Rule(Action.FINAL, True, Outcome.DECLINED),
    SipClass.CARRIER_ERROR: Rule(Action.RETRY_SOON, True, Outcome.CARRIER_ERROR),
    SipClass.CAPACITY: Rule(Action.SLOW_DOWN, False, Outcome.CARRIER_ERROR),
    SipClass.TRUNK_CONFIG: Rule(Action.PAUSE, False, Outcome.FAILED),
    SipClass.UNKNOWN: Rule(Action.FINAL, True, Outcome.FAILED),
}

DEFAULT_SIP_CODES: Mapping[int, SipClass] = {
    **dict.fromkeys((486, 600), SipClass.BUSY),
    **dict.fromkeys((480, 408, 487), SipClass.NO_ANSWER),
    **dict.fromkeys((404, 410, 484, 485, 604), SipClass.INVALID_NUMBER),
    **dict.fromkeys((603, 607, 608), SipClass.DECLINED),
    **dict.fromkeys((500, 502, 503, 504), SipClass.CARRIER_ERROR),
    **dict.fromkeys((401, 403, 407), SipClass.TRUNK_CONFIG),
}

#: Words providers put in the reason phrase of a rate or channel limit response.
CAPACITY_WORDS = ("cps", "limit", "capacity", "too many", "channel")
#: SIP codes that mean "the caller ID looks like spam".
SPAM_CODES = frozenset({607, 608})

#: Twirp codes without a SIP code, from LiveKit itself rather than the far end.
_TWIRP_WITHOUT_SIP: Mapping[str, SipClass] = {
    "canceled": SipClass.NO_ANSWER,  # ring timeout
    "deadline_exceeded": SipClass.NO_ANSWER,
    "resource_exhausted": SipClass.CAPACITY,
    "permission_denied": SipClass.TRUNK_CONFIG,
    "unauthenticated": SipClass.TRUNK_CONFIG,
    "not_found": SipClass.TRUNK_CONFIG,  # the trunk id does not exist
}


@dataclass(frozen=True)
class Verdict:
    """What a dial failure means."""

    sip_class: SipClass
    rule: Rule
    sip_code: int | None
    sip_status: str
    twirp_code: str
    #: 607/608: the callee's network flagged the caller ID as spam.
    spam_flagged: bool = False

    @property
    def reason(self) -> str:
        if self.sip_code is not None:
            return f"SIP {self.sip_code} {self.sip_status}".strip()
        if self.twirp_code == "canceled":
            return "ring timeout"
        if self.twirp_code == "unknown" and self.sip_class is SipClass.TRUNK_CONFIG:
            return "unauthorized"
        return self.twirp_code or self.sip_class.value


def is_ambiguous(sip_code: int | None, http_status: int) -> bool:
    """A 5xx from LiveKit itself, with no SIP answer: the request may or may not have been
    carried out, so the dial's outcome is unknown and must be read from the room."""
    return sip_code is None and http_status >= 500


def classify(
    sip_code: int | None,
    sip_status: str | None,
    twirp_code: str,
    overrides: Mapping[int, SipClass] | None = None,
    http_status: int | None = None,
) -> Verdict:
    """Classify a failed CreateSIPParticipant by its SIP code, then its Twirp code.

    LiveKit answers a bad or expired token with HTTP 401 and a plain-text body (Twirp
    code ``unknown``): that is our credentials, so it pauses like a trunk refusal.
    """
    status = sip_status or ""
    if sip_code is None and http_status in (401, 403):
        sip_class = SipClass.TRUNK_CONFIG
    elif sip_code is not None:
        sip_class = (overrides or {}).get(sip_code) or DEFAULT_SIP_CODES.get(sip_code, SipClass.UNKNOWN)
        if sip_code in (403, 503) and any(word in status.lower() for word in CAPACITY_WORDS):
            sip_class = (overrides or {}).get(sip_code, SipClass.CAPACITY)
    else:
        sip_class = _TWIRP_WITHOUT_SIP.get(twirp_code, SipClass.UNKNOWN)
    return Verdict(
        sip_class=sip_class,
        rule=RULES[sip_class],
        sip_code=sip_code,
        sip_status=status,
        twirp_code=twirp_code,
        spam_flagged=sip_code in SPAM_CODES,
    )
