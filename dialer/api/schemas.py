"""The API's schema: the JSON the CLI's ``--json`` prints, as pydantic models (OpenAPI comes from these)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CampaignCreated(BaseModel):
    campaign_id: str
    state: str = Field(examples=["ingesting"])
    status_url: str


class CampaignListItem(BaseModel):
    """One entry of ``dialer campaign list --json``."""

    campaign_id: str
    name: str
    state: str
    created_at: float
    rows: int
    accepted: int
    rejected: int
    duplicates: int
    suppressed: int


class CampaignDetail(BaseModel):
    """``dialer campaign show --json``; while an upload is ingested only id, state and source are known,
    and a failed ingest says why in ``error``."""

    model_config = ConfigDict(extra="allow")

    campaign_id: str
    state: str
    name: str | None = None
    created_at: float | None = None
    source: str | None = None
    error: str | None = None


class CampaignStatus(BaseModel):
    """``dialer campaign status --json``; keys the CLI adds later pass through unchanged."""

    model_config = ConfigDict(extra="allow")

    campaign_id: str
    name: str
    state: str
    pause_reason: str | None
    contacts: int
    final: int
    in_flight: int
    pending: int
    attempts: int
    outcomes: dict[str, int]


class ActionResult(BaseModel):
    campaign_id: str
    state: str
    cancelled_contacts: int | None = None


class Numbers(BaseModel):
    numbers: list[str] = Field(max_length=100_000, examples=[["+12025550143"]])
    region: str = Field(default="US", min_length=2, max_length=2, description="Region for national-format numbers")


class InvalidNumber(BaseModel):
    value: str
    reason: str


class DncList(BaseModel):
    count: int
    numbers: list[str]


class DncChange(BaseModel):
    added: int | None = None
    removed: int | None = None
    invalid: list[InvalidNumber]


class DncImport(BaseModel):
    """``dialer dnc import --json``."""

    read: int
    valid: int
    added: int
    invalid: list[InvalidNumber]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    redis: bool
    pacer: bool = Field(description="a worker with beat ran the pacer in the last few seconds")


class ContactAttempt(BaseModel):
    """One attempt as the ledger keeps it, with the call's result (disposition, transcript...) if any."""

    model_config = ConfigDict(extra="allow")

    seq: int
    state: str | None = None
    result: dict[str, object] | None = None


class ContactDetail(BaseModel):
    campaign_id: str
    contact_id: int
    phone_e164: str
    #: Every number of the contact in dialing order ("+12025550101x204" with an extension); each
    #: attempt's ``number`` and ``number_index`` say which one it dialed.
    phones: list[str] = Field(default_factory=list)
    variables: dict[str, str]
    time_zones: list[str]
    outcome: str
    status: dict[str, object]
    attempts: list[ContactAttempt]


class WebhookDelivery(BaseModel):
    """One entry of ``dialer webhooks failed --json`` (and ``replay --json``)."""

    event_id: str
    delivery_id: str
    type: str
    url: str
    state: str = Field(examples=["failed"])
    tries: int
    last_status: int | None
    last_error: str | None
    created_at: str | None
    last_try_at: str | None
    failed_at: str | None
