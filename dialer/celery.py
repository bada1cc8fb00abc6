"""The Celery app, as ``celery -A dialer worker`` finds it.

Configuration follows DESIGN.md section 7: late acks, rejection on worker loss,
prefetch 1, a visibility timeout longer than any task can run, and results not
used as state (the Redis ledger decides what is a duplicate). Settings are read
when Celery first needs its configuration, not at import.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from .settings import Settings, get_settings

#: Longer than any task can run: the dial task is bounded by the ring timeout
#: (at most 300 s) plus margins, and ingest of the largest allowed file by far less.
VISIBILITY_TIMEOUT_S = 4 * 3600
QUEUES = ("dial", "ingest", "control", "webhooks")


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
        "broker_pool_limit": settings.dialer_worker_concurrency + 10,
        "task_ignore_result": True,
        # No result backend is used; the disabled one is stateless. Without this Celery builds one
        # per worker thread (entry-point scan included): 1,000 builds for the default pool.
        "result_backend_thread_safe": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        "worker_pool": "threads",
        "worker_concurrency": settings.dialer_worker_concurrency,
        "worker_hijack_root_logger": False,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "control",
        "task_routes": {
            "dialer.tasks.dial": {"queue": "dial"},
            "dialer.tasks.dial_batch": {"queue": "dial"},
            "dialer.tasks.ingest_upload": {"queue": "ingest"},
            "dialer.tasks.pace": {"queue": "control"},
            "dialer.tasks.reconcile": {"queue": "control"},
            # Deliveries wait on receivers: their own queue, so a separate worker can take them.
            "dialer.tasks.webhooks": {"queue": "webhooks"},
            "dialer.tasks.deliver_webhook": {"queue": "webhooks"},
        },
        "beat_schedule": beat_schedule(),
    }


def beat_schedule() -> dict[str, Any]:
    from .pacer import PACER_PERIOD_S
    from .reconcile import RECONCILE_PERIOD_S
    from .webhook_sender import DISPATCH_PERIOD_S

    return {
        "pace": {"task": "dialer.tasks.pace", "schedule": PACER_PERIOD_S,
                 "options": {"expires": PACER_PERIOD_S * 2}},
        "reconcile": {"task": "dialer.tasks.reconcile", "schedule": RECONCILE_PERIOD_S,
                      "options": {"expires": RECONCILE_PERIOD_S * 2}},
        "webhooks": {"task": "dialer.tasks.webhooks", "schedule": DISPATCH_PERIOD_S,
                     "options": {"expires": DISPATCH_PERIOD_S * 2}},
    }


app = Celery("dialer", include=["dialer.tasks"])
app.add_defaults(lambda: celery_config(get_settings()))
