"""The reconciler (DESIGN.md section 3, step 8): nothing waits forever.

It also removes what an ingest killed part-way left behind (a campaign is never half-stored).

Attempts whose lease expired in ``queued``, ``dialing`` or ``in_call`` belong to a
worker or agent that died. Their fate is read from LiveKit (is the callee still
in the room?), never guessed by dialing again.
"""

from __future__ import annotations

import logging

from livekit import api

from .dialing import REQUEUE_DELAY_S, TRANSIENT_ERRORS, in_call_lease, participant_identity, room_name
from .livekit import LiveKitGateway
from .models import AttemptState, Outcome
from .settings import Settings
from .store import Keys, Store

log = logging.getLogger(__name__)

RECONCILE_PERIOD_S = 5.0


def reconcile(store: Store, gateway: LiveKitGateway, settings: Settings, token: str) -> int | None:
    """Finalise or extend every expired attempt; None when another reconciler runs."""
    if not store.try_lock(Keys.reconciler_lock, token, ttl_s=RECONCILE_PERIOD_S * 6):
        return None
    for cid in store.discard_abandoned_ingests():
        log.warning("removed campaign %s: its ingest stopped part-way and never finished", cid)
    handled = 0
    now = settings.now()
    for cid, member in store.expired_leases(now):
        try:
            handled += reconcile_attempt(store, gateway, settings, cid, member, now)
        except (api.ServerError, *TRANSIENT_ERRORS) as exc:
            log.warning("cannot reconcile %s:%s yet: %s", cid, member, exc)
    return handled


def reconcile_attempt(
    store: Store, gateway: LiveKitGateway, settings: Settings, cid: str, member: str, now: float
) -> int:
    attempt = store.attempt(cid, member)
    if attempt is None or attempt["state"] == AttemptState.DONE:
        store.redis.zrem(Keys.leases, f"{cid}:{member}")
        return 0
    record = store.get_campaign(cid)
    contact_id, seq = int(attempt["contact"]), int(attempt["seq"])
    room = room_name(cid, contact_id, seq)
    state = AttemptState(attempt["state"])
    max_attempts = record.config.max_attempts
    if state is AttemptState.QUEUED:
        # Never claimed: no INVITE can have gone out. Requeue without charging an attempt.
        store.finalise(cid, member, [state], verdict="requeue", outcome=Outcome.FAILED, counts=False,
                       due_at=now + REQUEUE_DELAY_S, fields={"reason": "dial task lost before dialing"},
                       now=now, max_attempts=max_attempts)
        return 1
    status = _callee_status(gateway, room, participant_identity(contact_id))
    if state is AttemptState.DIALING and status == "active":
        lease = in_call_lease(settings, record.config, now)
        store.transition(cid, member, [state], AttemptState.IN_CALL, lease, {"answered_at": now})
        return 1
    if status in ("dialing", "ringing", "active", "automation"):
        lease = now + settings.dialer_lease_margin_s
        store.transition(cid, member, [state], state, lease, {"extended_at": now})
        return 1
    try:
        gateway.delete_room(room)
    except (api.ServerError, *TRANSIENT_ERRORS) as exc:
        log.warning("cleanup of room %s failed: %s", room, exc)
    if state is AttemptState.DIALING:
        store.finalise(cid, member, [state], verdict="retry", outcome=Outcome.CARRIER_ERROR,
                       counts=True,
                       due_at=now + record.config.retry_delay_s.carrier_error,
                       fields={"reason": "dial task lost mid-dial; no call in the room"},
                       now=now, max_attempts=max_attempts)
    else:
        store.finalise(cid, member, [state], verdict="final", outcome=Outcome.ANSWERED, counts=True,
                       fields={"reason": "the agent never reported a result", "disposition": "unknown"},
                       now=now, max_attempts=max_attempts)
    return 1


def _callee_status(gateway: LiveKitGateway, room: str, identity: str) -> str | None:
    for participant in gateway.participants(room) or []:
        if participant.identity == identity:
            return str(participant.attributes.get("sip.callStatus", "dialing"))
    return None
