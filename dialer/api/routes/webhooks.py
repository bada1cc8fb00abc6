"""A campaign's webhook deliveries: the failed ones, and sending them again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ... import webhook_sender
from ..deps import Reader, StoreDep, Writer
from ..errors import responses
from ..schemas import WebhookDelivery

router = APIRouter(prefix="/v1/campaigns/{campaign_id}/webhooks", tags=["webhooks"])


@router.get("/failed", response_model=list[WebhookDelivery], responses=responses(401, 404))
def failed(campaign_id: str, who: Reader, store: StoreDep) -> list[WebhookDelivery]:
    """Deliveries retried past the horizon without a 2xx answer (``dialer webhooks failed --json``)."""
    return [WebhookDelivery(**item) for item in webhook_sender.failed(store, campaign_id)]


@router.post("/replay", response_model=list[WebhookDelivery], responses=responses(401, 403, 404))
def replay(campaign_id: str, who: Writer, store: StoreDep,
           event: Annotated[str | None, Query(description="Only this event id (webhook-id)")] = None,
           ) -> list[WebhookDelivery]:
    """Send failed deliveries again, all or one event's, with a new retry horizon (``dialer webhooks replay``)."""
    return [WebhookDelivery(**item) for item in webhook_sender.replay(store, campaign_id, event)]
