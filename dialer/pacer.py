"""The pacer (DESIGN.md section 3, step 3): due contacts become queued attempts.

It runs every ``PACER_PERIOD_S`` from Celery beat, one active instance at a time
(a Redis lock). For each running campaign it takes as many due contacts as the
concurrency limits and the calls-per-second budgets allow (the campaign's and the
trunk's, the trunk's shared fairly between the campaigns on it), leaves those whose
calling window is closed re-scored to its next opening, and hands the queued
attempts to ``enqueue`` (the worker sends them as dial tasks). Re-attempts come
back through the due set, never through Celery countdown/eta.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .settings import Settings
from .store import CampaignRecord, Keys, Pacing, QueueRequest, Store
from .window import is_open, next_opening

PACER_PERIOD_S = 1.0
#: Contacts examined per campaign per run, so closed windows cannot stall a run.
MAX_SCAN = 5_000
#: When a window never opens within the horizon, look again this much later.
RECHECK_LATER_S = 86_400.0

#: Sends a campaign's attempts queued by one scan: (campaign id, [(contact id, attempt seq)...]).
Enqueue = Callable[[str, list[tuple[int, int]]], None]

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


@dataclass
class _Plan:
    """One campaign's part of a pacer run: its release budgets and what it may still take."""

    record: CampaignRecord
    trunk: str
    pacing: Pacing
    #: An upper bound only; the buckets inside the pacing script decide.
    budget: int
    queued: int = 0
    scanned: int = 0


def _plan(settings: Settings, record: CampaignRecord, trunk: str, factor: float, in_flight: int,
          trunk_sharers: int) -> _Plan:
    config = record.config
    campaign_rate = config.calls_per_second * factor
    trunk_rate = settings.dialer_trunk_calls_per_second * factor
    pacing = Pacing(campaign_rate=campaign_rate, campaign_burst=burst(campaign_rate),
                    trunk_rate=trunk_rate, trunk_burst=burst(trunk_rate) if trunk_rate > 0 else 0.0,
                    trunk_sharers=trunk_sharers)
    budget = min(config.max_concurrent_calls - in_flight, int(pacing.campaign_burst))
    return _Plan(record, trunk, pacing, budget)


def _scan_limit(plan: _Plan) -> int:
    return max(plan.budget, 50)


def _sort(plan: _Plan, ids: list[int], contacts: list[dict[str, Any] | None], now: float,
          ) -> tuple[list[int], dict[int, float]]:
    """(ready, later): due contacts inside their calling window (at most the budget), and those
    whose window is closed with the time it opens. Contacts past the budget stay due unexamined."""
    window = plan.record.config.calling_window
    moment = datetime.fromtimestamp(now, UTC)
    ready: list[int] = []
    later: dict[int, float] = {}
    for contact_id, data in zip(ids, contacts, strict=True):
        if len(ready) >= plan.budget:
            break
        zones = (data or {}).get("time_zones", [])
        if is_open(window, zones, moment):
            ready.append(contact_id)
        else:
            opening = next_opening(window, zones, moment)
            later[contact_id] = opening.timestamp() if opening else now + RECHECK_LATER_S
    return ready, later


def _request(settings: Settings, plan: _Plan, ready: list[int], later: dict[int, float]) -> QueueRequest:
    return QueueRequest(plan.record.id, plan.trunk, ready, lease_s=settings.dialer_queued_lease_s,
                        max_concurrent=plan.record.config.max_concurrent_calls,
                        trunk_max_concurrent=settings.dialer_trunk_max_concurrent_calls, pacing=plan.pacing,
                        later=later)


def _took(plan: _Plan, members: list[str], enqueue: Enqueue) -> None:
    if members:
        enqueue(plan.record.id, [(int(contact), int(seq)) for contact, _, seq in
                                 (member.partition(":") for member in members)])
    plan.queued += len(members)
    plan.budget -= len(members)


def _drain(store: Store, settings: Settings, plan: _Plan, now: float, enqueue: Enqueue) -> int:
    """Take what the campaign may dial now, one scan after another (closed windows are skipped)."""
    while plan.budget > 0 and plan.scanned < MAX_SCAN:
        ids = store.due_contacts(plan.record.id, now, limit=_scan_limit(plan))
        if not ids:
            break
        plan.scanned += len(ids)
        ready, later = _sort(plan, ids, store.contacts(plan.record.id, ids), now)
        members = store.queue_attempts_many([_request(settings, plan, ready, later)], now=now)[0]
        _took(plan, members, enqueue)
        if len(members) < len(ready):
            break  # a concurrency limit is full, or the budget is spent
    return plan.queued


def _first_scan(store: Store, settings: Settings, plans: list[_Plan], now: float, enqueue: Enqueue) -> list[_Plan]:
    """The first scan of every campaign at once, in three round trips (their due contacts, the
    contacts, then the pacing scripts in the campaigns' order); the plans that may take more."""
    active = [plan for plan in plans if plan.budget > 0]
    # Just the budget: in the common case every window is open and all of them are taken.
    limits = [plan.budget for plan in active]
    due = store.due_contacts_many([(plan.record.id, limit) for plan, limit in zip(active, limits, strict=True)],
                                  now)
    contacts = store.contacts_many([(plan.record.id, ids) for plan, ids in zip(active, due, strict=True)])
    sorted_ = [_sort(plan, ids, data, now) for plan, ids, data in zip(active, due, contacts, strict=True)]
    requests = [_request(settings, plan, ready, later) for plan, (ready, later) in zip(active, sorted_, strict=True)]
    taken = store.queue_attempts_many(requests, now=now)
    more = []
    for plan, ids, limit, (ready, _), members in zip(active, due, limits, sorted_, taken, strict=True):
        plan.scanned = len(ids)
        _took(plan, members, enqueue)
        if plan.budget > 0 and len(ids) == limit and len(members) == len(ready):
            more.append(plan)  # a full scan, all of it taken: there may be more due behind it
    return more


def pace_campaign(
    store: Store, settings: Settings, record: CampaignRecord, now: float, enqueue: Enqueue,
    trunk_sharers: int = 1,
) -> int:
    """Queue what one campaign may dial now; returns how many attempts were queued.

    ``trunk_sharers`` is how many campaigns on this trunk (this one included) are still to be
    paced in this run: the campaign takes at most that share of the trunk's budget.
    """
    trunk = record.trunk or store.trunk_of(record.id)
    plan = _plan(settings, record, trunk, pace_factor(store, trunk), store.in_flight(record.id), trunk_sharers)
    return _drain(store, settings, plan, now, enqueue)


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
    plans: list[_Plan] = []
    for trunk, records in by_trunk.items():
        factor = pace_factor(store, trunk)  # once per trunk and run, not per campaign
        # Rotate who goes first each run, so no campaign is always served last on a busy trunk.
        turn = int(now / PACER_PERIOD_S) % len(records)
        ordered = records[turn:] + records[:turn]
        plans += [_plan(settings, record, trunk, factor, in_flight, len(ordered) - index)
                  for index, (record, in_flight) in enumerate(ordered)]
    for plan in _first_scan(store, settings, plans, now, enqueue):
        _drain(store, settings, plan, now, enqueue)  # rare: closed windows filled its first scan
    return sum(plan.queued for plan in plans)
