"""E.164 normalisation for campaign ingest (reference implementation on phonenumbers)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

import phonenumbers
from phonenumbers import PhoneNumberType, timezone

_SCIENTIFIC = re.compile(r"^\s*[+-]?\d+([.,]\d+)?[eE][+-]?\d+\s*$")
_STRIP = re.compile(r"[\s\-.()/]")


class RejectReason(str, Enum):
    MISSING = "missing_phone"  #: empty cell
    SCIENTIFIC = "scientific_notation"  #: a spreadsheet turned it into 4.42E+11
    NOT_A_NUMBER = "not_a_number"  #: text that is no phone number
    INVALID = "invalid_number"  #: parsed, but not valid for its region


class PhoneRejected(ValueError):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PhoneInfo:
    e164: str
    region: str
    number_type: str
    time_zones: tuple[str, ...]
    geographic: bool


class PhoneNormalizer:
    def __init__(self, default_region: str) -> None:
        region = default_region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{default_region!r} is not a known region code")
        self.region = region

    def normalize(self, raw: object) -> PhoneInfo:
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            raise PhoneRejected(RejectReason.MISSING, "the phone cell is empty")
        text = str(raw).strip().lstrip("'")
        if not text:
            raise PhoneRejected(RejectReason.MISSING, "the phone cell is empty")
        if _SCIENTIFIC.match(text):
            raise PhoneRejected(
                RejectReason.SCIENTIFIC,
                f"number is in scientific notation ({text}), probably mangled by a spreadsheet; "
                "re-export the column as text",
            )
        digits = _STRIP.sub("", text)
        if digits.endswith(".0"):
            digits = digits[:-2]
        if digits.startswith("00"):
            digits = "+" + digits[2:]
        try:
            number = phonenumbers.parse(digits, self.region)
        except phonenumbers.NumberParseException as exc:
            raise PhoneRejected(RejectReason.NOT_A_NUMBER, f"{text!r} is not a phone number ({exc})") from None
        if not phonenumbers.is_valid_number(number):
            raise PhoneRejected(RejectReason.INVALID, f"{text!r} is not a valid number for its region")
        zones = tuple(z for z in timezone.time_zones_for_number(number) if z != "Etc/Unknown")
        kind = phonenumbers.number_type(number)
        names = {v: k.lower() for k, v in vars(PhoneNumberType).items() if isinstance(v, int)}
        return PhoneInfo(
            e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
            region=phonenumbers.region_code_for_number(number) or "",
            number_type=names.get(kind, "unknown"),
            time_zones=zones,
            geographic=phonenumbers.is_number_geographical(number),
        )
