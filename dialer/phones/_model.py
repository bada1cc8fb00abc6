"""What normalising a phone cell produces: a ``PhoneInfo`` or a ``PhoneRejected``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RejectReason(StrEnum):
    """Why a phone cell was rejected; the values are stable keys of the ``--json`` summary."""

    MISSING = "missing_phone"  #: empty cell, NaN, or a placeholder such as "n/a"
    SCIENTIFIC = "scientific_notation"  #: a spreadsheet turned it into 4.4207946E+11; never guessed
    NOT_A_NUMBER = "not_a_number"  #: letters or other text that is no phone number
    EXTENSION = "has_extension"  #: a number with an extension ("x123"), which cannot be dialed
    INVALID = "invalid_number"  #: digits, but too short, too long or not valid for their region


class PhoneRejected(ValueError):
    """A phone cell that cannot be dialed; ``detail`` says what is wrong and what to fix."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[PhoneRejected], tuple[RejectReason, str]]:
        return type(self), (self.reason, self.detail)


@dataclass(frozen=True, slots=True)
class PhoneInfo:
    """A valid number, as phonenumbers sees it."""

    e164: str  #: "+12025550142"
    region: str  #: "US"; "001" for non-geographic numbers such as +800
    number_type: str  #: "mobile", "fixed_line", "fixed_line_or_mobile", "toll_free", ...
    time_zones: tuple[str, ...]  #: IANA zones of the number (may be several); () if unknown
    geographic: bool  #: phonenumbers.is_number_geographical


_new_info = object.__new__
_set_e164 = vars(PhoneInfo)["e164"].__set__
_set_region = vars(PhoneInfo)["region"].__set__
_set_number_type = vars(PhoneInfo)["number_type"].__set__
_set_time_zones = vars(PhoneInfo)["time_zones"].__set__
_set_geographic = vars(PhoneInfo)["geographic"].__set__


def make_info(
    e164: str, region: str, number_type: str, time_zones: tuple[str, ...], geographic: bool
) -> PhoneInfo:
    """``PhoneInfo(...)`` for the hot path: fills the slots directly, twice as fast as the
    frozen dataclass's ``__init__``, which goes through ``object.__setattr__`` per field."""
    info = _new_info(PhoneInfo)
    _set_e164(info, e164)
    _set_region(info, region)
    _set_number_type(info, number_type)
    _set_time_zones(info, time_zones)
    _set_geographic(info, geographic)
    return info
