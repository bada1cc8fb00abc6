"""The campaign config file: a YAML document validated by ``CampaignConfig``."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .policy import SipClass
from .webhooks import WebhookEndpoint
from .window import CallingWindow, zone
from .yamlfile import read_yaml

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_CALLBACKS = 1
DEFAULT_MAX_CONCURRENT_CALLS = 10
DEFAULT_CALLS_PER_SECOND = 1.0
DEFAULT_RING_TIMEOUT_S = 30
DEFAULT_MAX_CALL_DURATION_S = 600
DEFAULT_INSTRUCTIONS = (
    "You are a friendly, concise phone assistant calling on behalf of our team. "
    "Say who you are and why you are calling, answer questions briefly, and end the call "
    "politely when the conversation is done."
)
DEFAULT_GREETING = "Hello, this is an automated assistant calling on behalf of our team."
DEFAULT_DISPOSITIONS = (
    "completed",
    "interested",
    "not_interested",
    "callback_requested",
    "wrong_person",
)


class RetryDelays(BaseModel):
    """Seconds to wait before calling again after each retryable outcome."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    busy: float = Field(default=900, ge=0)
    no_answer: float = Field(default=3600, ge=0)
    carrier_error: float = Field(default=300, ge=0)


class CircuitBreaker(BaseModel):
    """Pause the campaign when most recent attempts fail for one reason that is not the callee's
    (carrier 5xx, capacity, unknown outcomes), instead of burning through the list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    #: The share of recent attempts that must have failed for the same reason.
    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    #: Recent attempts needed before the breaker may trip.
    min_attempts: int = Field(default=10, ge=1)
    #: How far back "recent" reaches.
    window_s: float = Field(default=120, gt=0, le=86_400)


class CampaignConfig(BaseModel):
    """A campaign's settings. Every field but ``name`` has a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    #: The livekit-agents worker to dispatch (defaults to the AGENT_NAME setting).
    agent_name: str | None = None
    #: The agent's instructions; ``{column}`` placeholders take the contact's CSV values.
    instructions: str = DEFAULT_INSTRUCTIONS
    greeting: str = DEFAULT_GREETING
    #: The number shown to the callee (the SIP "from" number), or a pool of them.
    caller_id: str | tuple[str, ...] | None = None
    #: How a number is chosen from a pool: in turn, or one that shares the callee's country and
    #: area code when the pool has one (local presence), else in turn.
    caller_id_strategy: Literal["round_robin", "local_presence"] = "round_robin"
    #: Outbound SIP trunk id; defaults to the SIP_OUTBOUND_TRUNK_ID setting.
    trunk_id: str | None = None
    #: The CSV columns holding a contact's numbers, the one to dial first first (default: every
    #: phone column a CRM export has, see the README); ``--phone-column`` overrides it.
    phone_columns: tuple[str, ...] = ()
    #: What happens to a contact's other numbers: ``first_only`` dials only its first valid
    #: number; ``next_on_failure`` moves on to the next one when the current one ends invalid,
    #: declined by the network, or out of attempts on busy / no answer.
    alternate_numbers: Literal["first_only", "next_on_failure"] = "first_only"
    #: Region used to read numbers written in national format.
    default_region: str = "US"
    #: IANA zone used when a number's own zones cannot be called together.
    default_timezone: str | None = None
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=50)
    #: Pause between the answer and an extension's DTMF digits (LiveKit waits 0.5 s per "w").
    extension_pause_s: float = Field(default=1.0, ge=0, le=30)
    #: Callbacks the agent may schedule per contact (re-dials at the time the callee asked for,
    #: counted apart from ``max_attempts``).
    max_callbacks: int = Field(default=DEFAULT_MAX_CALLBACKS, ge=0, le=10)
    retry_delay_s: RetryDelays = RetryDelays()
    calling_window: CallingWindow = CallingWindow()
    max_concurrent_calls: int = Field(default=DEFAULT_MAX_CONCURRENT_CALLS, ge=1, le=100_000)
    calls_per_second: float = Field(default=DEFAULT_CALLS_PER_SECOND, gt=0, le=10_000)
    ring_timeout_s: int = Field(default=DEFAULT_RING_TIMEOUT_S, ge=1, le=300)
    max_call_duration_s: int = Field(default=DEFAULT_MAX_CALL_DURATION_S, ge=1, le=86_400)
    voicemail_action: Literal["hangup", "leave_message"] = "hangup"
    voicemail_message: str | None = None
    #: Dispositions the agent may record.
    dispositions: tuple[str, ...] = DEFAULT_DISPOSITIONS
    #: Structured fields the agent captures: name -> what to ask for.
    capture_fields: dict[str, str] = Field(default_factory=dict)
    #: Where the agent transfers a caller who asks for a person.
    transfer_number: str | None = None
    #: Overrides of the SIP outcome policy: SIP code -> class (busy, no_answer, ...).
    sip_policy: dict[int, SipClass] = Field(default_factory=dict)
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    #: Receivers of the campaign's events (README, "Webhooks").
    webhooks: tuple[WebhookEndpoint, ...] = ()

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a two-letter region code such as US, GB or DE")
        return region

    @field_validator("default_timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)
        return value

    @field_validator("caller_id")
    @classmethod
    def _caller_ids(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        if isinstance(value, tuple):
            if not value:
                raise ValueError("a caller_id pool needs at least one number")
            numbers = tuple(cls._e164(number) or "" for number in value)
            return numbers[0] if len(numbers) == 1 else numbers
        return cls._e164(value)

    @property
    def caller_ids(self) -> tuple[str, ...]:
        """The caller ID pool ((), one number, or several)."""
        if self.caller_id is None:
            return ()
        return (self.caller_id,) if isinstance(self.caller_id, str) else self.caller_id

    @field_validator("transfer_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise ValueError(f"{value!r} is not a valid phone number in E.164 form, e.g. +12025550100")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    @model_validator(mode="after")
    def _voicemail(self) -> CampaignConfig:
        if self.voicemail_action == "leave_message" and not self.voicemail_message:
            raise ValueError("voicemail_action 'leave_message' needs a voicemail_message")
        for field in ("instructions", "greeting", "voicemail_message"):
            _template_fields(getattr(self, field) or "", field)
        return self

    def template_fields(self) -> set[str]:
        """The contact variables the templates reference."""
        fields: set[str] = set()
        for name in ("instructions", "greeting", "voicemail_message"):
            fields |= _template_fields(getattr(self, name) or "", name)
        return fields


def _template_fields(template: str, field: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as exc:
        raise ValueError(f"{field} is not a valid template ({exc}); write literal braces as {{{{ }}}}") from None


def render(template: str, variables: dict[str, Any]) -> str:
    """Fill a template's ``{column}`` placeholders; unknown ones become empty."""
    return string.Formatter().vformat(template, (), _Blank(variables))


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field.path: why``."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(part) for part in err["loc"]) or "(file)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against the README's config reference)"
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)


def parse_config(data: object, source: str = "config") -> CampaignConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values at the top level")
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source} is invalid:\n{format_validation_error(exc)}") from None


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> CampaignConfig:
    """Read and validate a campaign config file; ``overrides`` win over the file."""
    data = read_yaml(path, ConfigError, "config file")
    if data is None:
        data = {}
    if isinstance(data, dict) and overrides:
        data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    return parse_config(data, str(path))
