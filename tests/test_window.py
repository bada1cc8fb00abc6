from datetime import UTC, datetime, timedelta

import phonenumbers
from phonenumbers import timezone

from dialer.window import CallingWindow, can_call_together, is_open, next_opening

WEEKDAYS_9_TO_20 = CallingWindow(start="09:00", end="20:00", days=("mon", "tue", "wed", "thu", "fri"))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_open_is_judged_in_the_recipients_local_time() -> None:
    # 14:00 UTC on a Wednesday is 09:00 in New York (EST) and 06:00 in Los Angeles.
    moment = at("2026-01-14T14:00:00")
    assert is_open(WEEKDAYS_9_TO_20, ["America/New_York"], moment)
    assert not is_open(WEEKDAYS_9_TO_20, ["America/Los_Angeles"], moment)


def test_several_zones_must_all_be_open() -> None:
    moment = at("2026-01-14T15:00:00")
    assert not is_open(WEEKDAYS_9_TO_20, ["America/New_York", "America/Los_Angeles"], moment)
    opening = next_opening(WEEKDAYS_9_TO_20, ["America/New_York", "America/Los_Angeles"], moment)
    assert opening == at("2026-01-14T17:00:00")  # 09:00 in Los Angeles


def test_next_opening_skips_days_outside_the_window() -> None:
    saturday_noon = at("2026-01-17T17:00:00")
    assert next_opening(WEEKDAYS_9_TO_20, ["America/New_York"], saturday_noon) == at("2026-01-19T14:00:00")


def test_next_opening_is_now_when_already_open() -> None:
    moment = at("2026-01-14T16:00:00")
    assert next_opening(WEEKDAYS_9_TO_20, ["America/New_York"], moment) == moment


def test_zones_too_far_apart_never_open_together() -> None:
    # Berlin is 11 hours ahead of Honolulu: a 9-to-8 day never overlaps.
    assert next_opening(WEEKDAYS_9_TO_20, ["Europe/Berlin", "Pacific/Honolulu"], at("2026-01-14T00:00:00")) is None


def test_a_toll_free_numbers_zones_cannot_be_called_together() -> None:
    zones = timezone.time_zones_for_number(phonenumbers.parse("+18005550100"))
    assert len(zones) > 10
    assert not can_call_together(WEEKDAYS_9_TO_20, zones, at("2026-01-14T00:00:00"))


def test_zones_of_one_country_can_be_called_together() -> None:
    zones = ("Australia/Perth", "Australia/Sydney")
    assert can_call_together(WEEKDAYS_9_TO_20, zones, at("2026-01-14T00:00:00"))


def test_zones_a_day_apart_can_share_a_window() -> None:
    # Guam (UTC+10) and Pago Pago (UTC-11) are 21 hours apart: 3 hours on the clock face.
    assert next_opening(WEEKDAYS_9_TO_20, ["Pacific/Guam", "Pacific/Pago_Pago"], at("2026-01-14T00:00:00"))


def test_dst_change_is_respected() -> None:
    # In July New York is UTC-4: 09:00 local is 13:00 UTC.
    moment = at("2026-07-15T13:00:00")
    assert is_open(WEEKDAYS_9_TO_20, ["America/New_York"], moment)
    assert not is_open(WEEKDAYS_9_TO_20, ["America/New_York"], moment - timedelta(minutes=1))


def test_window_end_is_exclusive_and_24_00_is_end_of_day() -> None:
    all_day = CallingWindow(start="00:00", end="24:00", days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    assert is_open(all_day, ["UTC"], at("2026-01-14T23:59:00"))
    assert not is_open(WEEKDAYS_9_TO_20, ["UTC"], at("2026-01-14T20:00:00"))
