"""Webhook deliveries, from the outbox to the receiver (README, "Webhooks"; DESIGN.md 4c).

1. **Emit.** The step that ends an attempt (``lua/finalise.lua``, wrapped by
   ``lua/finalise_events.lua``) writes the ending's events to the outbox in the same atomic step,
   and only when it really ended the attempt: one logical event per fact, never lost between the
   fact and its event, and never an HTTP call on the dial path.
2. **Fan out.** ``dispatch`` (a beat task on the ``webhooks`` queue) turns each event into one
   delivery per subscribed endpoint, with its body built once: every try sends the same bytes
   under the same ``webhook-id``.
3. **Claim.** Due deliveries are claimed under a lease, at most ``DIALER_WEBHOOK_MAX_IN_FLIGHT``
   at once, and each goes to a ``deliver_webhook`` task, which then claims the next due ones
   itself for a few seconds (deliveries flow at the receivers' pace, not one batch per tick).
   A claim whose worker died is due again when its lease ends: every delivery is sent at least once.
4. **Deliver.** One POST with a short timeout. A failed try is due again after an exponential
   backoff (never a Celery countdown); past the horizon (24 h) the delivery is marked failed,
   listed by ``dialer webhooks failed`` and sent again by ``dialer webhooks replay``. A delivered
   one is only counted, so Redis holds what may still need sending, not every event ever sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
import orjson

from .errors import NotFoundError
from .settings import Settings
from .store import CampaignRecord, Keys, Store
from .webhooks import WebhookEvent, backoff_s, event_id, headers, secret_problem, url_problem

log = logging.getLogger(__name__)

DISPATCH_PERIOD_S = 1.0
#: Events read from the outbox at a time ...
FAN_OUT_BATCH = 500
#: ... for at most this long per dispatcher run.
FAN_OUT_BUDGET_S = 0.5
#: A delivery task goes on with the next due delivery while it has run for less than this, so
#: deliveries flow at DIALER_WEBHOOK_MAX_IN_FLIGHT / (a try's time), not per dispatcher tick.
CONTINUE_FOR_S = 5.0
#: How long the dispatcher's lock lives without renewal.
LOCK_TTL_S = 10.0
#: A claimed delivery is due again this long after its try's timeout if nobody recorded it.
CLAIM_MARGIN_S = 60.0
#: Characters of a receiver's answer kept with a failed try.
KEEP_ANSWER_CHARS = 200

Enqueue = Callable[[str, str], None]


class DeliveryState(StrEnum):
    PENDING = "pending"  #: waiting for its next try (or in one)
    DELIVERED = "delivered"  #: the receiver answered 2xx; then only counted (the record is removed)
    FAILED = "failed"  #: every try within the horizon failed; replay it by hand


@dataclass(frozen=True)
class Event:
    """One event as the outbox holds it (written by ``lua/finalise_events.lua``)."""

    type: WebhookEvent
    campaign_id: str
    member: str
    contact_id: int
    outcome: str
    at: float

    @classmethod
    def parse(cls, raw: str) -> Event:
        data = orjson.loads(raw)
        return cls(WebhookEvent(data["type"]), str(data["campaign_id"]), str(data.get("member", "")),
                   int(data.get("contact") or 0), str(data.get("outcome", "")), float(data["at"]))

    @property
    def subject(self) -> str:
        """What the event is about, for its id: the attempt, the contact or the campaign."""
        if self.type is WebhookEvent.CALL_COMPLETED:
            return self.member
        if self.type is WebhookEvent.CAMPAIGN_COMPLETED:
            return ""
        return str(self.contact_id)

    @property
    def id(self) -> str:
        return event_id(self.campaign_id, self.type.value, self.subject)


def _iso(at: float | None) -> str | None:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z") if at else None


def event_data(store: Store, record: CampaignRecord, event: Event) -> dict[str, Any]:
    """The ``data`` of an event's body, read from the ledger when the event is fanned out."""
    cid = record.id
    data: dict[str, Any] = {"campaign_id": cid, "campaign_name": record.name}
    if event.type is WebhookEvent.CAMPAIGN_COMPLETED:
        progress = store.progress(cid)
        data.update(completed_at=_iso(event.at), contacts=record.counts.get("accepted", 0),
                    outcomes={k.split(":", 1)[1]: v for k, v in sorted(progress.items()) if k.startswith("outcome:")})
        return data
    contact = store.contacts(cid, [event.contact_id])[0] or {}
    data.update(contact_id=event.contact_id, phone_e164=contact.get("phone_e164"),
                variables=contact.get("variables", {}))
    if event.type in (WebhookEvent.CALL_COMPLETED, WebhookEvent.CONTACT_OPTED_OUT):
        attempt = store.attempt(cid, event.member) or {}
        # The number this call went to: with alternate numbers, not always the contact's first.
        data["phone_used"] = attempt.get("number") or contact.get("phone_e164")
    if event.type is WebhookEvent.CALL_COMPLETED:
        result = store.result(cid, event.member) or {}
        data.update(
            call_id=f"{cid}:{event.member}", attempt=int(event.member.split(":")[1]), outcome=event.outcome,
            sip_code=attempt.get("sip_code"), sip_status=attempt.get("sip_status"), reason=attempt.get("reason"),
            caller_id=attempt.get("caller_id"), disposition=attempt.get("disposition") or result.get("disposition"),
            started_at=_iso(attempt.get("dial_started_at")), answered_at=_iso(attempt.get("answered_at")),
            ended_at=_iso(attempt.get("ended_at")), talk_s=attempt.get("talk_s"),
            captured=result.get("captured", {}), notes=result.get("notes", ""), callback_at=result.get("callback_at"),
        )
    elif event.type is WebhookEvent.CONTACT_FINALIZED:
        status = store.contact_status(cid, event.contact_id) or {}
        last = status.get("last_attempt")
        data.update(outcome=status.get("outcome", event.outcome), attempts=status.get("attempts") or 0,
                    dials=status.get("dials") or 0, last_call_id=f"{cid}:{last}" if last else None,
                    disposition=status.get("last_disposition"), final_at=_iso(status.get("final_at")))
    else:  # contact.opted_out
        data.update(call_id=f"{cid}:{event.member}", opted_out_at=_iso(event.at))
    return data


def body_of(store: Store, record: CampaignRecord, event: Event) -> str:
    return orjson.dumps({"type": event.type.value, "timestamp": _iso(event.at),
                         "data": event_data(store, record, event)}).decode()


# -- the dispatcher ---------------------------------------------------------------------------


def fan_out(store: Store, now: float, budget_s: float = FAN_OUT_BUDGET_S) -> int:
    """Turn outbox events into deliveries, batch after batch, until the outbox is empty or the time
    budget is spent; returns the deliveries created."""
    created = 0
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        batch = store.webhook_events(FAN_OUT_BATCH)
        made = _fan_out_batch(store, now, batch)
        if made < 0 or len(batch) < FAN_OUT_BATCH:
            return created + max(made, 0)
        created += made
    return created


def _fan_out_batch(store: Store, now: float, batch: list[str]) -> int:
    """-1 when another dispatcher took the outbox's head meanwhile."""
    created = 0
    records: dict[str, CampaignRecord | None] = {}
    for raw in batch:
        try:
            event = Event.parse(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("dropping a webhook event that cannot be read (%s): %.200s", exc, raw)
            if store.fan_out_webhook(raw, "", {}, now) < 0:
                return -1
            continue
        cid = event.campaign_id
        if cid not in records:
            try:
                records[cid] = store.get_campaign(cid)
            except NotFoundError:
                records[cid] = None  # removed since: its events have nowhere to go
        record = records[cid]
        deliveries: dict[str, str] = {}
        if record is not None:
            body = body_of(store, record, event)
            for index, endpoint in enumerate(record.config.webhooks):
                if event.type in endpoint.events:
                    delivery_id = f"{event.id}.{index}"
                    delivery = {"id": delivery_id, "event_id": event.id, "type": event.type.value,
                                "campaign_id": cid, "endpoint": index, "url": endpoint.url,
                                "secret_env": endpoint.secret_env, "body": body, "state": DeliveryState.PENDING,
                                "tries": 0, "created_at": now, "window_start": now}
                    deliveries[delivery_id] = orjson.dumps(delivery).decode()
        made = store.fan_out_webhook(raw, cid, deliveries, now)
        if made < 0:
            return -1  # another dispatcher took the head; it carries on from there
        created += made
    return created


def dispatch(store: Store, settings: Settings, enqueue: Enqueue, token: str) -> int | None:
    """One dispatcher run: fan out new events, then hand due deliveries to tasks. None when another
    dispatcher holds the lock."""
    if not store.try_lock(Keys.webhook_lock, token, LOCK_TTL_S):
        return None
    now = store.server_time()
    fan_out(store, now)
    lease_s = settings.dialer_webhook_timeout_s + CLAIM_MARGIN_S
    claimed = store.claim_webhooks(now, lease_s, settings.dialer_webhook_max_in_flight)
    for cid, delivery_id in claimed:
        enqueue(cid, delivery_id)
    return len(claimed)


# -- one delivery -----------------------------------------------------------------------------


def http_client(settings: Settings) -> httpx.Client:
    """The client deliveries are sent with: the timeout for connect and answer, no redirects
    (a redirect could lead to an address the checks refuse)."""
    return httpx.Client(timeout=settings.dialer_webhook_timeout_s, follow_redirects=False, trust_env=False)


def deliver(store: Store, settings: Settings, client: httpx.Client, cid: str, delivery_id: str) -> str:
    """Try one delivery once and record the result: delivered, retry (due again) or failed."""
    delivery = store.webhook_delivery(cid, delivery_id)
    if delivery is None or delivery["state"] != DeliveryState.PENDING:
        store.drop_webhook_claim(cid, delivery_id)
        return f"skipped:{delivery['state'] if delivery else 'delivered'}"
    tries = int(delivery["tries"])
    status, error = _send(settings, delivery, client)
    now = store.server_time()
    delivery.update(tries=tries + 1, last_try_at=now, last_status=status, last_error=error)
    if not error:
        # Only counted from now on: the hash keeps what may still need sending, not every event.
        store.record_webhook(cid, delivery, tries, None, "delivered", keep=False)
        return DeliveryState.DELIVERED
    due_at = now + backoff_s(tries + 1, settings.dialer_webhook_backoff_s, settings.dialer_webhook_backoff_max_s)
    log.warning("webhook %s of campaign %s to %s failed (try %d): %s", delivery["event_id"], cid,
                delivery["url"], tries + 1, error)
    if due_at - float(delivery["window_start"]) > settings.dialer_webhook_horizon_s:
        delivery.update(state=DeliveryState.FAILED, failed_at=now, next_try_at=None)
        store.record_webhook(cid, delivery, tries, None, "failed")
        return DeliveryState.FAILED
    delivery["next_try_at"] = due_at
    store.record_webhook(cid, delivery, tries, due_at)
    return "retry"


def deliver_and_continue(store: Store, settings: Settings, client: httpx.Client, cid: str, delivery_id: str,
                         continue_for_s: float = CONTINUE_FOR_S) -> int:
    """Deliver one claimed delivery, then claim and deliver the next due ones one at a time (the
    slot this task holds passes on) until none is due or ``continue_for_s`` has passed. Returns
    the tries made."""
    started = time.monotonic()
    tries = 0
    while True:
        tries += not deliver(store, settings, client, cid, delivery_id).startswith("skipped")
        if time.monotonic() - started >= continue_for_s:
            return tries
        lease_s = settings.dialer_webhook_timeout_s + CLAIM_MARGIN_S
        claimed = store.claim_webhooks(store.server_time(), lease_s, settings.dialer_webhook_max_in_flight, limit=1)
        if not claimed:
            return tries
        cid, delivery_id = claimed[0]


def _send(settings: Settings, delivery: dict[str, Any], client: httpx.Client) -> tuple[int | None, str]:
    """(HTTP status, '' or why the try failed)."""
    url = delivery["url"]
    secret = settings.env_secret(delivery["secret_env"])
    refused = secret_problem(delivery["secret_env"], secret) or url_problem(url, settings.dialer_webhook_allow_private)
    if refused or secret is None:
        return None, f"not sent: {refused}"
    body = delivery["body"].encode()
    sent_at = int(datetime.now(UTC).timestamp())
    try:
        # Streamed: only the start of an answer is read, however much the receiver sends.
        with client.stream("POST", url, content=body,
                           headers=headers(secret, delivery["event_id"], sent_at, body)) as response:
            if 200 <= response.status_code < 300:
                return response.status_code, ""
            start = next(response.iter_bytes(KEEP_ANSWER_CHARS), b"")[:KEEP_ANSWER_CHARS]
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return response.status_code, f"HTTP {response.status_code}: {start.decode(errors='replace')}".rstrip()


# -- the operator's surface (CLI, API) ---------------------------------------------------------


def _view(delivery: dict[str, Any]) -> dict[str, Any]:
    """A delivery as the operator sees it (without the body)."""
    return {
        "event_id": delivery["event_id"], "delivery_id": delivery["id"], "type": delivery["type"],
        "url": delivery["url"], "state": delivery["state"], "tries": delivery["tries"],
        "last_status": delivery.get("last_status"), "last_error": delivery.get("last_error"),
        "created_at": _iso(delivery.get("created_at")), "last_try_at": _iso(delivery.get("last_try_at")),
        "failed_at": _iso(delivery.get("failed_at")),
    }


def failed(store: Store, cid: str) -> list[dict[str, Any]]:
    """The campaign's failed deliveries, oldest first."""
    store.get_campaign(cid)
    found = [d for d in store.iter_webhook_deliveries(cid) if d["state"] == DeliveryState.FAILED]
    return [_view(d) for d in sorted(found, key=lambda d: (d.get("created_at", 0), d["id"]))]


def replay(store: Store, cid: str, event: str | None = None) -> list[dict[str, Any]]:
    """Send failed deliveries again (all of the campaign's, or those of one event), each with a new
    retry horizon; returns the deliveries queued."""
    store.get_campaign(cid)
    chosen = [d for d in store.iter_webhook_deliveries(cid)
              if d["state"] == DeliveryState.FAILED and (event is None or d["event_id"] == event)]
    if event is not None and not chosen:
        raise NotFoundError(f"no failed webhook delivery of event {event!r} in campaign {cid} "
                            f"(see `dialer webhooks failed {cid}`)")
    now = store.server_time()
    queued = []
    for delivery in chosen:
        tries = int(delivery["tries"])
        delivery.update(state=DeliveryState.PENDING, window_start=now, next_try_at=now, failed_at=None,
                        replayed_at=now)
        if store.record_webhook(cid, delivery, tries, now, "replayed"):
            queued.append(_view(delivery))
    return queued


def counts(store: Store, cid: str) -> dict[str, int]:
    """created, delivered, failed (now), replayed, pending, for status and metrics."""
    stats = store.webhook_stats(cid)
    created, delivered = stats.get("created", 0), stats.get("delivered", 0)
    failed_total, replayed = stats.get("failed", 0), stats.get("replayed", 0)
    return {"created": created, "delivered": delivered, "failed": failed_total - replayed,
            "failed_total": failed_total, "replayed": replayed,
            "pending": max(0, created - delivered - failed_total + replayed)}
