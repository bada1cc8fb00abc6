"""Calling windows in the recipient's local time.

A contact may map to several time zones (a number shared by zones); the window
must be open in every one of them at once for the contact to be dialed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_WINDOW_START = "09:00"
DEFAULT_WINDOW_END = "20:00"
DEFAULT_WINDOW_DAYS = ("mon", "tue", "wed", "thu", "fri")
#: How far ahead ``next_opening`` looks before deciding a window never opens.
HORIZON_DAYS = 15
#: Zones whose UTC offsets differ by more than this straddle the date line and
#: are no one place (a toll-free number maps to Guam and Pago Pago at once).
MAX_ZONE_SPREAD_H = 12


def _parse_clock(value: str) -> int:
    """Minutes since midnight for "HH:MM" (24:00 allowed as the end of the day)."""
    try:
        hours_text, minutes_text = value.split(":")
        hours, minutes = int(hours_text), int(minutes_text)
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day; use HH:MM, e.g. 09:00") from None
    if not (0 <= minutes < 60 and (0 <= hours < 24 or (hours == 24 and minutes == 0))):
        raise ValueError(f"{value!r} is not a time of day between 00:00 and 24:00")
    return hours * 60 + minutes


class CallingWindow(BaseModel):
    """When calls may be placed, in the recipient's local time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = DEFAULT_WINDOW_START
    end: str = DEFAULT_WINDOW_END
    days: tuple[str, ...] = Field(default=DEFAULT_WINDOW_DAYS, min_length=1)

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        _parse_clock(value)
        return value

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            return value
        days = []
        for day in value:
            key = str(day).strip().lower()[:3]
            if key not in WEEKDAYS:
                raise ValueError(f"{day!r} is not a weekday; use {', '.join(WEEKDAYS)}")
            days.append(key)
        return tuple(dict.fromkeys(days))

    @model_validator(mode="after")
    def _ordered(self) -> CallingWindow:
        if _parse_clock(self.start) >= _parse_clock(self.end):
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self

    # Computed once per window (it is frozen): the pacer and the dialer ask per contact.
    @cached_property
    def start_minute(self) -> int:
        return _parse_clock(self.start)

    @cached_property
    def end_minute(self) -> int:
        return _parse_clock(self.end)

    @cached_property
    def weekday_numbers(self) -> frozenset[int]:
        return frozenset(WEEKDAYS.index(day) for day in self.days)


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """A cached ZoneInfo; raises ValueError for a name that is not an IANA zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. America/New_York)") from None


def is_open_in(window: CallingWindow, zone_name: str, at: datetime) -> bool:
    local = at.astimezone(zone(zone_name))
    minute = local.hour * 60 + local.minute
    return (
        local.weekday() in window.weekday_numbers
        and window.start_minute <= minute < window.end_minute
    )


def is_open(window: CallingWindow, zones: Iterable[str], at: datetime) -> bool:
    """True when the window is open in every zone at ``at`` (an aware datetime)."""
    return all(is_open_in(window, name, at) for name in zones)


def offset_spread_h(zones: Iterable[str], at: datetime) -> float:
    """Hours between the most eastern and most western of ``zones`` at ``at``."""
    offsets = [at.astimezone(zone(name)).utcoffset() or timedelta(0) for name in zones]
    if not offsets:
        return 0.0
    return (max(offsets) - min(offsets)).total_seconds() / 3600


def can_call_together(window: CallingWindow, zones: Iterable[str], at: datetime) -> bool:
    """True when the zones are one locality and the window opens in all of them."""
    names = tuple(zones)
    return (
        bool(names)
        and offset_spread_h(names, at) <= MAX_ZONE_SPREAD_H
        and next_opening(window, names, at) is not None
    )


def _openings(window: CallingWindow, zone_name: str, after: datetime) -> Iterable[datetime]:
    """Each local window start in ``zone_name`` from the day before ``after`` on, in UTC."""
    tz = zone(zone_name)
    first_day = after.astimezone(tz).date() - timedelta(days=1)
    start = time(window.start_minute // 60, window.start_minute % 60)
    for offset in range(HORIZON_DAYS + 2):
        day = first_day + timedelta(days=offset)
        if day.weekday() in window.weekday_numbers:
            yield datetime.combine(day, start, tzinfo=tz).astimezone(UTC)


def next_opening(
    window: CallingWindow, zones: Iterable[str], after: datetime
) -> datetime | None:
    """The first moment at or after ``after`` when the window is open in every zone.

    None when it does not open within ``HORIZON_DAYS``: those zones can never be
    called together under this window.
    """
    names = tuple(zones)
    if is_open(window, names, after):
        return after
    horizon = after + timedelta(days=HORIZON_DAYS)
    # The intersection of the zones' windows always opens when one of them opens.
    candidates = sorted(
        moment
        for name in names
        for moment in _openings(window, name, after)
        if after < moment <= horizon
    )
    for moment in candidates:
        if is_open(window, names, moment):
            return moment
    return None
