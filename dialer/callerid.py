"""Choosing the caller ID an attempt shows from a campaign's pool (round robin or local presence)."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from .config import CampaignConfig
from .store import Store


@lru_cache(maxsize=65_536)
def area(number: str) -> tuple[int, str]:
    """(country code, area code) of an E.164 number; the area code is '' where there is none."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return 0, ""
    national = str(parsed.national_number)
    length = phonenumbers.length_of_geographical_area_code(parsed)
    return int(parsed.country_code or 0), national[:length] if length else ""


def choose(store: Store, cid: str, config: CampaignConfig, callee: str) -> str:
    """The caller ID for the next attempt to ``callee`` ('' when the campaign has none)."""
    pool = config.caller_ids
    if len(pool) <= 1:
        return pool[0] if pool else ""
    candidates = pool
    if config.caller_id_strategy == "local_presence":
        local = tuple(number for number in pool if area(number) == area(callee) and area(callee)[1])
        candidates = local or pool
    turn = store.next_turn(cid, ",".join(candidates))
    return candidates[turn % len(candidates)]
