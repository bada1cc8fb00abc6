"""Celery tasks. Each one loads ids, calls a plain function and records the result."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from functools import cache, wraps
from pathlib import Path
from typing import Any, TypeVar

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
from .redis_bridge import BridgedRedis
from .settings import get_settings
from .store import Store

T = TypeVar("T")
log = logging.getLogger(__name__)


def _once(build: Callable[[], T]) -> Callable[[], T]:
    """``functools.cache`` for a process-wide object built on first use: the pool's threads
    start their first tasks together, and each object (a loop, a pool) must be built once."""
    lock = threading.Lock()
    cached = cache(build)

    @wraps(build)
    def get() -> T:
        with lock:
            return cached()

    return get


#: A worker's Redis reply that takes longer than this is a Redis that stopped answering (a
#: partition, not a slow script: the longest command a task sends takes milliseconds). It is
#: raised as a timeout, which the store's callers retry through outages; without it a round trip
#: made on the dial loop's thread (``redis_bridge``) would stall every call of the worker.
REDIS_SOCKET_TIMEOUT_S = 30.0
REDIS_CONNECT_TIMEOUT_S = 5.0


@_once
def store() -> Store:
    """One Store per worker process, shared by its threads."""
    settings = get_settings()
    # Its dial attempts run on the LiveKit loop (``bridge``): their Redis calls share round trips.
    return Store(BridgedRedis.from_url(settings.redis_url, max_connections=settings.dialer_worker_concurrency + 20,
                                       socket_timeout=REDIS_SOCKET_TIMEOUT_S,
                                       socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S))


@_once
def gateway() -> LiveKitGateway:
    return LiveKitGateway.from_settings(get_settings())


@_once
def http_client() -> httpx.Client:
    """One HTTP client per worker process for webhook deliveries, shared by its threads."""
    return webhook_sender.http_client(get_settings())


@_once
def dialer() -> Dialer:
    return Dialer(store(), gateway(), get_settings())


#: Attempts one dial message carries at most: one Celery message and ack, and one pool thread
#: waiting, for all of them (each is still claimed and finalised on its own). Publishing costs
#: 0.4-0.6 ms of the pacer's CPU a message: at 20 a message, a campaign's first scan of 1,500
#: attempts held the worker's interpreter for 0.15 s of publishing before the first INVITE.
DIAL_BATCH_MAX = 100
#: ... but a scan's attempts go out in at least this many messages, so they spread over workers.
DIAL_BATCH_SPREAD = 8


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
    """Dial one queued attempt (the ledger, not Celery, decides if it is a duplicate), as a
    coroutine on the worker's LiveKit loop: this thread only waits for its end."""
    return gateway().run(dialer().dial_all(campaign_id, [(contact_id, seq)]))[0]


@app.task(name="dialer.tasks.dial_batch")
def dial_batch(campaign_id: str, attempts: list[list[int]]) -> list[str]:
    """Dial several queued attempts of a campaign at once, each claimed, admitted and finalised
    on its own exactly as ``dial`` does it, as coroutines on the worker's LiveKit loop."""
    return gateway().run(dialer().dial_all(campaign_id, [(int(contact), int(seq)) for contact, seq in attempts]))


def dial_batches(attempts: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """A pacer scan's attempts cut into dial messages: up to ``DIAL_BATCH_MAX`` attempts each, and
    at least ``DIAL_BATCH_SPREAD`` messages when there are that many attempts, so that a slow
    campaign's few attempts still go one a message to whichever worker is free."""
    size = max(1, min(DIAL_BATCH_MAX, len(attempts) // DIAL_BATCH_SPREAD))
    return [attempts[start:start + size] for start in range(0, len(attempts), size)]


def _enqueue_dials(campaign_id: str, attempts: list[tuple[int, int]]) -> None:
    for batch in dial_batches(attempts):
        if len(batch) == 1:
            dial.apply_async((campaign_id, *batch[0]), queue="dial")
        else:
            dial_batch.apply_async((campaign_id, batch), queue="dial")


@app.task(name="dialer.tasks.pace")
def pace() -> int | None:
    return pace_campaigns(store(), get_settings(), _enqueue_dials, _token())


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


@worker_ready.connect
def _warm_up(**_: Any) -> None:
    """Build now what a worker's first dial would otherwise build in the middle of a campaign's
    first calls: the LiveKit client and its loop, the ledger's scripts in Redis, and a broker
    connection for the pacer's messages. A worker without LiveKit settings (ingest only) skips it."""
    try:
        dialer()
        store().load_scripts()
        with app.producer_pool.acquire(block=True):
            pass
    except Exception as exc:  # whatever failed is built again, and reported, by the first task that needs it
        log.info("dial path not warmed up at start (%s); it is built by the first dial", exc)


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
