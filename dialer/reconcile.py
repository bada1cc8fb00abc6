"""The reconciler (DESIGN.md section 3, step 8): nothing waits forever.

It also removes what an ingest killed part-way left behind (a campaign is never half-stored).

Attempts whose lease expired in ``queued``, ``dialing`` or ``in_call`` belong to a
worker or agent that died or stalled. Their fate is read from LiveKit (is the callee
in the room?), never guessed by dialing again:

- a callee who answered moves the attempt to ``in_call``; one still ringing extends it;
- "no call" is settled only after the room was seen without the callee on several looks
  over ``dialer_no_call_settle_s`` and the room was then deleted (LiveKit may still be
  placing a participant at the first look);
- each attempt is handled on its own: one that fails is retried a little later, so the
  oldest stuck lease never blocks the rest, and one whose room stays unreadable past
  ``dialer_reconcile_give_up_s`` is closed without another dial, so every lease ends by a
  deadline (I2).
"""

from __future__ import annotations

import logging
from typing import Any

from livekit import api

from .dialing import (
    REQUEUE_DELAY_S,
    TRANSIENT_ERRORS,
    callee_status,
    in_call_lease_s,
    participant_identity,
    room_name,
)
from .errors import NotFoundError
from .livekit import LiveKitGateway
from .models import AttemptState, Outcome
from .settings import Settings
from .store import CampaignRecord, Keys, Store

log = logging.getLogger(__name__)

RECONCILE_PERIOD_S = 5.0
#: How far an attempt's lease moves on while the reconciler is still looking into it.
LOOK_AGAIN_S = 1.0
#: Looks without the callee before "no call" (a run apart, so with the settle time they span
#: several seconds).
NO_CALL_LOOKS = 2
#: The callee is in the room, in one of these call states.
PRESENT = ("dialing", "ringing", "automation", "active", "hangup")


def reconcile(store: Store, gateway: LiveKitGateway, settings: Settings, token: str) -> int | None:
    """Finalise or extend every expired attempt; None when another reconciler runs."""
    # The lock outlives one period only a little: a reconciler killed while holding it must not
    # stop the others for long (its runs are compare-and-set, so an overlap does no harm).
    if not store.try_lock(Keys.reconciler_lock, token, ttl_s=RECONCILE_PERIOD_S * 2):
        return None
    store.heartbeat("reconciler", token)
    for cid in store.discard_abandoned_ingests():
        log.warning("removed campaign %s: its ingest stopped part-way and never finished", cid)
    handled = 0
    for cid, member in store.expired_leases():
        try:
            handled += reconcile_attempt(store, gateway, settings, cid, member)
        except Exception:  # one bad attempt must not stop the others (I2)
            log.exception("cannot reconcile %s:%s; looking again later", cid, member)
            _look_again(store, cid, member)
    return handled


def reconcile_attempt(store: Store, gateway: LiveKitGateway, settings: Settings, cid: str, member: str) -> int:
    """Settle or extend one attempt whose lease ran out; 1 when something changed."""
    attempt = store.attempt(cid, member)
    if attempt is None or attempt["state"] == AttemptState.DONE:
        store.redis.zrem(Keys.leases, f"{cid}:{member}")
        return 0
    try:
        record = store.get_campaign(cid)
    except NotFoundError:  # the campaign was removed: nothing left to settle
        store.redis.zrem(Keys.leases, f"{cid}:{member}")
        return 0
    now = store.server_time()
    contact_id, seq = int(attempt["contact"]), int(attempt["seq"])
    room = room_name(cid, contact_id, seq)
    state = AttemptState(attempt["state"])
    try:
        status = callee_status(gateway, room, participant_identity(contact_id))
    except Exception as exc:  # whatever LiveKit (or the way to it) does, the deadline holds
        return _unreadable(store, settings, record, member, state, attempt, now, exc)
    if status == "active" and state is not AttemptState.IN_CALL:
        store.transition(cid, member, [state], AttemptState.IN_CALL, in_call_lease_s(settings, record.config),
                         {"answered_at": now, "empty_looks": 0, "empty_since": 0, "unreadable_since": 0})
        return 1
    if status in PRESENT:
        store.transition(cid, member, [state], state, settings.dialer_lease_margin_s,
                         {"extended_at": now, "empty_looks": 0, "empty_since": 0, "unreadable_since": 0})
        return 1
    if state is AttemptState.IN_CALL:
        # The call is over and its agent never reported: the person was spoken to.
        store.finalise(cid, member, [state], verdict="final", outcome=Outcome.ANSWERED, counts=True,
                       fields={"reason": "the agent never reported a result", "disposition": "unknown"},
                       now=now, max_attempts=record.config.max_attempts)
        return 1
    return _no_callee(store, gateway, settings, record, member, state, attempt, room, now)


def _no_callee(store: Store, gateway: LiveKitGateway, settings: Settings, record: CampaignRecord, member: str,
               state: AttemptState, attempt: dict[str, Any], room: str, now: float) -> int:
    """No callee in the room of a queued or dialing attempt: settle "no call" on evidence only."""
    cid = record.id
    looks = int(attempt.get("empty_looks") or 0) + 1
    since = float(attempt.get("empty_since") or now)
    if looks < NO_CALL_LOOKS or now - since < settings.dialer_no_call_settle_s:
        store.transition(cid, member, [state], state, LOOK_AGAIN_S,
                         {"empty_looks": looks, "empty_since": since, "unreadable_since": 0})
        return 1
    try:
        gateway.delete_room(room)
    except (api.ServerError, *TRANSIENT_ERRORS) as exc:
        log.warning("room %s could not be deleted (%s); settled at a later look", room, exc)
        store.transition(cid, member, [state], state, LOOK_AGAIN_S, {"empty_looks": looks, "empty_since": since})
        return 1
    max_attempts = record.config.max_attempts
    if state is AttemptState.QUEUED or not attempt.get("invites"):
        # No INVITE left for this attempt: requeue it without charging an attempt.
        store.finalise(cid, member, [state], verdict="requeue", outcome=Outcome.FAILED, counts=False,
                       due_at=now + REQUEUE_DELAY_S, now=now, max_attempts=max_attempts,
                       fields={"reason": "dial task lost before dialing", "invite_sent": False})
    else:
        store.finalise(cid, member, [state], verdict="retry", outcome=Outcome.CARRIER_ERROR, counts=True,
                       due_at=now + record.config.retry_delay_s.carrier_error, now=now, max_attempts=max_attempts,
                       fields={"reason": "dial task lost mid-dial; no call in the room"})
    return 1


def _unreadable(store: Store, settings: Settings, record: CampaignRecord, member: str, state: AttemptState,
                attempt: dict[str, Any], now: float, exc: Exception) -> int:
    """LiveKit cannot tell what became of the call: look again, and past the deadline close the
    attempt without ever dialing it again."""
    since = float(attempt.get("unreadable_since") or now)
    give_up_s = settings.dialer_reconcile_give_up_s
    if now - since < give_up_s:
        log.warning("cannot read room of %s:%s yet: %s", record.id, member, exc)
        store.transition(record.id, member, [state], state, LOOK_AGAIN_S, {"unreadable_since": since})
        return 1
    answered = state is AttemptState.IN_CALL
    store.finalise(record.id, member, [state], verdict="final",
                   outcome=Outcome.ANSWERED if answered else Outcome.FAILED, counts=True, now=now,
                   max_attempts=record.config.max_attempts,
                   fields={"reason": f"LiveKit unreadable for {give_up_s:.0f} s: {exc}"})
    return 1


def _look_again(store: Store, cid: str, member: str) -> None:
    """Move a failing attempt's lease on, so the next run reaches the ones behind it."""
    try:
        attempt = store.attempt(cid, member)
        if attempt is None or attempt["state"] == AttemptState.DONE:
            store.redis.zrem(Keys.leases, f"{cid}:{member}")
            return
        state = AttemptState(attempt["state"])
        store.transition(cid, member, [state], state, RECONCILE_PERIOD_S)
    except Exception:
        log.exception("cannot move the lease of %s:%s on", cid, member)
