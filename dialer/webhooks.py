"""Webhooks: what a campaign may subscribe to, and how a delivery is signed (Standard Webhooks).

This module is pure: the endpoint model of the campaign config, the URL and secret checks made
where a config enters the system and again before every delivery, the signature, the event id
and the backoff. ``dialer.webhook_sender`` moves deliveries through Redis and over HTTP.

A delivery carries three headers (https://www.standardwebhooks.com):

- ``webhook-id``: the event's id, the same on every retry and replay (receivers drop duplicates);
- ``webhook-timestamp``: when this try was signed, integer unix seconds;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``.

The key is the base64-decoded part of a ``whsec_...`` secret; a secret without that prefix is
used as it is (its UTF-8 bytes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Callable
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import ConfigError

#: The prefix of a Standard Webhooks secret whose rest is the base64 key.
SECRET_PREFIX = "whsec_"
#: The prefix of an event id (``webhook-id``).
EVENT_ID_PREFIX = "msg_"


class WebhookEvent(StrEnum):
    CALL_COMPLETED = "call.completed"  #: an attempt that placed a call ended, whatever its outcome
    CONTACT_FINALIZED = "contact.finalized"  #: a contact reached its final outcome
    CAMPAIGN_COMPLETED = "campaign.completed"  #: every contact of the campaign is final
    CONTACT_OPTED_OUT = "contact.opted_out"  #: the callee asked not to be called again (now on DNC)


class WebhookEndpoint(BaseModel):
    """One receiver in a campaign config. The secret stays in the environment, named by ``secret_env``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    events: tuple[WebhookEvent, ...] = Field(min_length=1)
    #: The environment variable holding the signing secret (``whsec_...`` or any string).
    secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError(f"{value!r} has no host")
        if parts.username or parts.password:
            raise ValueError("a webhook URL must not carry credentials; the signature (secret_env) authenticates")
        return value.strip()

    @field_validator("events")
    @classmethod
    def _unique(cls, value: tuple[WebhookEvent, ...]) -> tuple[WebhookEvent, ...]:
        return tuple(dict.fromkeys(value))


def subscribed(endpoints: tuple[WebhookEndpoint, ...]) -> set[WebhookEvent]:
    """Every event at least one endpoint wants."""
    return {event for endpoint in endpoints for event in endpoint.events}


def event_id(campaign_id: str, event: str, subject: str) -> str:
    """The event's stable id: the same fact always gets the same id, however often it is emitted."""
    digest = hashlib.sha256(f"{campaign_id}|{event}|{subject}".encode()).hexdigest()
    return f"{EVENT_ID_PREFIX}{digest[:32]}"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: the decoded part of ``whsec_<base64>``, else the secret's bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"a secret starting with {SECRET_PREFIX} must be base64 after the prefix") from None
    return secret.encode()


def signature(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The ``webhook-signature`` header value."""
    signed = f"{msg_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signature(secret, msg_id, timestamp_s, body),
    }


def backoff_s(tries: int, base_s: float, max_s: float) -> float:
    """Wait after the ``tries``-th failed try: base, 2x base, 4x base... capped at ``max_s``."""
    return float(min(max_s, base_s * 2 ** max(0, min(tries - 1, 40))))


def refused_address(url: str) -> str:
    """Why ``url``'s host may not receive webhooks (an address that is not public), or ''.

    Every address the host resolves to is checked: a name that resolves to loopback, link-local,
    private, reserved or multicast addresses is refused. Raises OSError when it does not resolve.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            return f"{host} resolves to {address}, which is not a public address"
    return ""


def url_problem(url: str, allow_private: bool) -> str:
    """What stops a delivery to ``url`` right now ('' when nothing does)."""
    if allow_private:
        return ""
    try:
        why = refused_address(url)
    except OSError as exc:
        return f"{urlsplit(url).hostname} does not resolve ({exc})"
    return f"{why}; set DIALER_WEBHOOK_ALLOW_PRIVATE=true to allow it" if why else ""


def secret_problem(name: str, secret: str | None) -> str:
    if not secret:
        return f"the environment variable {name} (secret_env) is not set; put the signing secret there"
    try:
        signing_key(secret)
    except ConfigError as exc:
        return f"{name}: {exc}"
    return ""


def check_endpoints(endpoints: tuple[WebhookEndpoint, ...], allow_private: bool,
                    secret_of: Callable[[str], str | None]) -> None:
    """Raise a ConfigError naming every endpoint this process could not deliver to (a missing or
    malformed secret, a host that does not resolve or is not public): checked where a config
    enters the system, and again before each delivery (DNS can change)."""
    problems = []
    for index, endpoint in enumerate(endpoints):
        for why in (secret_problem(endpoint.secret_env, secret_of(endpoint.secret_env)),
                    url_problem(endpoint.url, allow_private)):
            if why:
                problems.append(f"  webhooks.{index}: {why}")
    if problems:
        raise ConfigError("the campaign's webhooks cannot be used:\n" + "\n".join(problems))
