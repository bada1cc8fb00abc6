"""The reconciler (DESIGN.md section 3, step 8): nothing waits forever.

Attempts whose lease expired in ``queued``, ``dialing`` or ``in_call`` belong to a
worker or agent that died. Their fate is read from LiveKit (is the callee still
in the room?), never guessed by dialing again.
"""

from __future__ import annotations

import logging

from livekit import api

from .dialing import (
    DIALING_MARGIN_S,
    IN_CALL_MARGIN_S,
    REQUEUE_DELAY_S,
    TRANSIENT_ERRORS,
    participant_identity,
    room_name,
)
from .livekit import LiveKitGateway
from .models import AttemptState, Outcome
from .settings import Settings
from .store import Keys, Store

log = logging.getLogger(__name__)

RECONCILE_PERIOD_S = 5.0
#: Extra time given to a call LiveKit says is still ringing or talking.
EXTENSION_S = 60.0


def reconcile(store: Store, gateway: LiveKitGateway, settings: Settings, token: str) -> int | None:
    """Finalise or extend every expired attempt; None when another reconciler runs."""
    if not store.try_lock(Keys.reconciler_lock, token, ttl_s=RECONCILE_PERIOD_S * 6):
        return None
    handled = 0
    now = settings.now()
    for cid, member in store.expired_leases(now):
        try:
            handled += reconcile_attempt(store, gateway, cid, member, now)
        except (api.ServerError, *TRANSIENT_ERRORS) as exc:
            log.warning("cannot reconcile %s:%s yet: %s", cid, member, exc)
    return handled


def reconcile_attempt(store: Store, gateway: LiveKitGateway, cid: str, member: str, now: float) -> int:
    attempt = store.attempt(cid, member)
    if attempt is None or attempt["state"] == AttemptState.DONE:
        store.redis.zrem(Keys.leases, f"{cid}:{member}")
        return 0
    record = store.get_campaign(cid)
    contact_id, seq = int(attempt["contact"]), int(attempt["seq"])
    room = room_name(cid, contact_id, seq)
    state = AttemptState(attempt["state"])
    common = {"now": now, "max_attempts": record.config.max_attempts}
    if state is AttemptState.QUEUED:
        # Never claimed: no INVITE can have gone out. Requeue without charging an attempt.
        store.finalise(cid, member, [state], verdict="requeue", outcome=Outcome.FAILED, counts=False,
                       due_at=now + REQUEUE_DELAY_S, fields={"reason": "dial task lost before dialing"},
                       **common)
        return 1
    status = _callee_status(gateway, room, participant_identity(contact_id))
    if state is AttemptState.DIALING and status == "active":
        lease = now + record.config.max_call_duration_s + IN_CALL_MARGIN_S
        store.transition(cid, member, [state], AttemptState.IN_CALL, lease, {"answered_at": now})
        return 1
    if status in ("dialing", "ringing", "active", "automation"):
        lease = now + (EXTENSION_S if state is AttemptState.IN_CALL else DIALING_MARGIN_S)
        store.transition(cid, member, [state], state, lease, {"extended_at": now})
        return 1
    try:
        gateway.delete_room(room)
    except (api.ServerError, *TRANSIENT_ERRORS) as exc:
        log.warning("cleanup of room %s failed: %s", room, exc)
    if state is AttemptState.DIALING:
        store.finalise(cid, member, [state], verdict="retry", outcome=Outcome.CARRIER_ERROR, counts=True,
                       due_at=now + record.config.retry_delay_s.carrier_error,
                       fields={"reason": "dial task lost mid-dial; no call in the room"}, **common)
    else:
        store.finalise(cid, member, [state], verdict="final", outcome=Outcome.ANSWERED, counts=True,
                       fields={"reason": "the agent never reported a result", "disposition": "unknown"},
                       **common)
    return 1


def _callee_status(gateway: LiveKitGateway, room: str, identity: str) -> str | None:
    for participant in gateway.participants(room) or []:
        if participant.identity == identity:
            return str(participant.attributes.get("sip.callStatus", "dialing"))
    return None
