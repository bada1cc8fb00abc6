"""Simulated callees: which numbers answer, fail or never pick up, read from a YAML scenario.

    ring_s: 0.2            # default ringing time before the outcome
    talk_s: 0.5            # default conversation length of an answered call
    numbers:               # exact E.164, or a prefix ending in '*'
      "+12025550142": [busy, busy, answer]
      "+1202555015*": [no_answer]
      "+12025550177": {outcomes: [answer], ring_s: 1.0, talk_s: 2.0, disposition: confirmed}
    default: [answer]      # numbers that match no rule
    faults: {api_error_rate: 0.0, error_after_rate: 0.0, latency_s: 0.0, seed: null}

A rule's outcomes apply to successive INVITEs to one number; the last one repeats.
An exact number beats a prefix, and the longest prefix wins.
"""

from __future__ import annotations

import re
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..yamlfile import read_yaml

DEFAULT_RING_S = 0.2
DEFAULT_TALK_S = 0.5
DEFAULT_SCENARIO_FILE = "default_scenario.yaml"

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_PREFIX = re.compile(r"^\+?\d{0,15}\*$")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and each bad field."""


class SimOutcome(StrEnum):
    """What the simulated callee does with one INVITE."""

    ANSWER = "answer"  #: a person answers and talks for talk_s
    VOICEMAIL = "voicemail"  #: an answering machine picks up
    OPT_OUT = "opt_out"  #: answers and asks not to be called again
    HANGUP_EARLY = "hangup_early"  #: answers and hangs up almost at once
    SLOW = "slow"  #: answers only after the client's request timeout has passed
    NO_ANSWER = "no_answer"  #: rings until the ring timeout: Twirp canceled, no SIP code
    BUSY = "busy"  #: 486 Busy Here
    GLOBAL_BUSY = "global_busy"  #: 600 Busy Everywhere
    UNAVAILABLE = "unavailable"  #: 480 Temporarily Unavailable
    REQUEST_TIMEOUT = "request_timeout"  #: 408 Request Timeout
    TERMINATED = "terminated"  #: 487 Request Terminated
    DECLINE = "decline"  #: 603 Decline
    UNWANTED = "unwanted"  #: 607 Unwanted (caller ID flagged as spam)
    REJECTED = "rejected"  #: 608 Rejected (caller ID flagged as spam)
    NOT_FOUND = "not_found"  #: 404 Not Found
    GONE = "gone"  #: 410 Gone
    ADDRESS_INCOMPLETE = "address_incomplete"  #: 484 Address Incomplete
    DOES_NOT_EXIST = "does_not_exist"  #: 604 Does Not Exist Anywhere
    NOT_ACCEPTABLE = "not_acceptable"  #: 488 Not Acceptable Here
    FORBIDDEN = "forbidden"  #: 403 Forbidden
    AUTH_REQUIRED = "auth_required"  #: 407 Proxy Authentication Required
    CARRIER_ERROR = "carrier_error"  #: 503 Service Unavailable
    SERVER_ERROR = "server_error"  #: 500 Server Internal Error
    BAD_GATEWAY = "bad_gateway"  #: 502 Bad Gateway
    GATEWAY_TIMEOUT = "gateway_timeout"  #: 504 Server Time-out
    CAPACITY = "capacity"  #: 503 "CPS limit exceeded"
    CHANNEL_LIMIT = "channel_limit"  #: 403 "Channel limit reached"

    @property
    def answers(self) -> bool:
        return self in ANSWERED

    @property
    def sip_response(self) -> tuple[int, str] | None:
        """The final SIP response of a failed INVITE, or None (answered or ring timeout)."""
        return SIP_RESPONSES.get(self)


ANSWERED = frozenset({SimOutcome.ANSWER, SimOutcome.VOICEMAIL, SimOutcome.OPT_OUT,
                      SimOutcome.HANGUP_EARLY, SimOutcome.SLOW})

SIP_RESPONSES: dict[SimOutcome, tuple[int, str]] = {
    SimOutcome.BUSY: (486, "Busy Here"),
    SimOutcome.GLOBAL_BUSY: (600, "Busy Everywhere"),
    SimOutcome.UNAVAILABLE: (480, "Temporarily Unavailable"),
    SimOutcome.REQUEST_TIMEOUT: (408, "Request Timeout"),
    SimOutcome.TERMINATED: (487, "Request Terminated"),
    SimOutcome.DECLINE: (603, "Decline"),
    SimOutcome.UNWANTED: (607, "Unwanted"),
    SimOutcome.REJECTED: (608, "Rejected"),
    SimOutcome.NOT_FOUND: (404, "Not Found"),
    SimOutcome.GONE: (410, "Gone"),
    SimOutcome.ADDRESS_INCOMPLETE: (484, "Address Incomplete"),
    SimOutcome.DOES_NOT_EXIST: (604, "Does Not Exist Anywhere"),
    SimOutcome.NOT_ACCEPTABLE: (488, "Not Acceptable Here"),
    SimOutcome.FORBIDDEN: (403, "Forbidden"),
    SimOutcome.AUTH_REQUIRED: (407, "Proxy Authentication Required"),
    SimOutcome.CARRIER_ERROR: (503, "Service Unavailable"),
    SimOutcome.SERVER_ERROR: (500, "Server Internal Error"),
    SimOutcome.BAD_GATEWAY: (502, "Bad Gateway"),
    SimOutcome.GATEWAY_TIMEOUT: (504, "Server Time-out"),
    SimOutcome.CAPACITY: (503, "CPS limit exceeded"),
    SimOutcome.CHANNEL_LIMIT: (403, "Channel limit reached"),
}


class Rule(BaseModel):
    """The callee behind one number (or prefix): outcomes per INVITE and optional knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcomes: tuple[SimOutcome, ...] = Field(min_length=1)
    ring_s: float | None = Field(default=None, ge=0)
    talk_s: float | None = Field(default=None, ge=0)
    disposition: str | None = None
    #: An answered call asks to be called back this many seconds after it ends.
    callback_in_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`[busy, answer]` and `answer` are short for `{outcomes: [...]}`."""
        if isinstance(data, str):
            return {"outcomes": [data]}
        if isinstance(data, list | tuple):
            return {"outcomes": data}
        return data

    def outcome(self, invite: int) -> SimOutcome:
        """The outcome of the ``invite``-th INVITE (1-based); the last outcome repeats."""
        return self.outcomes[min(max(invite, 1), len(self.outcomes)) - 1]


class Faults(BaseModel):
    """Failures of LiveKit itself, injected into every Twirp call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Fraction of API calls answered 503 `unavailable` before anything is done.
    api_error_rate: float = Field(default=0.0, ge=0, le=1)
    #: Fraction of API calls that do their work and then answer 503 `unavailable`.
    error_after_rate: float = Field(default=0.0, ge=0, le=1)
    #: Delay added to every API call.
    latency_s: float = Field(default=0.0, ge=0)
    #: Seed of the fault dice, for repeatable runs.
    seed: int | None = None


class Scenario(BaseModel):
    """A whole scenario file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ring_s: float = Field(default=DEFAULT_RING_S, ge=0)
    talk_s: float = Field(default=DEFAULT_TALK_S, ge=0)
    numbers: dict[str, Rule] = Field(default_factory=dict)
    default: Rule = Rule(outcomes=(SimOutcome.ANSWER,))
    faults: Faults = Faults()

    @field_validator("numbers", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str) or not (_E164.match(key) or _PREFIX.match(key)):
                    raise ValueError(
                        f"{key!r} is neither an E.164 number (+12025550142) nor a prefix "
                        "ending in '*' (+1202555015*); quote numbers in YAML"
                    )
        return value

    def rule_for(self, number: str) -> Rule:
        """The exact rule for ``number``, else its longest matching prefix, else the default."""
        exact = self.numbers.get(number)
        if exact is not None:
            return exact
        best: tuple[int, Rule] | None = None
        for key, rule in self.numbers.items():
            prefix = key[:-1]
            if key.endswith("*") and number.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rule)
        return best[1] if best else self.default

    def ring_s_of(self, rule: Rule) -> float:
        return self.ring_s if rule.ring_s is None else rule.ring_s

    def talk_s_of(self, rule: Rule) -> float:
        return self.talk_s if rule.talk_s is None else rule.talk_s


def parse_scenario(data: Any, source: str = "scenario") -> Scenario:
    """Validate already-loaded YAML/JSON data; errors name every bad field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: the top level must be a mapping, not {type(data).__name__}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{source} is not a valid scenario:\n{_describe(exc)}") from None


def load_scenario(path: Path | None = None) -> Scenario:
    """Read a scenario file, or the built-in default scenario when ``path`` is None."""
    if path is None:
        source = resources.files(__package__).joinpath(DEFAULT_SCENARIO_FILE)
        return parse_scenario(yaml.safe_load(source.read_text(encoding="utf-8")), DEFAULT_SCENARIO_FILE)
    return parse_scenario(read_yaml(Path(path), ScenarioError, "scenario file"), str(path))


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    lines = []
    for error in errors:
        loc = error["loc"]
        if error["type"] == "too_short" and any(
            other["loc"][: len(loc)] == loc and len(other["loc"]) > len(loc) for other in errors
        ):
            continue  # an item was invalid, which says more than "too short"
        where = ""
        for part in loc:
            if isinstance(part, int):
                where += f"[{part}]"
            else:
                where += f".{part}" if where else str(part)
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"  {where or '(top level)'}: {message}")
    return "\n".join(lines)
