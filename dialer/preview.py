"""Launch preview: what a campaign would do if it started now (`dialer campaign preview`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .store import Store
from .window import is_open, next_opening

#: ``opens_at`` of zones whose windows never open together within the horizon.
NEVER = "never"
#: What a call is assumed to last (ringing and talking) when the estimate is made.
DEFAULT_AVG_CALL_S = 60.0


@dataclass
class ZoneGroup:
    """Contacts sharing the same time zones, and when their window first opens."""

    time_zones: str
    contacts: int = 0
    #: None when the window is open now, ``never`` when it does not open within the horizon.
    opens_at: str | None = None


@dataclass
class Preview:
    campaign_id: str
    state: str
    contacts: int
    #: Still to be dialed (not final, not in flight).
    waiting: int
    callable_now: int
    waiting_for_window: int
    #: Their zones never share an open window within the horizon.
    blocked: int
    calls_per_second: float
    max_concurrent_calls: int
    avg_call_s: float
    #: Seconds to place a first attempt to every waiting contact at the configured pace, if
    #: every window were open; retries and closed windows come on top.
    estimated_duration_s: float
    groups: list[ZoneGroup] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)


def preview(store: Store, cid: str, now: float, avg_call_s: float = DEFAULT_AVG_CALL_S) -> Preview:
    record = store.get_campaign(cid)
    config = record.config
    moment = datetime.fromtimestamp(now, UTC)
    statuses = dict(store.iter_statuses(cid))
    groups: dict[str, ZoneGroup] = {}
    callable_now = waiting_for_window = blocked = 0
    for batch in _batches(store.contact_ids(cid)):
        for contact_id, contact in zip(batch, store.contacts(cid, batch), strict=True):
            state = (statuses.get(contact_id) or {}).get("state", "pending")
            if contact is None or state in ("final", "in_flight"):
                continue
            zones = tuple(contact.get("time_zones", ()))
            key = " ".join(zones) or "unknown"
            group = groups.get(key)
            if group is None:
                group = groups[key] = ZoneGroup(key)
                if not is_open(config.calling_window, zones, moment):
                    opening = next_opening(config.calling_window, zones, moment)
                    group.opens_at = opening.isoformat() if opening else NEVER
            group.contacts += 1
            if group.opens_at is None:
                callable_now += 1
            elif group.opens_at == NEVER:
                blocked += 1
            else:
                waiting_for_window += 1
    waiting = callable_now + waiting_for_window + blocked
    throughput = min(config.calls_per_second, config.max_concurrent_calls / avg_call_s)
    return Preview(
        campaign_id=cid, state=record.state.value, contacts=record.counts["accepted"], waiting=waiting,
        callable_now=callable_now, waiting_for_window=waiting_for_window, blocked=blocked,
        calls_per_second=config.calls_per_second, max_concurrent_calls=config.max_concurrent_calls,
        avg_call_s=avg_call_s, estimated_duration_s=round((waiting - blocked) / throughput, 1),
        groups=sorted(groups.values(), key=lambda g: -g.contacts),
    )


def _batches(ids: list[int], size: int = 5_000) -> list[list[int]]:
    return [ids[start:start + size] for start in range(0, len(ids), size)]
