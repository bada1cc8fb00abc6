"""The pacer (DESIGN.md section 3, step 3): due contacts become queued attempts.

It runs every ``PACER_PERIOD_S`` from Celery beat, one active instance at a time
(a Redis lock). For each running campaign it takes as many due contacts as the
concurrency limits and the calls-per-second budget allow, leaves those whose
calling window is closed re-scored to its next opening, and enqueues one dial
task per queued attempt. Re-attempts come back through the due set, never
through Celery countdown/eta.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from .errors import NotFoundError
from .settings import Settings
from .store import CampaignRecord, Keys, Store
from .window import is_open, next_opening

PACER_PERIOD_S = 1.0
#: Contacts examined per campaign per run, so closed windows cannot stall a run.
MAX_SCAN = 5_000
#: When a window never opens within the horizon, look again this much later.
RECHECK_LATER_S = 86_400.0

Enqueue = Callable[[str, int, int], None]


def pace_campaign(
    store: Store, settings: Settings, record: CampaignRecord, now: float, enqueue: Enqueue
) -> int:
    """Queue what one campaign may dial now; returns how many attempts were queued."""
    config = record.config
    trunk = store.trunk_of(record.id)
    if store.cooling_down(trunk):
        return 0
    budget = min(config.max_concurrent_calls - store.in_flight(record.id),
                 max(1, math.ceil(config.calls_per_second * PACER_PERIOD_S)))
    moment = datetime.fromtimestamp(now, UTC)
    queued = scanned = 0
    while budget > 0 and scanned < MAX_SCAN:
        ids = store.due_contacts(record.id, now, limit=max(budget, 50))
        if not ids:
            break
        scanned += len(ids)
        ready: list[int] = []
        later: dict[int, float] = {}
        for contact_id, data in zip(ids, store.contacts(record.id, ids), strict=True):
            zones = (data or {}).get("time_zones", [])
            if is_open(config.calling_window, zones, moment):
                ready.append(contact_id)
            else:
                opening = next_opening(config.calling_window, zones, moment)
                later[contact_id] = opening.timestamp() if opening else now + RECHECK_LATER_S
        store.reschedule_due(record.id, later)
        wanted = ready[:budget]
        members = store.queue_attempts(
            record.id, trunk, wanted, now=now, lease_s=settings.dialer_queued_lease_s,
            max_concurrent=config.max_concurrent_calls,
            trunk_max_concurrent=settings.dialer_trunk_max_concurrent_calls,
        )
        for member in members:
            contact, _, seq = member.partition(":")
            enqueue(record.id, int(contact), int(seq))
        queued += len(members)
        budget -= len(members)
        if len(members) < len(wanted):
            break  # a concurrency limit is full
    return queued


def pace(store: Store, settings: Settings, enqueue: Enqueue, token: str) -> int | None:
    """One pacer run over every running campaign; None when another pacer holds the lock."""
    if not store.try_lock(Keys.pacer_lock, token, ttl_s=PACER_PERIOD_S * 5):
        return None
    queued = 0
    now = settings.now()
    for cid in store.running_campaigns():
        try:
            record = store.get_campaign(cid)
        except NotFoundError:  # a campaign deleted under us is simply skipped
            continue
        queued += pace_campaign(store, settings, record, now, enqueue)
    return queued
