"""Celery tasks. Each one loads ids, calls a plain function and records the result."""

from __future__ import annotations

import os
import socket
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from celery.signals import after_setup_logger, after_setup_task_logger, beat_init, worker_ready, worker_shutdown

from . import uploads, webhook_sender
from .celery import app
from .config import parse_config
from .dialing import Dialer
from .ingest import ingest_file
from .livekit import LiveKitGateway
from .liveness import Heartbeat, Role
from .logs import use_json
from .pacer import pace as pace_campaigns
from .reconcile import reconcile as reconcile_attempts
from .settings import get_settings
from .store import Store


@cache
def store() -> Store:
    """One Store per worker process, shared by its threads."""
    settings = get_settings()
    return Store.from_url(settings.redis_url, max_connections=settings.dialer_worker_concurrency + 20)


@cache
def gateway() -> LiveKitGateway:
    return LiveKitGateway.from_settings(get_settings())


@cache
def http_client() -> httpx.Client:
    """One HTTP client per worker process for webhook deliveries, shared by its threads."""
    return webhook_sender.http_client(get_settings())


@cache
def dialer() -> Dialer:
    return Dialer(store(), gateway(), get_settings())


def _token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@app.task(name="dialer.tasks.ingest_upload")
def ingest_upload(path: str, config: dict[str, Any], phone_column: str | list[str] | None = None,
                  campaign_id: str | None = None) -> dict[str, Any] | None:
    """Ingest a stored upload into a draft campaign; returns the ingest summary.

    With ``campaign_id`` (an HTTP upload, whose id the API already handed out) the upload is
    removed afterwards and a bad file is recorded for the API to show instead of raised.
    """
    parsed = parse_config(config, source="uploaded config")
    max_bytes = get_settings().max_upload_bytes
    if campaign_id is not None:
        summary = uploads.ingest(store(), uploads.Upload(campaign_id, Path(path)), parsed, phone_column, max_bytes)
        return summary.to_json_dict() if summary else None
    return ingest_file(store(), Path(path), parsed, phone_column=phone_column, max_bytes=max_bytes).to_json_dict()


@app.task(name="dialer.tasks.dial")
def dial(campaign_id: str, contact_id: int, seq: int) -> str:
    """Dial one queued attempt (the ledger, not Celery, decides if it is a duplicate)."""
    return dialer().dial(campaign_id, contact_id, seq)


def _enqueue_dial(campaign_id: str, contact_id: int, seq: int) -> None:
    dial.apply_async((campaign_id, contact_id, seq), queue="dial")


@app.task(name="dialer.tasks.pace")
def pace() -> int | None:
    return pace_campaigns(store(), get_settings(), _enqueue_dial, _token())


@app.task(name="dialer.tasks.reconcile")
def reconcile() -> int | None:
    return reconcile_attempts(store(), gateway(), get_settings(), _token())


@app.task(name="dialer.tasks.webhooks")
def webhooks() -> int | None:
    """Fan out new webhook events and hand due deliveries to ``deliver_webhook``."""
    return webhook_sender.dispatch(store(), get_settings(), _enqueue_delivery, _token())


@app.task(name="dialer.tasks.deliver_webhook")
def deliver_webhook(campaign_id: str, delivery_id: str) -> int:
    """Try a webhook delivery, then the next due ones for a few seconds (at least once; the
    receiver drops duplicates by webhook-id)."""
    return webhook_sender.deliver_and_continue(store(), get_settings(), http_client(), campaign_id, delivery_id)


def _enqueue_delivery(campaign_id: str, delivery_id: str) -> None:
    deliver_webhook.apply_async((campaign_id, delivery_id), queue="webhooks")


# -- heartbeats: a campaign that cannot move says why (dialer.liveness) ----------------------

_heartbeats: list[Heartbeat] = []


@worker_ready.connect
def _worker_heartbeat(sender: Any = None, **_: Any) -> None:
    name = getattr(sender, "hostname", None) or _token()
    _heartbeats.append(Heartbeat(store(), Role.WORKER, name).start())


@beat_init.connect
def _beat_heartbeat(sender: Any = None, **_: Any) -> None:
    _heartbeats.append(Heartbeat(store(), Role.BEAT, _token()).start())


@worker_shutdown.connect
def _stop_heartbeats(**_: Any) -> None:
    while _heartbeats:
        _heartbeats.pop().stop()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_format(logger: Any = None, **_: Any) -> None:
    if logger is not None and get_settings().dialer_log_format == "json":
        use_json(logger)
