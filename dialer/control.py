"""Campaign control: start, pause, resume, cancel, and the status the CLI shows."""

from __future__ import annotations

from typing import Any

from . import liveness
from .dialing import BREAKER_REASONS
from .errors import SettingsError
from .models import CampaignState, Outcome
from .pacer import pace_factor
from .settings import Settings
from .store import Store


def start(store: Store, settings: Settings, cid: str) -> None:
    """draft -> running, after checking everything a dial will need (nothing is placed on error)."""
    record = store.get_campaign(cid)
    settings.require("livekit_url", "livekit_api_key", "livekit_api_secret")
    trunk = record.config.trunk_id or settings.sip_outbound_trunk_id
    if not trunk:
        raise SettingsError("no outbound SIP trunk: set SIP_OUTBOUND_TRUNK_ID or the campaign's trunk_id")
    # The trunk is written with the state change, never before it: a second `start` of a running
    # campaign must not move the calls in flight to another trunk's slots.
    store.set_state(cid, [CampaignState.DRAFT], CampaignState.RUNNING, fields={"trunk": trunk})


def pause(store: Store, cid: str, reason: str = "paused by operator") -> None:
    store.set_state(cid, [CampaignState.RUNNING], CampaignState.PAUSED, reason)


def resume(store: Store, cid: str) -> None:
    store.set_state(cid, [CampaignState.PAUSED], CampaignState.RUNNING)
    # The operator says the cause is fixed: the breaker starts counting afresh.
    store.reset_breaker(cid, BREAKER_REASONS)


def cancel(store: Store, settings: Settings, cid: str) -> int:
    """Stop for good: waiting contacts are cancelled now, calls in progress finish."""
    store.set_state(cid, [CampaignState.DRAFT, CampaignState.RUNNING, CampaignState.PAUSED],
                    CampaignState.CANCELLED)
    return store.cancel_waiting(cid, settings.now())


def status(store: Store, cid: str, stale_after_s: float = liveness.STALE_AFTER_S) -> dict[str, Any]:
    """The documented ``campaign status --json`` object."""
    record = store.get_campaign(cid)
    progress = store.progress(cid)
    contacts = record.counts["accepted"]
    final = progress.get("final", 0)
    in_flight = store.in_flight(cid)
    factor = pace_factor(store, store.trunk_of(cid))
    return {
        "campaign_id": cid,
        "name": record.name,
        "state": record.state.value,
        "pause_reason": record.pause_reason or None,
        "contacts": contacts,
        "final": final,
        "in_flight": in_flight,
        "pending": max(0, contacts - final - in_flight),
        "attempts": store.attempt_count(cid),
        "outcomes": {outcome.value: progress.get(f"outcome:{outcome.value}", 0) for outcome in Outcome},
        # Below the configured rate while the trunk backs off after capacity refusals.
        "effective_calls_per_second": round(record.config.calls_per_second * factor, 3),
        "trunk_pace_factor": round(factor, 3),
        # Why a running campaign is not moving: no dial worker, no beat, no pacer run.
        "problems": liveness.problems(store, stale_after_s) if record.state is CampaignState.RUNNING else [],
    }
