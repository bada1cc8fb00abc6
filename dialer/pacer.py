"""The pacer (DESIGN.md section 3, step 3): due contacts become queued attempts.

It runs every ``PACER_PERIOD_S`` from Celery beat, one active instance at a time
(a Redis lock). For each running campaign it takes as many due contacts as the
concurrency limits and the calls-per-second budgets allow (the campaign's and the
trunk's, the trunk's shared fairly between the campaigns on it), leaves those whose
calling window is closed re-scored to its next opening, and enqueues one dial
task per queued attempt. Re-attempts come back through the due set, never
through Celery countdown/eta.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from .settings import Settings
from .store import CampaignRecord, Keys, Pacing, Store
from .window import is_open, next_opening

PACER_PERIOD_S = 1.0
#: Contacts examined per campaign per run, so closed windows cannot stall a run.
MAX_SCAN = 5_000
#: When a window never opens within the horizon, look again this much later.
RECHECK_LATER_S = 86_400.0

Enqueue = Callable[[str, int, int], None]

#: A capacity refusal multiplies the trunk's pace by this (multiplicative decrease) ...
BACKOFF_DECREASE = 0.5
#: ... never below this share of the configured rates ...
BACKOFF_MIN_FACTOR = 0.05
#: ... at most once this often (refusals of INVITEs already in flight are one signal) ...
BACKOFF_HOLD_S = 1.0
#: ... and each second without one gives back this share of the configured rates (additive increase).
BACKOFF_RECOVERY_PER_S = 0.02


def recovered(factor: float, elapsed_s: float) -> float:
    """The pace factor ``elapsed_s`` after it was set to ``factor``."""
    return min(1.0, factor + max(0.0, elapsed_s) * BACKOFF_RECOVERY_PER_S)


def pace_factor(store: Store, trunk: str) -> float:
    """The share (0-1] of the configured calls per second a trunk may use right now."""
    factor, at, now = store.trunk_backoff(trunk)
    return recovered(factor, now - at)


def back_off(store: Store, trunk: str) -> float:
    """The trunk refused for capacity: halve its pace (AIMD); returns the new factor."""

    def decrease(factor: float, at: float, now: float) -> float:
        current = recovered(factor, now - at)
        if current < 1.0 and now - at < BACKOFF_HOLD_S:
            return current
        return max(BACKOFF_MIN_FACTOR, current * BACKOFF_DECREASE)

    return store.set_trunk_backoff(trunk, decrease)


def burst(calls_per_second: float) -> float:
    """How many attempts a rate may release at once: one pacer period's worth, at least one."""
    return max(1.0, calls_per_second * PACER_PERIOD_S)


def pace_campaign(
    store: Store, settings: Settings, record: CampaignRecord, now: float, enqueue: Enqueue,
    trunk_sharers: int = 1, *, factor: float | None = None, in_flight: int | None = None,
) -> int:
    """Queue what one campaign may dial now; returns how many attempts were queued.

    ``trunk_sharers`` is how many campaigns on this trunk (this one included) are still to be
    paced in this run: the campaign takes at most that share of the trunk's budget. ``factor``
    (the trunk's pace factor) and ``in_flight`` save their reads when the caller has them.
    """
    config = record.config
    trunk = record.trunk or store.trunk_of(record.id)
    if factor is None:
        factor = pace_factor(store, trunk)
    if in_flight is None:
        in_flight = store.in_flight(record.id)
    campaign_rate = config.calls_per_second * factor
    trunk_rate = settings.dialer_trunk_calls_per_second * factor
    pacing = Pacing(campaign_rate=campaign_rate, campaign_burst=burst(campaign_rate),
                    trunk_rate=trunk_rate, trunk_burst=burst(trunk_rate) if trunk_rate > 0 else 0.0,
                    trunk_sharers=trunk_sharers)
    # An upper bound only; the buckets inside the pacing script decide.
    budget = min(config.max_concurrent_calls - in_flight, int(pacing.campaign_burst))
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
            if len(ready) >= budget:
                break  # the rest stay due, as they were, for the next run
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
            trunk_max_concurrent=settings.dialer_trunk_max_concurrent_calls, pacing=pacing,
        )
        for member in members:
            contact, _, seq = member.partition(":")
            enqueue(record.id, int(contact), int(seq))
        queued += len(members)
        budget -= len(members)
        if len(members) < len(wanted):
            break  # a concurrency limit is full, or the budget is spent
    return queued


def pace(store: Store, settings: Settings, enqueue: Enqueue, token: str) -> int | None:
    """One pacer run over every running campaign; None when another pacer holds the lock."""
    if not store.try_lock(Keys.pacer_lock, token, ttl_s=PACER_PERIOD_S * 5):
        return None
    store.heartbeat("pacer", token)
    now = settings.now()
    by_trunk: dict[str, list[tuple[CampaignRecord, int]]] = defaultdict(list)
    # One read of every running campaign (a campaign deleted under us is simply skipped).
    for record, in_flight in store.running_records():
        by_trunk[record.trunk or "default"].append((record, in_flight))
    queued = 0
    for trunk, records in by_trunk.items():
        factor = pace_factor(store, trunk)  # once per trunk and run, not per campaign
        # Rotate who goes first each run, so no campaign is always served last on a busy trunk.
        turn = int(now / PACER_PERIOD_S) % len(records)
        ordered = records[turn:] + records[:turn]
        for index, (record, in_flight) in enumerate(ordered):
            queued += pace_campaign(store, settings, record, now, enqueue, trunk_sharers=len(ordered) - index,
                                    factor=factor, in_flight=in_flight)
    return queued
